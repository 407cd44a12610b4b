"""Checkpoint, partial-result and resume files are loaded as tensors and plain data only.

A file whose pickle would call a function (here `open`, creating a marker file) is refused
with one error line naming it, and the function never runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from taskmix.cli import main
from taskmix.rundir import load_torch, save_torch
from taskmix.stage_cache import BestRestart
from taskmix.training.stage import Evaluation, Progress


class OpensAFile:
    """Unpickling this calls open(marker, "w"): code execution, made visible."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def plant(path: Path, marker: Path) -> None:
    torch.save({"encoder": "x", "max_length": 8, "heads": OpensAFile(marker), "state_dict": {},
                "progress": OpensAFile(marker), "restarts": [], "best": OpensAFile(marker)}, path)


def run(experiment: Path, out: Path) -> int:
    return main(["run", str(experiment), "--output-dir", str(out), "--no-progress"])


def test_evaluate_refuses_a_checkpoint_that_runs_code(tmp_path, capsys):
    evil, marker = tmp_path / "evil.pt", tmp_path / "marker"
    plant(evil, marker)
    assert main(["evaluate", str(evil), "--tasks", "rte"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"taskmix: error: {evil}: refusing to load") and "open" in err
    assert not marker.exists()


def test_planted_partial_result_and_resume_checkpoint_are_refused(tmp_path, tiny_experiment, capsys):
    experiment, out = tiny_experiment({"restarts": 2}), tmp_path / "run"
    assert run(experiment, out) == 0
    (entry,) = [p for p in (out / "stages").iterdir() if (p / "result.json").exists()]
    (entry / "result.json").unlink()
    capsys.readouterr()
    marker = tmp_path / "marker"
    for planted in (entry / "partial.pt", entry / "restart-0.pt"):
        plant(planted, marker)
        assert run(experiment, out) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
            f"taskmix: error: {planted}: refusing to load")
        assert not marker.exists()
        planted.unlink()


def test_resume_and_partial_state_round_trip_through_a_weights_only_load(tmp_path):
    predictions = {"toy": {"dev": np.array([0, 1, 1]), "dev_mismatched": np.array([0.5, 1.5], dtype=np.float32)}}
    best = Evaluation({"toy": {"accuracy": np.float64(0.75)}}, {"toy": 0.75}, 0.75, predictions)
    progress = Progress(step=6, loss=0.5, best=best, best_state={"w": torch.ones(2)},
                        history=[{"step": 3, "score": np.float64(0.5)}])
    save_torch(tmp_path / "resume.pt", {"progress": progress.state()})
    restored = Progress.from_state(load_torch(tmp_path / "resume.pt")["progress"])
    assert restored.step == 6 and restored.best.metrics == {"toy": {"accuracy": 0.75}}
    assert restored.best.predictions["toy"]["dev"].tolist() == [0, 1, 1]
    assert restored.best.predictions["toy"]["dev_mismatched"].dtype == np.float32
    assert torch.equal(restored.best_state["w"], torch.ones(2))

    save_torch(tmp_path / "partial.pt", BestRestart(0.75, {"e": torch.zeros(1)}, {"h": {"b": torch.ones(1)}},
                                                    predictions).state())
    again = BestRestart.from_state(load_torch(tmp_path / "partial.pt"))
    assert again.score == 0.75 and again.predictions["toy"]["dev"].tolist() == [0, 1, 1]


def test_a_corrupt_stage_result_is_an_error(tmp_path, tiny_experiment, capsys):
    experiment, out = tiny_experiment(), tmp_path / "run"
    assert run(experiment, out) == 0
    (result,) = (out / "stages").glob("*/result.json")
    result.write_text('{"restarts": [')
    capsys.readouterr()
    assert run(experiment, out) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"taskmix: error: {result}: corrupt (")
