"""Real (tiny) studies: cells comparing pipelines, the AX diagnostic in the report, failures confined to a cell.

Cells train the tiny random BERT for a few steps on a few rows, so each takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from taskmix.cli import main
from taskmix.study import analysis
from taskmix.study.grid import parse_study
from taskmix.study.report import write_report
from taskmix.study.runner import StudyRunner
from taskmix.study.store import ResultsStore, StoreError

TINY = {"batch_size": 8, "max_steps": 2, "max_dev_examples": 16, "predict_test": False}


def run_study(tmp_path: Path, data_dir: Path, base: dict, seeds: list[int]) -> tuple[dict[str, int], Path]:
    spec = parse_study({"name": "tiny", "base": base, "grid": {"seed": seeds}})
    study_dir = tmp_path / "study"
    return StudyRunner(spec, study_dir, data_dir, tmp_path, progress=False).run(), study_dir


def selected_rows(study_dir: Path) -> list[dict]:
    with ResultsStore(study_dir) as store:
        return store.results(selected_only=True)


def stilts_base(encoder: Path) -> dict:
    """Two pipelines on one target task, with the intermediate stage listed last."""
    return {
        "encoder": str(encoder), "max_length": 32, "tensorboard": False,
        "stages": [
            {"name": "target", "tasks": [{"name": "rte", "max_train_examples": 24}], "separate": True,
             "restarts": 2, **TINY},
            {"name": "intermediate", "tasks": [{"name": "snli", "train_splits": ["dev"], "dev_split": "test"}],
             "max_train_examples": 40, **TINY},
        ],
        "pipelines": [["target"], ["intermediate", "target"]],
    }


def test_cell_with_pipelines_stores_every_pipeline_with_the_size_it_trained_on(tmp_path, data_dir, tiny_encoder):
    summary, study_dir = run_study(tmp_path, data_dir, stilts_base(tiny_encoder), [1])
    assert summary["done"] == 1 and summary["failed"] == 0
    with ResultsStore(study_dir) as store:
        rows = store.results()
    pipelines = {r["pipeline"] for r in rows}
    assert pipelines == {tiny_encoder.name, f"{tiny_encoder.name} → snli"}  # local encoders are named by directory
    assert sorted((r["pipeline"], r["restart"]) for r in rows) == sorted((p, i) for p in pipelines for i in (0, 1))
    assert {r["max_train_examples"] for r in rows} == {24}  # the target entry's limit, not the last stage's


def test_a_failed_results_write_fails_the_cell_and_the_study_goes_on(tmp_path, data_dir, tiny_encoder, monkeypatch):
    original = ResultsStore.mark_done
    calls = []

    def fail_first(self, cell_id, results):
        calls.append(cell_id)
        if len(calls) == 1:
            raise StoreError(f"cell {cell_id}: simulated write failure")
        return original(self, cell_id, results)

    monkeypatch.setattr(ResultsStore, "mark_done", fail_first)
    base = dict(stilts_base(tiny_encoder), pipelines=[["target"]])
    summary, study_dir = run_study(tmp_path, data_dir, base, [1, 2])
    assert summary["failed"] == 1 and summary["done"] == 1
    with ResultsStore(study_dir) as store:
        (failed,) = store.cells("failed")
    assert failed["cell_id"] == calls[0] and "simulated write failure" in failed["error"]


def test_study_with_diagnostic_fills_the_ax_table_of_the_report(tmp_path, data_dir, tiny_encoder):
    base = {
        "encoder": str(tiny_encoder), "max_length": 32, "tensorboard": False, "diagnostic": True,
        "stages": [{"name": "target", "tasks": [{"name": "snli", "train_splits": ["dev"], "dev_split": "test"}],
                    "max_train_examples": 32, **TINY}],
    }
    summary, study_dir = run_study(tmp_path, data_dir, base, [1])
    assert summary["done"] == 1
    label = f"{tiny_encoder.name} → snli"
    (ax,) = [r for r in selected_rows(study_dir) if r["task"] == "ax"]
    assert ax["pipeline"] == label and ax["score"] == ax["metrics"]["r3"]
    columns, table = analysis.diagnostic_table(selected_rows(study_dir), sizes_vary=False)
    assert columns == ["Overall", "Knowledge", "Lexical Semantics", "Logic", "Predicate-Argument Structure"]
    assert set(table) == {label} and set(table[label]) == set(columns)
    markdown, _ = write_report(study_dir)
    assert "No diagnostic (ax) results" not in markdown.read_text()


def test_an_experiment_without_stages_is_a_config_error(tmp_path, capsys):
    path = tmp_path / "empty.yaml"
    path.write_text(yaml.safe_dump({"name": "empty", "stages": []}))
    assert main(["run", str(path), "--output-dir", str(tmp_path / "run")]) == 2
    assert "stages: List should have at least 1 item" in capsys.readouterr().err
