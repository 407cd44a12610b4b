"""The study report: GLUE tables, declared pivot tables, baseline deltas, correlations, curves, restarts, AX.

`write_report` reads the store of a study directory and writes `report.md` (figures as
PNG files in `report_files/`) and a self-contained `report.html`.  Each section that has
no data says so in one line instead of failing, so a report can be drawn mid-study.
The pivot tables declared under `tables:` of the study file are read from the spec saved
in the study directory (`specfile.save_study_spec`); without it they are skipped.
A study run by `taskmix transfer` also gets the transfer matrix sections (`taskmix.transfer.report`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from taskmix.errors import TaskmixError
from taskmix.rundir import write_bytes, write_text
from taskmix.study import analysis, plots
from taskmix.study.analysis import GlueTable, PivotTable, Sample, size_label
from taskmix.study.document import Block, Figure, Heading, Paragraph, Table, Text, to_html, to_markdown
from taskmix.study.grid import AVG_VALUE, StudySpec
from taskmix.study.specfile import load_study_spec
from taskmix.study.store import STORE_FILE, ResultsStore

FIGURE_DIR = "report_files"


def write_report(study_dir: str | Path, baseline: str | None = None) -> tuple[Path, Path]:
    """Write `report.md` and `report.html` into `study_dir`; returns their paths.

    `baseline` is a row label of the GLUE table (a pipeline without its target task,
    e.g. 'minilm'); the other rows are compared with it.
    """
    study_dir = Path(study_dir)
    if not (study_dir / STORE_FILE).is_file():
        raise TaskmixError(f"{study_dir}: no {STORE_FILE}; run the study first")
    study = load_study_spec(study_dir)
    with ResultsStore(study_dir) as store:
        studies = sorted({c["study"] for c in store.cells()})
        title = f"Study report: {', '.join(studies) or study_dir.name}"
        blocks = build_report(store, baseline, title, study)
        blocks += _transfer_sections(store, study_dir)
    for block in blocks:
        if isinstance(block, Figure):
            write_bytes(study_dir / FIGURE_DIR / block.name, block.png)
    md_path, html_path = study_dir / "report.md", study_dir / "report.html"
    write_text(md_path, to_markdown(blocks, FIGURE_DIR))
    write_text(html_path, to_html(blocks, title))
    return md_path, html_path


def _transfer_sections(store: ResultsStore, study_dir: Path) -> list[Block]:
    """The matrix sections of a study run by `taskmix transfer` (it saves its transfer file there)."""
    from taskmix.transfer.report import transfer_blocks
    from taskmix.transfer.spec import saved_transfer

    return transfer_blocks(store, study_dir) if saved_transfer(study_dir) is not None else []


def pivot_markdown(study_dir: str | Path) -> str:
    """The study's declared tables as Markdown, to print when a study run ends ('' if none)."""
    study = load_study_spec(study_dir)
    if study is None or not study.tables or not (Path(study_dir) / STORE_FILE).is_file():
        return ""
    with ResultsStore(study_dir) as store:
        blocks = _pivot_sections(store.results(), store.cells(), study)
    return to_markdown(blocks, FIGURE_DIR)


def build_report(store: ResultsStore, baseline: str | None, title: str, study: StudySpec | None = None) -> list[Block]:
    """All report blocks, in reading order; `study` supplies the declared pivot tables."""
    blocks: list[Block] = [Heading(title, 1)]
    blocks += _status(store)
    rows = store.results()
    if not rows:
        return blocks + [Paragraph("No finished cells yet: nothing to report.")]
    tables = analysis.glue_tables(rows)
    for table in tables:
        blocks += _glue_section(table, baseline)
    if study is not None:
        blocks += _pivot_sections(rows, store.cells(), study)
    blocks += _learning_curve_section(rows)
    blocks += _restart_section(rows, sizes_vary=len(tables) > 1)
    blocks += _diagnostic_section(rows, sizes_vary=len(tables) > 1)
    return blocks


def _status(store: ResultsStore) -> list[Block]:
    summary = store.status_summary()
    blocks: list[Block] = [Paragraph("Cells: " + ", ".join(f"{n} {s}" for s, n in summary.items()) + ".")]
    failed = store.cells("failed")
    if failed:
        rows = [[c["cell_id"], _last_line(c["error"])] for c in failed]
        blocks += [Heading("Failed cells", 3), Table(["cell", "error (last line)"], rows)]
    return blocks


def _last_line(error: str | None) -> str:
    """The last line of a traceback is the one that says what went wrong."""
    lines = (error or "").strip().splitlines()
    return lines[-1] if lines else ""


def fmt_score(sample: Sample | None) -> str:
    """'mean ± std' with one decimal (×100 already applied); just the mean for one seed."""
    if sample is None:
        return "—"
    if math.isnan(sample.std):
        return f"{sample.mean:.1f}"
    return f"{sample.mean:.1f} ± {sample.std:.1f}"


def _scored(sample: Sample | None, best: float | None) -> Text:
    """A score cell, bold when its mean equals the column's best as displayed (ties all bold)."""
    is_best = sample is not None and best is not None and round(sample.mean, 1) == round(best, 1)
    return Text(fmt_score(sample), bold=is_best)


def _glue_section(table: GlueTable, baseline: str | None) -> list[Block]:
    name = size_label(table.size)
    columns = [*table.tasks, *table.score_columns]
    best = table.best_of_each()
    body: list[list[str | Text]] = []
    for row in table.rows:
        cells: list[str | Text] = [row]
        for column in columns:
            cells.append(_scored(table.sample(row, column), None if column in table.score_columns else best[column]))
        body.append(cells)
    body.append(["Best of each"] + [f"{best[c]:.1f}" for c in columns])
    blocks: list[Block] = [
        Heading(f"GLUE-style results ({name})"),
        Table(["Pipeline", *columns], body),
        Paragraph(
            "Mean ± sample std over seeds of the selected (best-on-dev) restart, ×100. "
            "Avg is the macro average over tasks (per seed, over seeds that have every task); "
            "SuperGLUE, where present, the same over the SuperGLUE tasks (each task's score the mean of its metrics). "
            "Best of each takes, per task, the best pipeline mean; bold marks it."
        ),
    ]
    repeated = table.repeated_seeds()
    if repeated:
        where = ", ".join(f"{r} / {t}" for r, t in repeated)
        blocks.append(Paragraph(
            f"Note: {where} hold several cells with the same seed and the same grid values "
            "(e.g. cells of an earlier version of the study file); they are pooled here."
        ))
    return blocks + _delta_section(table, baseline) + _correlation_section(table)


def _pivot_sections(rows: list[dict[str, Any]], cells: list[dict[str, Any]], study: StudySpec) -> list[Block]:
    """One section per table declared in the study file, in declaration order."""
    blocks: list[Block] = []
    for spec in study.tables:
        blocks += _pivot_section(analysis.pivot(rows, cells, spec, study.grid), study.grid)
    return blocks


def _pivot_section(table: PivotTable, grid: dict[str, list[Any]]) -> list[Block]:
    spec = table.spec
    title = Heading(spec.title)
    if not table.cells:
        return [title, Paragraph("No finished cells for this table yet.")]
    best = table.best_of_each()
    body: list[list[str | Text]] = [
        [row, *(_scored(table.cells.get((i, j)), best.get(j)) for j in range(len(table.columns)))]
        for i, row in enumerate(table.rows)
    ]
    what = (
        "the average of each cell's selected target-task scores"
        if spec.value == AVG_VALUE
        else f"each cell's selected {spec.value} score"
    )
    pooled = [k for k, v in grid.items() if len(v) > 1 and k not in {spec.rows, spec.columns, *spec.filter}]
    note = f"Rows: {spec.rows}; columns: {spec.columns}. Each value is {what} (×100), mean ± sample std over "
    note += f"the cells of that pair, which differ in {', '.join(pooled)}." if pooled else "the cells of that pair."
    if spec.filter:
        note += " Only cells with " + ", ".join(f"{k} = {analysis.value_label(v)}" for k, v in spec.filter.items()) + "."
    note += " Bold marks the best in each column."
    return [title, Table([spec.rows, *table.columns], body), Paragraph(note)]


def _delta_section(table: GlueTable, baseline: str | None) -> list[Block]:
    title = Heading(f"Differences to the baseline ({size_label(table.size)})", 3)
    if baseline is None:
        return [title, Paragraph("No baseline chosen: no differences computed.")]
    if baseline not in table.rows:
        return [title, Paragraph(f"Baseline {baseline!r} is not a row of this table: no differences computed.")]
    found, tests = analysis.deltas(table, baseline)
    columns = [*table.tasks, *table.score_columns]
    body: list[list[str | Text]] = []
    for row in table.rows:
        if row == baseline:
            continue
        cells: list[str | Text] = [row]
        for column in columns:
            delta = found.get((row, column))
            cells.append("—" if delta is None else _fmt_delta(delta))
        body.append(cells)
    note = (
        f"Δ = pipeline mean − {baseline} mean (×100). As in seed 003 (Appendix B): independent two-sample "
        f"t-test over seeds, p-values Bonferroni-corrected over the {tests} tests of this table; "
        "* marks corrected p < 0.05; † marks a sample whose normality a Lilliefors test rejects (p < 0.05), "
        "where the t-test is doubtful. A t-test needs at least two seeds on each side."
    )
    return [title, Table(["Pipeline", *columns], body), Paragraph(note)]


def _fmt_delta(delta: analysis.Delta) -> str:
    mark = ("*" if delta.significant else "") + ("" if delta.normal else "†")
    return f"{delta.diff:+.1f}{mark}"


def _correlation_section(table: GlueTable) -> list[Block]:
    name = size_label(table.size)
    title = Heading(f"Target-task correlations ({name})", 3)
    found = analysis.correlations(table)
    if found is None:
        return [title, Paragraph("Correlations need at least two tasks and three pipelines: skipped.")]
    names, matrix = found
    body: list[list[str | Text]] = []
    for i, task in enumerate(names):
        cells: list[str | Text] = [task]
        for value in matrix[i]:
            cells.append("—" if math.isnan(value) else Text(f"{value:.2f}", underline=value < 0))
        body.append(cells)
    slug = _slug(name)
    return [
        title,
        Table(["", *names], body),
        Paragraph(
            "Pearson correlation of task scores across pipelines (as seed 001, Table 4); "
            "Avg is the overall score. Negative correlations are underlined."
        ),
        Figure(f"correlations_{slug}.png", plots.correlation_heatmap(names, matrix, f"Correlations ({name})"),
               f"Target-task correlations across pipelines ({name})"),
    ]


def _learning_curve_section(rows: list[dict[str, Any]]) -> list[Block]:
    """Scores against the data size of the target stage and of each earlier stage whose size varies
    (seed 001 Fig. 2: GLUE scores against the pretraining stage's data)."""
    title = Heading("Learning curves")
    sets = analysis.learning_curves(rows)
    if not sets:
        return [title, Paragraph("max_train_examples does not vary in this study: no learning curves.")]
    blocks: list[Block] = [title]
    for curve_set in sets:
        name = "learning_curves.png" if curve_set.stage is None else f"learning_curves_stage_{curve_set.stage + 1}.png"
        blocks.append(Figure(name, plots.learning_curves(curve_set.curves, curve_set.axis),
                             f"Score vs {curve_set.axis} (mean ± std over seeds)"))
    if any(s.stage is not None for s in sets):
        blocks.append(Paragraph("Pipeline stages are counted from the first stage after the encoder; a stage's "
                                "size is the sum of its tasks' max_train_examples. Avg is the per-seed macro "
                                "average over the target tasks."))
    return blocks


def _restart_section(rows: list[dict], sizes_vary: bool) -> list[Block]:
    title = Heading("Restart distributions")
    runs = analysis.restart_runs(rows, sizes_vary)
    if all(len(group) < 2 for groups in runs.values() for group in groups.values()):
        return [title, Paragraph("Every pipeline has a single run per task: no restart distributions.")]
    counts = [
        [label, task, str(len(group)), str(sum(r.degenerate for r in group))]
        for task, groups in runs.items()
        for label, group in groups.items()
    ]
    blocks: list[Block] = [title, Table(["Pipeline", "Task", "Runs", "Degenerate"], counts)]
    for task, groups in runs.items():
        blocks.append(Figure(f"restarts_{_slug(task)}.png", plots.restart_strips(task, groups),
                             f"{task}: every restart (×), degenerate runs (red ○), selected runs (□)"))
    return blocks


def _diagnostic_section(rows: list[dict], sizes_vary: bool) -> list[Block]:
    title = Heading("Diagnostic (AX)")
    columns, table = analysis.diagnostic_table(rows, sizes_vary)
    if not table:
        return [title, Paragraph("No diagnostic (ax) results in this study.")]
    body: list[list[str | Text]] = [
        [label, *(fmt_score(cols.get(c)) for c in columns)] for label, cols in table.items()
    ]
    note = "R3 (×100), overall and per coarse category, mean ± std over seeds of the selected runs."
    return [title, Table(["Pipeline", *columns], body), Paragraph(note)]


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower()
