"""Study report: numbers checked against an independent computation, HTML checked in Chromium.

The store is filled with synthetic results: these tests check the report, not training.
"""

from __future__ import annotations

import base64
import re
import shutil
import statistics
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from taskmix.errors import TaskmixError
from taskmix.study.analysis import MIN_NORMALITY_RUNS, GlueTable, Sample, deltas, looks_normal
from taskmix.study.grid import Cell, cell_id_of
from taskmix.study.report import write_report
from taskmix.study.store import ResultRecord, ResultsStore

BASELINE = "minilm"
PIPELINES = [BASELINE, "minilm → snli", "minilm → qnli", "minilm → mnli+rte"]
TASKS = ["rte", "mrpc", "cola", "sts-b"]
SEEDS = [1, 2, 3, 4, 5]
SIZES = [1000, None]
RESTARTS = 3
CATEGORIES = ["Knowledge", "Lexical Semantics", "Logic", "Predicate-Argument Structure"]


def score(p: int, t: int, seed: int, size: int | None, restart: int) -> float:
    """Deterministic synthetic score; restart 0 is a degenerate (near-chance) run."""
    if restart == 0:
        return 0.3 + 0.001 * seed
    noise = ((p * 7 + t * 5 + seed * 3 + restart * 11 + (size or 7)) % 13 - 6) / 600
    return 0.55 + 0.05 * p * (t % 2) + 0.01 * t + (0.05 if size is None else 0.0) + noise


def selected(p: int, t: int, seed: int, size: int | None) -> float:
    return max(score(p, t, seed, size, r) for r in range(RESTARTS))


def cell_records(p: int, seed: int, size: int | None) -> list[ResultRecord]:
    out = []
    for t, task in enumerate(TASKS):
        scores = [score(p, t, seed, size, r) for r in range(RESTARTS)]
        for r, value in enumerate(scores):
            out.append(
                ResultRecord(
                    pipeline=PIPELINES[p],
                    task=task,
                    seed=seed,
                    restart=r,
                    score=value,
                    metrics={"accuracy": value},
                    degenerate=r == 0,
                    is_selected=value == max(scores),
                    max_train_examples=size,
                )
            )
    if size is None:
        categories = {name: 0.1 + 0.02 * p + 0.01 * i for i, name in enumerate(CATEGORIES)}
        out.append(
            ResultRecord(
                pipeline=PIPELINES[p], task="ax", seed=seed, restart=0, score=0.2 + 0.02 * p,
                metrics={"r3": 0.2 + 0.02 * p, "categories": categories}, is_selected=True,
            )
        )
    return out


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("study")
    with ResultsStore(directory) as store:
        for p in range(len(PIPELINES)):
            for seed in SEEDS:
                for size in SIZES:
                    experiment = {"pipeline": p, "seed": seed, "max_train_examples": size}
                    cell = Cell(cell_id_of(experiment), {"seed": seed}, experiment)
                    store.add_cells("synthetic", [cell])
                    store.mark_running(cell.cell_id)
                    store.mark_done(cell.cell_id, cell_records(p, seed, size))
        failed = Cell(cell_id_of({"broken": True}), {"seed": 0}, {"broken": True})
        store.add_cells("synthetic", [failed])
        store.mark_failed(failed.cell_id, "Traceback ...\nRuntimeError: CUDA out of memory")
    write_report(directory, baseline=BASELINE)
    return directory


def markdown_table(markdown: str, heading: str) -> dict[str, list[str]]:
    """The first table after `heading`, as row label -> cells."""
    section = markdown.split(heading, 1)[1]
    lines = [line for line in section.split("\n\n", 2)[1].splitlines() if line.startswith("|")]
    rows = [[re.sub(r"^\*\*(.*)\*\*$", r"\1", c.strip()) for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    return {row[0]: row[1:] for row in rows[2:]} | {"__header__": rows[0][1:]}


def numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+", cell)]


def expected(p: int, t: int, size: int | None) -> list[float]:
    return [100 * selected(p, t, seed, size) for seed in SEEDS]


def expected_avg(p: int, size: int | None) -> list[float]:
    return [statistics.fmean(100 * selected(p, t, seed, size) for t in range(len(TASKS))) for seed in SEEDS]


@pytest.mark.parametrize("size, name", [(None, "full data"), (1000, "1000 examples")])
def test_glue_table_is_mean_and_std_over_seeds(study_dir: Path, size: int | None, name: str) -> None:
    table = markdown_table((study_dir / "report.md").read_text(), f"## GLUE-style results ({name})")
    assert table["__header__"] == [*TASKS, "Avg"]
    for p, pipeline in enumerate(PIPELINES):
        samples = [expected(p, t, size) for t in range(len(TASKS))] + [expected_avg(p, size)]
        for cell, sample in zip(table[pipeline], samples):
            mean, std = numbers(cell)
            assert mean == pytest.approx(statistics.fmean(sample), abs=0.051)
            assert std == pytest.approx(statistics.stdev(sample), abs=0.051)
    best = [max(statistics.fmean(expected(p, t, size)) for p in range(len(PIPELINES))) for t in range(len(TASKS))]
    assert [numbers(c)[0] for c in table["Best of each"]] == pytest.approx([*best, statistics.fmean(best)], abs=0.051)


def test_deltas_use_bonferroni_corrected_t_tests(study_dir: Path) -> None:
    table = markdown_table((study_dir / "report.md").read_text(), "### Differences to the baseline (full data)")
    tests = (len(PIPELINES) - 1) * (len(TASKS) + 1)
    base = [expected(0, t, None) for t in range(len(TASKS))] + [expected_avg(0, None)]
    for p, pipeline in enumerate(PIPELINES[1:], start=1):
        ours = [expected(p, t, None) for t in range(len(TASKS))] + [expected_avg(p, None)]
        for cell, a, b in zip(table[pipeline], ours, base):
            assert numbers(cell)[0] == pytest.approx(statistics.fmean(a) - statistics.fmean(b), abs=0.051)
            significant = min(1.0, stats.ttest_ind(a, b).pvalue * tests) < 0.05
            assert ("*" in cell) == significant, (pipeline, cell)
    assert BASELINE not in table
    assert f"the {tests} tests of this table" in (study_dir / "report.md").read_text()


def sample(scores: list[float]) -> Sample:
    return Sample(list(enumerate(scores)))


def test_lilliefors_flags_samples_far_from_normal() -> None:
    """Seed 003 App. B: each sample's normality is checked with a Lilliefors test at the 5% level."""
    bell = [50 + 2 * float(z) for z in stats.norm.ppf(np.linspace(0.1, 0.9, 8))]  # normal quantiles
    outlier = [50.0] * 7 + [80.0]
    # Lilliefors (1967), n = 8: the 5% critical KS distance to the fitted normal is 0.285.
    distance = {name: stats.kstest(x, "norm", args=(np.mean(x), np.std(x, ddof=1))).statistic
                for name, x in (("bell", bell), ("outlier", outlier))}
    assert distance["bell"] < 0.285 < distance["outlier"]
    assert looks_normal(sample(bell)) and not looks_normal(sample(outlier))
    assert looks_normal(sample(outlier[-MIN_NORMALITY_RUNS + 1:]))  # too few runs to tell
    cells = {("base", "rte"): sample(bell), ("ours", "rte"): sample(outlier)}
    table = GlueTable(None, ["rte"], ["base", "ours"], cells, avg={})
    found, _ = deltas(table, "base")
    assert found[("ours", "rte")].normal is False
    table.cells[("ours", "rte")] = sample([x + 1 for x in bell])
    assert deltas(table, "base")[0][("ours", "rte")].normal is True


def test_other_sections(study_dir: Path) -> None:
    markdown = (study_dir / "report.md").read_text()
    correlations = markdown_table(markdown, "### Target-task correlations (full data)")
    assert correlations["__header__"] == [*TASKS, "Avg"]
    assert [numbers(correlations[t][i])[0] for i, t in enumerate(TASKS)] == [1.0] * len(TASKS)
    restarts = markdown_table(markdown, "## Restart distributions")
    assert restarts["minilm (1000 examples)"][1:] == [str(len(SEEDS) * RESTARTS), str(len(SEEDS))]
    ax = markdown_table(markdown, "## Diagnostic (AX)")
    assert ax["__header__"] == ["Overall", *CATEGORIES]
    assert numbers(ax["minilm → snli (full data)"][0]) == [22.0, 0.0]  # the same on every seed
    assert "1 failed" in markdown and "CUDA out of memory" in markdown
    figures = re.findall(r"!\[[^\]]*\]\((report_files/[^)]+)\)", markdown)
    assert "report_files/learning_curves.png" in figures
    assert all((study_dir / f).stat().st_size > 1000 for f in figures)


def test_missing_data_skips_sections_with_a_note(tmp_path: Path) -> None:
    experiment = {"seed": 1}
    cell = Cell(cell_id_of(experiment), {"seed": 1}, experiment)
    with ResultsStore(tmp_path) as store:
        store.add_cells("tiny", [cell])
        store.mark_done(cell.cell_id, [ResultRecord("minilm", "rte", 1, 0, 0.6, is_selected=True)])
    markdown = write_report(tmp_path, baseline="nope")[0].read_text()
    assert "| minilm | **60.0** | 60.0 |" in markdown
    assert "Baseline 'nope' is not a row" in markdown
    assert "Correlations need at least two tasks and three pipelines" in markdown
    assert "no learning curves" in markdown
    assert "no restart distributions" in markdown
    assert "No diagnostic (ax) results" in markdown


def test_html_is_self_contained_with_decodable_images(study_dir: Path) -> None:
    page = (study_dir / "report.html").read_text()
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    markdown = (study_dir / "report.md").read_text()
    assert len(images) == markdown.count("![") and len(images) >= 4
    for data in images:
        png = base64.b64decode(data, validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        assert width > 100 and height > 100


CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const images = [...document.images];
  const decoded = images.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0);
  const marker = document.createElement('div');
  marker.id = 'browser-check';
  const tables = document.querySelectorAll('table').length;
  marker.textContent = `images=${images.length} decoded=${decoded.length} tables=${tables}`;
  document.body.appendChild(marker);
});
</script>"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium(study_dir: Path, tmp_path: Path) -> None:
    page = (study_dir / "report.html").read_text()
    probe = tmp_path / "probe.html"  # a copy with a check script; the report itself has no JS
    probe.write_text(page.replace("</body>", CHECK_SCRIPT + "</body>"))
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    images = page.count("<img ")
    tables = page.count("<table>")
    assert f"images={images} decoded={images} tables={tables}" in dom
    assert "GLUE-style results (full data)" in dom and "Best of each" in dom


def test_settings_the_pipeline_does_not_show_get_rows_of_their_own(tmp_path: Path) -> None:
    """A grid over lr keeps the pipeline label 'minilm': the lr value names the row instead of pooling."""
    with ResultsStore(tmp_path) as store:
        for lr, seed, value in [(1e-5, 1, 0.6), (1e-5, 2, 0.62), (3e-5, 1, 0.7), (3e-5, 2, 0.74)]:
            experiment = {"seed": seed, "lr": lr}
            cell = Cell(cell_id_of(experiment), {"lr": lr, "seed": seed}, experiment)
            store.add_cells("lr", [cell])
            store.mark_done(cell.cell_id, [ResultRecord("minilm", "rte", seed, 0, value, is_selected=True)])
    markdown = write_report(tmp_path)[0].read_text()
    assert "| minilm [lr=1e-05] | 61.0 ± 1.4 |" in markdown
    assert "| minilm [lr=3e-05] | **72.0 ± 2.8** |" in markdown
    assert "hold several cells with the same seed" not in markdown
    assert "No baseline chosen" in markdown


def test_an_intermediate_task_equal_to_the_target_keeps_its_row(tmp_path: Path) -> None:
    """'minilm → sts-b' evaluated on sts-b is the STS-B-intermediate row, not the baseline."""
    with ResultsStore(tmp_path) as store:
        for pipeline, value in [("minilm", 0.80), ("minilm → sts-b", 0.83)]:
            experiment = {"seed": 1, "pipeline": pipeline}
            cell = Cell(cell_id_of(experiment), {"seed": 1}, experiment)
            store.add_cells("same", [cell])
            store.mark_done(cell.cell_id, [ResultRecord(pipeline, "sts-b", 1, 0, value, is_selected=True)])
    markdown = write_report(tmp_path)[0].read_text()
    assert "| minilm | 80.0 |" in markdown
    assert "| minilm → sts-b | **83.0** |" in markdown


def test_report_needs_a_store(tmp_path: Path) -> None:
    with pytest.raises(TaskmixError, match="no results.sqlite"):
        write_report(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
