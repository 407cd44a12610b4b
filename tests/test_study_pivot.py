"""Declared pivot tables: grid values × grid values, checked against an independent computation.

The store is filled with synthetic results of a real grid expansion (subset × sampling ×
seed), in the shape of seed 000 Table 6: rows are sampling methods, columns task subsets.
"""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

import pytest

from taskmix.errors import ConfigError
from taskmix.study.analysis import pivot
from taskmix.study.grid import StudySpec, expand, parse_study
from taskmix.study.report import pivot_markdown, write_report
from taskmix.study.specfile import load_study_spec, save_study_spec
from taskmix.study.store import ResultRecord, ResultsStore

POWER = {"name": "power", "alpha": 0.5}
GRID = {"subset": ["s1", "s2"], "sampling": ["uniform", POWER], "seed": [1, 2]}
TASKS = {"s1": ["rte", "mrpc"], "s2": ["cola", "sts-b"]}
TABLE = {"title": "Sampling × subset", "rows": "sampling", "columns": "subset"}
RTE_TABLE = {"title": "RTE by seed", "rows": "sampling", "columns": "seed", "value": "rte",
             "filter": {"subset": "s1"}}
STUDY = {"name": "pivot", "base": {"stages": [{"name": "target", "tasks": ["rte"]}]}, "grid": GRID,
         "tables": [TABLE, RTE_TABLE]}


def score(subset: str, sampling: object, seed: int, task: str) -> float:
    """Power sampling wins on s1 and uniform on s2, so each column has a different best row."""
    s, m = GRID["subset"].index(subset), GRID["sampling"].index(sampling)
    return 0.6 + 0.05 * (m if s == 0 else 1 - m) + 0.01 * TASKS[subset].index(task) + 0.013 * seed * (1 + m)


def records(fields: dict) -> list[ResultRecord]:
    """Selected runs per task, plus runs that must not count: a better unselected restart and AX."""
    out = []
    for task in TASKS[fields["subset"]]:
        value = score(fields["subset"], fields["sampling"], fields["seed"], task)
        out += [
            ResultRecord("minilm", task, fields["seed"], 0, 0.99),
            ResultRecord("minilm", task, fields["seed"], 1, value, is_selected=True),
        ]
    return out + [ResultRecord("minilm → ax", "ax", fields["seed"], 0, 0.01, is_selected=True)]


def expected(subset: str, sampling: object, task: str | None = None) -> list[float]:
    """Per seed: the task's score, or the mean over the subset's tasks, ×100."""
    tasks = TASKS[subset] if task is None else [task]
    return [statistics.fmean(100 * score(subset, sampling, seed, t) for t in tasks) for seed in GRID["seed"]]


@pytest.fixture(scope="module")
def spec() -> StudySpec:
    return parse_study(STUDY)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory, spec: StudySpec) -> Path:
    directory = tmp_path_factory.mktemp("study")
    cells = expand(spec)
    stale = expand(parse_study(STUDY | {"grid": GRID | {"subset": ["s3"]}, "tables": []}))[0]
    with ResultsStore(directory) as store:
        store.add_cells(spec.name, cells + [stale])
        for cell in cells:
            store.mark_running(cell.cell_id)
            store.mark_done(cell.cell_id, records(cell.fields))
        store.mark_running(stale.cell_id)
        store.mark_done(stale.cell_id, [ResultRecord("minilm → rte", "rte", 1, 0, 0.0, is_selected=True)])
    save_study_spec(directory, spec)
    write_report(directory)
    return directory


def stored(study_dir: Path) -> tuple[list[dict], list[dict]]:
    with ResultsStore(study_dir) as store:
        return store.results(), store.cells()


def test_avg_pivot_is_mean_and_std_over_seeds_in_grid_order(study_dir: Path, spec: StudySpec) -> None:
    table = pivot(*stored(study_dir), spec.tables[0], spec.grid)
    assert table.rows == ["uniform", "power 0.5"]
    assert table.columns == ["s1", "s2"]
    for i, sampling in enumerate(GRID["sampling"]):
        for j, subset in enumerate(GRID["subset"]):
            sample = table.cells[(i, j)]
            assert sample.mean == pytest.approx(statistics.fmean(expected(subset, sampling)))
            assert sample.std == pytest.approx(statistics.stdev(expected(subset, sampling)))
    assert table.best_of_each() == pytest.approx({0: table.cells[(1, 0)].mean, 1: table.cells[(0, 1)].mean})


def test_task_value_with_filter_gives_one_cell_per_group(study_dir: Path, spec: StudySpec) -> None:
    table = pivot(*stored(study_dir), spec.tables[1], spec.grid)
    assert table.rows == ["uniform", "power 0.5"]
    assert table.columns == ["1", "2"]
    for i, sampling in enumerate(GRID["sampling"]):
        for j, seed_score in enumerate(expected("s1", sampling, "rte")):
            assert table.cells[(i, j)].mean == pytest.approx(seed_score)
            assert math.isnan(table.cells[(i, j)].std)


def test_filter_excluding_the_task_leaves_no_values(study_dir: Path, spec: StudySpec) -> None:
    other = spec.tables[1].model_copy(update={"filter": {"subset": "s2"}})
    table = pivot(*stored(study_dir), other, spec.grid)
    assert table.rows == ["uniform", "power 0.5"] and table.cells == {}


@pytest.mark.parametrize(
    "table, message",
    [
        (TABLE | {"rows": "sampler"}, "rows 'sampler' is not a grid key"),
        (TABLE | {"columns": "stages.0.tasks"}, "columns 'stages.0.tasks' is not a grid key"),
        (TABLE | {"filter": {"subst": "s1"}}, "filter 'subst' is not a grid key"),
        (TABLE | {"filter": {"subset": "glue"}}, "filter subset: 'glue' is not a value of grid.subset"),
        (TABLE | {"value": "avg", "colour": "red"}, "colour"),
    ],
)
def test_bad_table_declarations_are_rejected(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_study(STUDY | {"tables": [table]})


def test_saved_spec_round_trips(study_dir: Path, spec: StudySpec, tmp_path: Path) -> None:
    assert load_study_spec(study_dir) == spec
    assert load_study_spec(tmp_path) is None


def markdown_rows(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the first table after `heading`, header and separator included."""
    section = markdown.split(heading, 1)[1].split("\n\n", 2)[1]
    return [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines()]


def test_report_renders_declared_tables_after_glue_tables(study_dir: Path) -> None:
    markdown = (study_dir / "report.md").read_text()
    rows = markdown_rows(markdown, "## Sampling × subset")
    s1_uniform, s2_uniform = (statistics.fmean(expected(s, "uniform")) for s in ["s1", "s2"])
    s1_power, s2_power = (statistics.fmean(expected(s, POWER)) for s in ["s1", "s2"])
    assert rows[0] == ["sampling", "s1", "s2"]
    assert rows[2][0] == "uniform" and rows[2][1].startswith(f"{s1_uniform:.1f} ± ")
    assert rows[2][2].startswith(f"**{s2_uniform:.1f} ± ")
    assert rows[3][0] == "power 0.5" and rows[3][1].startswith(f"**{s1_power:.1f} ± ")
    assert rows[3][2].startswith(f"{s2_power:.1f} ± ")
    assert markdown.index("## GLUE-style results") < markdown.index("## Sampling × subset")
    assert markdown.index("## RTE by seed") < markdown.index("## Learning curves")
    assert "Only cells with subset = s1." in markdown
    html = (study_dir / "report.html").read_text()
    assert "<h2>Sampling × subset</h2>" in html
    assert f"<td>power 0.5</td><td><b>{s1_power:.1f} ± " in html


def test_pivot_markdown_prints_only_the_declared_tables(study_dir: Path, tmp_path: Path) -> None:
    text = pivot_markdown(study_dir)
    assert text.startswith("## Sampling × subset") and "## RTE by seed" in text
    assert "GLUE-style" not in text
    assert pivot_markdown(tmp_path) == ""
