"""A tiny study through the CLI: grid expansion, shared intermediate stages, SIGKILL mid-stage and resume.

The study runs the tiny random encoder: what is checked is the study machinery, not learning.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from taskmix.cli import main

TINY = {"batch_size": 8, "max_train_examples": 48, "max_dev_examples": 32, "predict_test": False}

STUDY = {
    "name": "tiny",
    "base": {
        "threads": 1,  # the study runs tiny tensors, which extra threads only slow down
        "stages": [
            {"name": "intermediate", "tasks": [{"name": "snli", "train_splits": ["dev"], "dev_split": "test"}],
             "max_steps": 4, "validate_every": 2, **TINY},
            {"name": "target", "tasks": ["rte"], "separate": True, "restarts": 2, "max_steps": 10,
             "validate_every": 2, **TINY},
        ]
    },
    "axes": {"intermediate": {"stage": "intermediate", "values": {"none": None, "snli": {}}}},
    "grid": {"intermediate": ["none", "snli"], "seed": [1, 2]},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> Path:
    path = tmp_path_factory.mktemp("study") / "study.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "base": {"encoder": str(tiny_encoder), **STUDY["base"]}}))
    return path


@pytest.fixture(scope="module")
def reference(study: Path, data_dir: Path) -> Path:
    """The study run once without interruption (in-process), shared by the tests."""
    out = study.parent / "reference"
    assert main(["study", "run", str(study), "--output-dir", str(out), "--data-dir", str(data_dir),
                 "--no-progress"]) == 0
    return out


def rows(study_dir: Path) -> dict[tuple, float]:
    with sqlite3.connect(study_dir / "results.sqlite") as db:
        return {(c, t, r): s for c, t, r, s in db.execute("SELECT cell_id, task, restart, score FROM results")}


def finished_times(study_dir: Path) -> dict[str, str]:
    with sqlite3.connect(study_dir / "results.sqlite") as db:
        return dict(db.execute("SELECT cell_id, finished FROM cells WHERE status = 'done'"))


def command(study: Path, out: Path, data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "taskmix", "study", "run", str(study), "--output-dir", str(out),
            "--data-dir", str(data_dir), "--no-progress"]


def test_study_runs_every_cell_and_trains_shared_stages_once(study, reference, data_dir, tiny_encoder, capsys):
    stored = rows(reference)
    assert len(stored) == 4 * 2  # 4 cells x 2 restarts of one target task
    # one intermediate stage per seed, one target group per cell
    cached = [p for p in (reference / "stages").iterdir() if (p / "result.json").exists()]
    assert len(cached) == 2 + 4
    assert main(["study", "status", str(reference)]) == 0
    assert "done: 4" in capsys.readouterr().out
    # rerunning finished work does nothing
    before = finished_times(reference)
    assert main(["study", "run", str(study), "--output-dir", str(reference), "--data-dir", str(data_dir),
                 "--no-progress"]) == 0
    assert finished_times(reference) == before
    assert main(["report", str(reference), "--baseline", tiny_encoder.name]) == 0
    html = (reference / "report.html").read_text()
    assert f"{tiny_encoder.name} → snli" in html and "<table" in html


def test_sigkill_mid_stage_then_resume_matches_uninterrupted_run(study, reference, tmp_path, data_dir):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(command(study, out, data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline:
        # kill once a target restart has a mid-stage checkpoint and some cell is already done
        mid_stage = list((out / "stages").glob("*/restart-*.pt")) if (out / "stages").exists() else []
        if mid_stage and (out / "results.sqlite").exists() and finished_times(out):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((out / "stages").glob("*/restart-*.pt")), "the run was not interrupted mid-stage"
    done_before = finished_times(out)
    assert 0 < len(done_before) < 4

    resumed = subprocess.run(command(study, out, data_dir), check=True, capture_output=True, text=True)
    assert "resuming stage at step" in resumed.stderr
    after = finished_times(out)
    assert {c: after[c] for c in done_before} == done_before  # finished cells were not rerun
    assert rows(out) == rows(reference)  # same metrics as the uninterrupted run, one row per cell/task/restart
