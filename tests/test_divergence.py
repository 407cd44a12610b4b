"""Divergence: non-finite steps are skipped, persistent ones fail the restart, and NaN is never scored as 0.0.

End-to-end runs train the tiny random BERT on a few RTE rows, so each takes a few seconds.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from taskmix import metrics
from taskmix.errors import NonFinitePredictions
from taskmix.cli import main
from taskmix.restarts import restart_seed
from taskmix.models.heads import ClassificationHead
from taskmix.tasks import get_task
from taskmix.training.divergence import (
    LOSS_EXPLOSION_FACTOR,
    MAX_CONSECUTIVE_SKIPS,
    DivergenceState,
    TrainingDiverged,
    observe,
)
from taskmix.training import stage as stage_module
from taskmix.training.stage import StageTrainer

STAGE = {"name": "target", "tasks": ["rte"], "batch_size": 8, "max_train_examples": 32, "max_dev_examples": 32,
         "predict_test": False, "max_steps": 6, "validate_every": 3}


def run(tmp_path: Path, encoder: Path, data_dir: Path, **stage) -> tuple[int, Path]:
    experiment = {"name": "divergence", "encoder": str(encoder), "max_length": 64, "tensorboard": False,
                  "seed": 1, "stages": [dict(STAGE, **stage)]}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(experiment))
    out = tmp_path / "run"
    code = main(["run", str(path), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"])
    return code, out


def stage_metrics(out: Path) -> dict:
    return json.loads((out / "pretrained" / "target" / "metrics.json").read_text())


def test_single_non_finite_step_is_skipped_and_training_continues(tmp_path, tiny_encoder, data_dir, monkeypatch,
                                                                   capsys):
    calls = {"n": 0}
    original = ClassificationHead.loss

    def nan_on_second_call(self, logits, batch):
        calls["n"] += 1
        loss = original(self, logits, batch)
        return loss * math.nan if calls["n"] == 2 else loss

    monkeypatch.setattr(ClassificationHead, "loss", nan_on_second_call)
    code, out = run(tmp_path, tiny_encoder, data_dir)
    assert code == 0
    assert "step 2: loss or gradients not finite; update skipped" in capsys.readouterr().err
    restart = stage_metrics(out)["restarts"][0]
    assert restart["failed"] is None and restart["steps"] == STAGE["max_steps"]
    state = torch.load(out / "pretrained" / "target" / "checkpoint.pt", weights_only=False)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_with_a_loss_scaler_a_skipped_step_keeps_the_scaler_usable(tmp_path, tiny_encoder, data_dir, monkeypatch,
                                                                   capsys):
    """fp16 runs need CUDA; a CPU scaler drives the same skip-then-update path."""
    monkeypatch.setattr(stage_module, "grad_scaler", lambda device, precision: torch.amp.GradScaler("cpu"))
    original = ClassificationHead.loss
    calls = {"n": 0}

    def nan_on_second_call(self, logits, batch):
        calls["n"] += 1
        return original(self, logits, batch) * (math.nan if calls["n"] == 2 else 1.0)

    monkeypatch.setattr(ClassificationHead, "loss", nan_on_second_call)
    code, out = run(tmp_path, tiny_encoder, data_dir)
    assert code == 0 and "step 2: loss or gradients not finite" in capsys.readouterr().err
    assert stage_metrics(out)["restarts"][0]["steps"] == STAGE["max_steps"]


def test_persistent_divergence_fails_the_restart_and_another_is_selected(tmp_path, tiny_encoder, data_dir,
                                                                         monkeypatch):
    original = StageTrainer._step_losses

    def nan_in_first_restart(self, *args):
        loss = original(self, *args)
        return math.nan if self.seed == restart_seed(1, 0) else loss

    monkeypatch.setattr(StageTrainer, "_step_losses", nan_in_first_restart)
    code, out = run(tmp_path, tiny_encoder, data_dir, restarts=2)
    assert code == 0
    result = stage_metrics(out)
    assert [r["failed"] for r in result["restarts"]] == ["diverged at step 1", None]
    assert result["selected_restart"] == 1
    (target,) = json.loads((out / "results.json").read_text())["targets"]
    assert target["selected_restart"] == 1 and [r["restart"] for r in target["runs"]] == [1]


def test_huge_learning_rate_without_clipping_fails_the_stage(tmp_path, tiny_encoder, data_dir, capsys):
    code, out = run(tmp_path, tiny_encoder, data_dir, lr=1.0e30, max_grad_norm=None, restarts=2, max_steps=20,
                    validate_every=10)
    assert code != 0
    error = capsys.readouterr().err
    assert "stage 'target'" in error and "every restart failed" in error and "diverged at step" in error
    assert not list((out / "stages").glob("*/result.json"))  # nothing handed on as a finished stage


def test_guard_skips_until_the_limit_then_names_stage_step_and_cause():
    state = DivergenceState()
    state, skip = observe(state, 1, 0.7, True, "mid", 2e-5, 1.0)
    assert not skip
    for step in range(2, 2 + MAX_CONSECUTIVE_SKIPS - 1):
        state, skip = observe(state, step, math.nan, False, "mid", 1e30, None)
        assert skip
    with pytest.raises(TrainingDiverged) as caught:
        observe(state, 1 + MAX_CONSECUTIVE_SKIPS, math.nan, False, "mid", 1e30, None)
    assert caught.value.step == 2 and caught.value.reason == "diverged at step 2"
    assert "stage 'mid'" in str(caught.value) and "learning rate (lr: 1e+30)" in str(caught.value)
    assert "max_grad_norm" in str(caught.value)


def test_a_finite_step_resets_the_run_of_skips():
    state = DivergenceState()
    for step in range(1, 4 * MAX_CONSECUTIVE_SKIPS):
        finite = step % (MAX_CONSECUTIVE_SKIPS - 1) == 0
        state, skip = observe(state, step, 0.5 if finite else math.nan, finite, "s", 1e-3, 1.0)
        assert skip is not finite
    assert state.skipped_steps > MAX_CONSECUTIVE_SKIPS


def test_exploding_finite_loss_warns_once(caplog):
    state = DivergenceState()
    with caplog.at_level(logging.WARNING):
        state, _ = observe(state, 1, 0.7, True, "s", 1000.0, None)
        state, _ = observe(state, 2, 0.7 * LOSS_EXPLOSION_FACTOR / 2, True, "s", 1000.0, None)
        assert "times its first value" not in caplog.text
        for step in (3, 4):
            state, skip = observe(state, step, 2.8e10, True, "s", 1000.0, None)
            assert not skip
    assert caplog.text.count("times its first value") == 1
    assert "learning rate (lr: 1000) may be too high" in caplog.text


def test_non_finite_predictions_are_not_scored_but_constant_ones_score_zero():
    sts = get_task("sts-b")
    labels = np.array([0.5, 1.5, 3.0, 4.5])
    with pytest.raises(NonFinitePredictions, match="2 of 4 predictions are not finite"):
        metrics.compute_metrics(sts, np.array([np.nan, 1.0, np.inf, 2.0]), labels)
    assert metrics.compute_metrics(sts, np.full(4, 2.0), labels) == {"pearson": 0.0, "spearman": 0.0}


def test_a_classification_head_with_nan_outputs_is_not_read_as_a_class(tiny_encoder):
    """argmax of NaN logits is an index like any other; prediction refuses it instead."""
    from taskmix.models.encoder import HFEncoder
    from taskmix.models.model import MultiTaskModel
    from taskmix.training.features import TokenizedSplit
    from taskmix.training.predict import predict

    encoder = HFEncoder(str(tiny_encoder))
    head = ClassificationHead(encoder.hidden_size, 2, dropout=0.0)
    model = MultiTaskModel(encoder, {"rte": head})
    split = TokenizedSplit(ids=np.array([101, 2000, 102, 101, 2001, 102], dtype=np.int32),
                           offsets=np.array([0, 3, 6]), segment_starts=np.array([3, 3], dtype=np.int32),
                           labels=np.array([0, 1]), uids=["a", "b"])
    cpu = torch.device("cpu")
    assert predict(model, "rte", split, 8, 0, cpu, "fp32").tolist() in ([0, 0], [0, 1], [1, 0], [1, 1])
    with torch.no_grad():
        head.out.weight.fill_(math.nan)
    with pytest.raises(NonFinitePredictions, match="head 'rte': non-finite outputs"):
        predict(model, "rte", split, 8, 0, cpu, "fp32")
