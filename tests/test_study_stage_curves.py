"""Learning curves over an earlier stage's data size (seed 001 Fig. 2: GLUE score against pretraining data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from taskmix.config import parse_experiment
from taskmix.study import analysis
from taskmix.study.grid import Cell, cell_id_of, parse_study
from taskmix.study.report import write_report
from taskmix.study.runner import StudyRunner, stage_limits
from taskmix.study.store import ResultRecord, ResultsStore

PRETRAINING = {"random → cola": [0.50, 0.55, 0.60], "random → sst-2": [0.40, 0.42, 0.41]}
SIZES = [500, 1000, None]
TASKS = {"rte": 0.0, "mrpc": 0.1}
SEEDS = [1, 2]


def value(pipeline: str, size_index: int, task: str, seed: int) -> float:
    return PRETRAINING[pipeline][size_index] + TASKS[task] + 0.01 * seed


@pytest.fixture
def rows(tmp_path: Path) -> list[dict]:
    """One cell per (pretraining task, pretraining size, seed); the random-encoder baseline has no stage size."""
    with ResultsStore(tmp_path) as store:
        for pipeline in PRETRAINING:
            for i, size in enumerate(SIZES):
                for seed in SEEDS:
                    fields = {"pre": pipeline, "stages.pre.max_train_examples": size, "seed": seed}
                    cell = Cell(cell_id_of({"f": fields}), fields, {"f": fields})
                    store.add_cells("demo", [cell])
                    records = [ResultRecord(pipeline, task, seed, 0, value(pipeline, i, task, seed),
                                            is_selected=True, stage_limits=(size,)) for task in TASKS]
                    if (pipeline, size) == ("random → cola", 500):  # the baseline row, once per seed
                        records += [ResultRecord("random", task, seed, 0, 0.3, is_selected=True) for task in TASKS]
                    store.mark_done(cell.cell_id, records)
        return store.results()


def test_curves_follow_the_pretraining_stage_size_with_an_average_panel(rows):
    (curve_set,) = analysis.learning_curves(rows)
    assert curve_set.stage == 0 and curve_set.axis == "training examples of pipeline stage 1"
    assert set(curve_set.curves) == {"rte", "mrpc", "Avg"}
    for pipeline in PRETRAINING:
        points = curve_set.curves["mrpc"][pipeline]
        assert [p.size for p in points] == SIZES
        for i, point in enumerate(points):
            expected = [100 * value(pipeline, i, "mrpc", s) for s in SEEDS]
            assert point.mean == pytest.approx(np.mean(expected))
            assert point.std == pytest.approx(np.std(expected, ddof=1))
        average = curve_set.curves["Avg"][pipeline]
        assert [p.mean for p in average] == pytest.approx(
            [np.mean([100 * value(pipeline, i, t, s) for t in TASKS for s in SEEDS]) for i in range(3)])
    assert "random" not in curve_set.curves["rte"]  # a pipeline without the stage has no curve


def test_tables_keep_a_row_per_pretraining_size(rows):
    (table,) = analysis.glue_tables(rows)
    assert set(table.rows) == {"random"} | {f"{p} ({analysis.size_label(s)})" for p in PRETRAINING for s in SIZES}
    assert table.mean("random → cola (1000 examples)", "rte") == pytest.approx(
        np.mean([100 * value("random → cola", 1, "rte", s) for s in SEEDS]))
    assert not table.repeated_seeds()


def test_stage_limits_of_each_pipeline_sum_a_stage_s_entries():
    cfg = parse_experiment({"stages": [
        {"name": "pre", "tasks": [{"name": "cola", "max_train_examples": 300}, "sst-2"], "max_train_examples": 200},
        {"name": "mid", "tasks": ["mrpc"]},
        {"name": "target", "tasks": ["rte"], "max_train_examples": 50}],
        "pipelines": [["target"], ["pre", "target"], ["pre", "mid", "target"]]})
    assert stage_limits(cfg) == {"minilm": (), "minilm → {cola, sst-2}": (500,),
                                 "minilm → {cola, sst-2} → mrpc": (500, None)}


def test_a_study_varying_the_pretraining_size_draws_its_curve(tmp_path, data_dir, tiny_encoder):
    tiny = {"batch_size": 8, "max_steps": 2, "max_dev_examples": 16, "predict_test": False}
    base = {"encoder": str(tiny_encoder), "max_length": 32, "tensorboard": False,
            "stages": [{"name": "pre", "tasks": ["sst-2"], "max_train_examples": 16, **tiny},
                       {"name": "target", "tasks": [{"name": "rte", "max_train_examples": 24}], "frozen": True,
                        "head_model": "sesame", "separate": True, **tiny}]}
    spec = parse_study({"name": "curve", "base": base, "grid": {"stages.pre.max_train_examples": [16, 32]}})
    study_dir = tmp_path / "study"
    summary = StudyRunner(spec, study_dir, data_dir, tmp_path, progress=False).run()
    assert summary["done"] == 2
    with ResultsStore(study_dir) as store:
        assert {r["stage_limits"] for r in store.results()} == {(16,), (32,)}
    write_report(study_dir)
    report = (study_dir / "report.md").read_text()
    assert "report_files/learning_curves_stage_1.png" in report
    assert f"{tiny_encoder.name} → sst-2 (16 examples)" in report
