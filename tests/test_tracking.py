"""TensorBoard scalars (on the tiny random encoder): written for every run by default, absent when switched off."""

from __future__ import annotations

from pathlib import Path

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from taskmix.cli import main

STAGE = {"name": "target", "tasks": ["rte"], "max_steps": 3, "validate_every": 1, "batch_size": 8,
         "max_train_examples": 32, "max_dev_examples": 16, "predict_test": False}


def run(tmp_path: Path, data_dir: Path, encoder: Path, *extra: str) -> Path:
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({"encoder": str(encoder), "stages": [STAGE]}))
    out = tmp_path / "run"
    assert main(["run", str(exp), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress", *extra]) == 0
    return out


def test_loss_lr_and_dev_metrics_are_tracked(tmp_path, data_dir, tiny_encoder):
    out = run(tmp_path, data_dir, tiny_encoder)
    events = EventAccumulator(str(out / "pretrained" / "target" / "tensorboard" / "restart-0"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "dev/score", "dev/rte/accuracy"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]
    assert [e.step for e in events.Scalars("dev/rte/accuracy")] == [1, 2, 3]


def test_tracking_can_be_switched_off(tmp_path, data_dir, tiny_encoder):
    out = run(tmp_path, data_dir, tiny_encoder, "--set", "tensorboard=false")
    assert not (out / "pretrained" / "target" / "tensorboard").exists()
