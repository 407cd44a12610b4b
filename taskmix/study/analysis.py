"""The numbers behind a study report, computed from result rows of the store.

Rows of a GLUE table are pipelines without their target task ('minilm → snli', the store's
`pipeline` column), columns
are target tasks, and the runs aggregated in a table cell are the selected (best-on-dev)
restarts of every seed.  Scores are reported ×100.  Tables are built per target-data
size (full data and each `max_train_examples` limit), as the STILTs paper does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
from scipy import stats

from taskmix.errors import ConfigError
from taskmix.study.grid import ARROW, AVG_VALUE, TableSpec
from taskmix.study.store import DIAGNOSTIC_TASK
from taskmix.tasks import get_task
from taskmix.tasks.base import SUPERGLUE

AVG = "Avg"
SUPERGLUE_AVG = "SuperGLUE"  # the column of the SuperGLUE score, over the table's SuperGLUE tasks
ALPHA = 0.05
# Below this many runs a normality test says nothing; seed 003 tests 5 runs.
MIN_NORMALITY_RUNS = 4


def size_label(size: int | None) -> str:
    return "full data" if size is None else f"{size} examples"


def setting_fields(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Grid fields besides the seed that take several values within one pipeline and its data sizes.

    A grid over fields the pipeline label does not show (precision, learning rate, batching)
    would otherwise pool different settings into one table row; these fields name the rows.
    A field that sets a stage's data size is no such field: the size names the row itself.
    """
    values: dict[str, dict[tuple, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in rows:
        group = (r["pipeline"], r["max_train_examples"], tuple(r.get("stage_limits", ())))
        for name, value in r.get("fields", {}).items():
            if name != "seed":
                values[name][group].add(value_label(value))
    return [name for name, groups in values.items() if any(len(v) > 1 for v in groups.values())]


def varying_stages(rows: Iterable[dict[str, Any]]) -> dict[str, set[int]]:
    """pipeline -> positions of its stages before the target whose training-row limit differs between rows."""
    seen: dict[tuple[str, int], set] = defaultdict(set)
    for r in rows:
        for position, size in enumerate(r.get("stage_limits", ())):
            seen[(r["pipeline"], position)].add(size)
    out: dict[str, set[int]] = defaultdict(set)
    for (pipeline, position), sizes in seen.items():
        if len(sizes) > 1:
            out[pipeline].add(position)
    return dict(out)


@dataclass(frozen=True)
class RowLabeler:
    """Table-row names of result rows: the pipeline, with the data size of each of its stages whose
    size varies ('random → cola (1000 examples)'), the setting fields' values and, where target
    sizes vary, the target's data size.  `omit` leaves out one stage's size, the x axis of a curve."""

    settings: list[str]
    stages: dict[str, set[int]]

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> "RowLabeler":
        return cls(setting_fields(rows), varying_stages(rows))

    def __call__(self, row: dict[str, Any], sizes_vary: bool, omit: int | None = None) -> str:
        parts = row["pipeline"].split(ARROW)
        limits = row.get("stage_limits", ())
        for position in sorted(self.stages.get(row["pipeline"], ())):
            if position != omit and position + 1 < len(parts):
                parts[position + 1] += f" ({size_label(limits[position])})"
        label = ARROW.join(parts)
        shown = [f"{name}={value_label(row['fields'][name])}" for name in self.settings
                 if name in row.get("fields", {})]
        if shown:
            label += f" [{', '.join(shown)}]"
        return f"{label} ({size_label(row['max_train_examples'])})" if sizes_vary else label


@dataclass
class Sample:
    """The per-seed scores (×100) of one (pipeline, task) cell of a table."""

    runs: list[tuple[Any, float]] = field(default_factory=list)

    @property
    def scores(self) -> list[float]:
        return [s for _, s in self.runs]

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1), NaN for a single run."""
        return float(np.std(self.scores, ddof=1)) if len(self.runs) > 1 else math.nan

    def by_seed(self) -> dict[Any, float]:
        """Mean score per seed (a seed recorded twice is averaged)."""
        groups: dict[Any, list[float]] = defaultdict(list)
        for seed, score in self.runs:
            groups[seed].append(score)
        return {seed: float(np.mean(v)) for seed, v in groups.items()}


@dataclass
class GlueTable:
    """One data size: pipelines × target tasks, plus each row's average over tasks and, when the
    table has SuperGLUE tasks, its SuperGLUE score (the average over those)."""

    size: int | None
    tasks: list[str]
    rows: list[str]
    cells: dict[tuple[str, str], Sample]
    avg: dict[str, Sample]
    superglue_tasks: list[str] = field(default_factory=list)
    superglue: dict[str, Sample] = field(default_factory=dict)

    @property
    def score_columns(self) -> list[str]:
        """The averaged columns after the tasks: Avg, then SuperGLUE when the table has its tasks."""
        return [AVG, SUPERGLUE_AVG] if self.superglue_tasks else [AVG]

    def sample(self, row: str, column: str) -> Sample | None:
        """The runs of a (row, task) cell, or the row's per-seed averages for columns Avg and SuperGLUE."""
        if column == AVG:
            return self.avg.get(row)
        if column == SUPERGLUE_AVG:
            return self.superglue.get(row)
        return self.cells.get((row, column))

    def mean(self, row: str, column: str) -> float | None:
        sample = self.sample(row, column)
        return sample.mean if sample is not None else None

    def best_of_each(self) -> dict[str, float]:
        """Per task the best pipeline mean; its Avg is the mean of those bests."""
        best = {}
        for task in self.tasks:
            means = [self.mean(r, task) for r in self.rows]
            best[task] = max(m for m in means if m is not None)
        if self.superglue_tasks:
            best[SUPERGLUE_AVG] = float(np.mean([best[t] for t in self.superglue_tasks]))
        best[AVG] = float(np.mean([best[t] for t in self.tasks]))
        return best

    def repeated_seeds(self) -> list[tuple[str, str]]:
        """(row, task) cells holding one seed more than once: rows mixing different cells."""
        return [key for key, s in self.cells.items() if len(s.by_seed()) < len(s.runs)]


def glue_tables(rows: Iterable[dict[str, Any]]) -> list[GlueTable]:
    """GLUE tables from selected result rows, one per data size (full data first)."""
    by_size: dict[int | None, dict[tuple[str, str], Sample]] = defaultdict(lambda: defaultdict(Sample))
    rows = list(rows)
    label = RowLabeler.of(rows)
    for r in rows:
        if r["is_selected"] and r["task"] != DIAGNOSTIC_TASK:
            key = (label(r, False), r["task"])
            by_size[r["max_train_examples"]][key].runs.append((r["seed"], 100.0 * r["score"]))
    tables = []
    for size in sorted(by_size, key=lambda s: (s is not None, s or 0)):
        cells = dict(by_size[size])
        labels = list(dict.fromkeys(row for row, _ in cells))
        tasks = list(dict.fromkeys(task for _, task in cells))
        avg = {row: a for row in labels if (a := _row_average(cells, row, tasks)) is not None}
        superglue_tasks = [t for t in tasks if benchmark_of(t) == SUPERGLUE]
        superglue = {row: a for row in labels
                     if superglue_tasks and (a := _row_average(cells, row, superglue_tasks)) is not None}
        tables.append(GlueTable(size, tasks, labels, cells, avg, superglue_tasks, superglue))
    return tables


def benchmark_of(task: str) -> str:
    """The benchmark a result row's task counts towards ("" for tasks no longer registered)."""
    try:
        return get_task(task).benchmark
    except ConfigError:
        return ""


def _row_average(cells: dict[tuple[Any, str], Sample], row: Any, tasks: list[str]) -> Sample | None:
    """Per-seed macro average over the tasks, for seeds that have every task; else None."""
    if any((row, t) not in cells for t in tasks):
        return None
    per_task = [cells[(row, t)].by_seed() for t in tasks]
    seeds = [s for s in per_task[0] if all(s in p for p in per_task)]
    if not seeds:
        return None
    return Sample([(s, float(np.mean([p[s] for p in per_task]))) for s in seeds])


@dataclass(frozen=True)
class Delta:
    """A row's difference to the baseline in one column, with its corrected p-value."""

    diff: float
    p_corrected: float | None
    normal: bool

    @property
    def significant(self) -> bool:
        return self.p_corrected is not None and self.p_corrected < ALPHA


def deltas(table: GlueTable, baseline: str) -> tuple[dict[tuple[str, str], Delta], int]:
    """Differences to `baseline` per (row, column) and the number of t-tests run.

    Following seed 003 (Appendix B): each sample is checked for normality with a
    Lilliefors test, the two samples are compared with an independent two-sample t-test,
    and p-values are Bonferroni-corrected for the number of comparisons in the table.
    A t-test needs two runs on each side; otherwise the delta has no p-value.
    """
    raw: dict[tuple[str, str], tuple[float, float | None, bool]] = {}
    for row in table.rows:
        if row == baseline:
            continue
        for column in [*table.tasks, *table.score_columns]:
            ours, base = table.sample(row, column), table.sample(baseline, column)
            if ours is None or base is None:
                continue
            p = None
            if len(ours.runs) > 1 and len(base.runs) > 1:
                p = float(stats.ttest_ind(ours.scores, base.scores).pvalue)
                p = None if math.isnan(p) else p
            raw[(row, column)] = (ours.mean - base.mean, p, looks_normal(ours) and looks_normal(base))
    tests = sum(p is not None for _, p, _ in raw.values())
    corrected = {
        key: Delta(diff, None if p is None else min(1.0, p * tests), normal)
        for key, (diff, p, normal) in raw.items()
    }
    return corrected, tests


def looks_normal(sample: Sample) -> bool:
    """False when a Lilliefors test rejects normality at ALPHA (too few runs: True)."""
    scores = np.asarray(sample.scores)
    if len(scores) < MIN_NORMALITY_RUNS or np.ptp(scores) == 0:
        return True
    result = stats.goodness_of_fit(stats.norm, scores, statistic="ks", rng=0)
    return bool(result.pvalue >= ALPHA)


def correlations(table: GlueTable) -> tuple[list[str], np.ndarray] | None:
    """Pearson correlations of task means across pipelines, with Avg as the last variable.

    As seed 001 Table 4: how well a pipeline's score on one task predicts its score on
    another.  A pair needs three pipelines with both scores; otherwise it is NaN.  None
    when there are fewer than two tasks or three pipelines.
    """
    names = [*table.tasks, AVG]
    if len(table.tasks) < 2 or len(table.rows) < 3:
        return None
    values = np.array([[_or_nan(table.mean(r, n)) for n in names] for r in table.rows])
    matrix = np.full((len(names), len(names)), np.nan)
    for i in range(len(names)):
        for j in range(len(names)):
            both = ~np.isnan(values[:, i]) & ~np.isnan(values[:, j])
            x, y = values[both, i], values[both, j]
            if both.sum() >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
                matrix[i, j] = float(np.corrcoef(x, y)[0, 1])
    return names, matrix


def _or_nan(value: float | None) -> float:
    return np.nan if value is None else value


@dataclass(frozen=True)
class CurvePoint:
    size: int | None
    mean: float
    std: float


@dataclass(frozen=True)
class CurveSet:
    """Scores against the data size of one stage: `stage` None for the target stage, else the position
    of a stage before it (0: the pipeline's first stage, the pretraining stage of seed 001 Fig. 2).
    `curves`: task (and Avg) -> line -> points; a line is a table row without that stage's size."""

    stage: int | None
    curves: dict[str, dict[str, list[CurvePoint]]]

    @property
    def axis(self) -> str:
        if self.stage is None:
            return "target training examples"
        return f"training examples of pipeline stage {self.stage + 1}"


def learning_curves(rows: Iterable[dict[str, Any]]) -> list[CurveSet]:
    """One curve set for the target's data size and one per earlier stage position whose size varies.

    Points are the selected runs' mean ± std over seeds; an Avg panel holds the per-seed
    macro average over the tasks (as Fig. 2's overall score) when there are several tasks.
    Lines with a single size are left out (nothing varies along them).
    """
    rows = [r for r in rows if r["is_selected"] and r["task"] != DIAGNOSTIC_TASK]
    label = RowLabeler.of(rows)
    targets_vary = len({r["max_train_examples"] for r in rows}) > 1
    sets: list[CurveSet] = []
    if targets_vary:
        sets.append(CurveSet(None, _curves(rows, lambda r: label(r, False), lambda r: r["max_train_examples"])))
    for position in sorted({p for varying in label.stages.values() for p in varying}):
        along = [r for r in rows if position in label.stages.get(r["pipeline"], ())]
        sets.append(CurveSet(position, _curves(along, lambda r: label(r, targets_vary, omit=position),
                                               lambda r: r["stage_limits"][position])))
    return [s for s in sets if s.curves]


def _curves(rows: list[dict[str, Any]], line_of, size_of) -> dict[str, dict[str, list[CurvePoint]]]:
    """task -> line -> points sorted by size (full data last), plus Avg; lines of one point dropped."""
    cells: dict[tuple[tuple[str, int | None], str], Sample] = defaultdict(Sample)
    for r in rows:
        cells[((line_of(r), size_of(r)), r["task"])].runs.append((r["seed"], 100.0 * r["score"]))
    tasks = list(dict.fromkeys(task for _, task in cells))
    points: dict[str, dict[str, list[CurvePoint]]] = defaultdict(lambda: defaultdict(list))
    for ((line, size), task), sample in cells.items():
        points[task][line].append(CurvePoint(size, sample.mean, sample.std))
    if len(tasks) > 1:
        for key in dict.fromkeys(key for key, _ in cells):
            average = _row_average(cells, key, tasks)
            if average is not None:
                points[AVG][key[0]].append(CurvePoint(key[1], average.mean, average.std))
    out: dict[str, dict[str, list[CurvePoint]]] = {}
    for task, lines in points.items():
        kept = {line: sorted(pts, key=lambda p: (p.size is None, p.size or 0)) for line, pts in lines.items()
                if len(pts) > 1}
        if kept:
            out[task] = kept
    return out


@dataclass(frozen=True)
class RestartRun:
    score: float
    degenerate: bool
    selected: bool


def restart_runs(rows: Iterable[dict[str, Any]], sizes_vary: bool) -> dict[str, dict[str, list[RestartRun]]]:
    """task -> pipeline (with data size when it varies) -> every restart of every seed."""
    runs: dict[str, dict[str, list[RestartRun]]] = defaultdict(lambda: defaultdict(list))
    rows = list(rows)
    label = RowLabeler.of(rows)
    for r in rows:
        if r["task"] == DIAGNOSTIC_TASK:
            continue
        run = RestartRun(100.0 * r["score"], r["degenerate"], r["is_selected"])
        runs[r["task"]][label(r, sizes_vary)].append(run)
    return {task: dict(groups) for task, groups in runs.items()}


def diagnostic_table(
    rows: Iterable[dict[str, Any]], sizes_vary: bool
) -> tuple[list[str], dict[str, dict[str, Sample]]]:
    """AX R3 (×100) per pipeline: overall and per coarse category, over selected runs."""
    table: dict[str, dict[str, Sample]] = defaultdict(lambda: defaultdict(Sample))
    categories: dict[str, None] = {}
    rows = list(rows)
    labeler = RowLabeler.of(rows)
    for r in rows:
        if r["task"] != DIAGNOSTIC_TASK or not r["is_selected"]:
            continue
        label = labeler(r, sizes_vary)
        metrics = r["metrics"]
        overall = metrics.get("r3", r["score"])
        table[label]["Overall"].runs.append((r["seed"], 100.0 * overall))
        for name, value in metrics.get("categories", {}).items():
            categories.setdefault(name)
            table[label][name].runs.append((r["seed"], 100.0 * value))
    return ["Overall", *sorted(categories)], {label: dict(cols) for label, cols in table.items()}


_MISSING = object()  # a grid key absent from a cell's fields: equal to no value


@dataclass
class PivotTable:
    """A declared table: grid values of one field × another, each a Sample (×100) over cells."""

    spec: TableSpec
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[int, int], Sample]

    def best_of_each(self) -> dict[int, float]:
        """Per column index the best row mean (columns without data are left out)."""
        best: dict[int, float] = {}
        for (_, column), sample in self.cells.items():
            best[column] = max(best.get(column, -math.inf), sample.mean)
        return best


def pivot(
    rows: Iterable[dict[str, Any]],
    cells: Iterable[dict[str, Any]],
    table: TableSpec,
    grid: Mapping[str, list[Any]],
) -> PivotTable:
    """Group the cells matching `table.filter` by their (rows, columns) grid values.

    Each group's Sample holds one value per cell with results: its average over selected
    target tasks, or the named task's selected score.  Rows and columns are the grid values
    that some matching cell has, in grid order; cells whose values are no longer in the
    grid (an edited study file) are left out, as they are not part of the declared grid.
    """
    values = cell_values(rows, table.value)
    row_values, column_values = grid[table.rows], grid[table.columns]
    groups: dict[tuple[int, int], Sample] = {}
    for cell in cells:
        fields = cell["fields"]
        if any(fields.get(k, _MISSING) != v for k, v in table.filter.items()):
            continue
        r, c = _index(row_values, fields, table.rows), _index(column_values, fields, table.columns)
        if r is None or c is None:
            continue
        sample = groups.setdefault((r, c), Sample())
        if cell["cell_id"] in values:
            sample.runs.append((cell["cell_id"], values[cell["cell_id"]]))
    used_rows = sorted({r for r, _ in groups})
    used_columns = sorted({c for _, c in groups})
    return PivotTable(
        spec=table,
        rows=[value_label(row_values[r]) for r in used_rows],
        columns=[value_label(column_values[c]) for c in used_columns],
        cells={(used_rows.index(r), used_columns.index(c)): s for (r, c), s in groups.items() if s.runs},
    )


def _index(values: list[Any], fields: dict[str, Any], key: str) -> int | None:
    """Position of a cell's value of `key` among the grid values, None when absent."""
    value = fields.get(key, _MISSING)
    return next((i for i, v in enumerate(values) if v == value), None)


def cell_values(rows: Iterable[dict[str, Any]], value: str) -> dict[str, float]:
    """cell_id -> the cell's value (×100) from its selected runs: see `TableSpec.value`."""
    scores: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        wanted = r["task"] != DIAGNOSTIC_TASK if value == AVG_VALUE else r["task"] == value
        if r["is_selected"] and wanted:
            scores[r["cell_id"]].append(100.0 * r["score"])
    return {cell_id: float(np.mean(v)) for cell_id, v in scores.items()}


def value_label(value: Any) -> str:
    """A readable label for a grid value: {name: power, alpha: 0.5} -> 'power 0.5'."""
    if isinstance(value, dict):
        return " ".join(value_label(v) for v in value.values())
    if isinstance(value, list):
        return "+".join(value_label(v) for v in value)
    return "none" if value is None else str(value)
