"""Training-recipe options on the tiny random encoder and real GLUE rows.

Each test checks an effect the option has on training (optimizer state, the gradient the
optimizer sees, when validation runs, which rows form the dev set, the precision path, the
recomputation of activations), so it fails if the option stops reaching the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from taskmix.config import parse_experiment
from taskmix.errors import ConfigError
from taskmix.experiment import ExperimentRunner
from taskmix.training import stage as stage_module
from taskmix.training.device import autocast, grad_scaler, resolve_precision
from taskmix.training.stage import StageOutcome, StageTrainer
from taskmix.training.task_data import HOLDOUT_SPLIT

CPU = torch.device("cpu")
SMALL = {"batch_size": 8, "max_train_examples": 32, "max_dev_examples": 16, "dropout": 0.0, "predict_test": False}


def runner(tmp_path: Path, data_dir: Path, encoder: Any, stage: dict[str, Any]) -> ExperimentRunner:
    """An experiment runner for one stage on `encoder` (its name or mapping), outputs under tmp_path."""
    cfg = parse_experiment({"encoder": encoder, "precision": "fp32", "tensorboard": False,
                            "stages": [{"name": "s", **SMALL, **stage}]})
    return ExperimentRunner(cfg, data_dir, tmp_path / "run", tmp_path)


def train(tmp_path: Path, data_dir: Path, tiny_encoder: Path, stage: dict[str, Any], precision: str = "fp32",
          checkpoint: Path | None = None) -> StageOutcome:
    """Train the stage's tasks from the tiny encoder the way the experiment runner does."""
    exp = runner(tmp_path, data_dir, str(tiny_encoder), stage)
    cfg = exp.cfg.stages[0]
    tasks = exp.assembly.stage_tasks(cfg.tasks, cfg, np.random.default_rng(0))
    model = exp.assembly.fresh_model(None)
    torch.manual_seed(0)
    exp.assembly.add_heads(model, cfg.tasks, {}, cfg)
    trainer = StageTrainer(model, cfg, tasks, device=CPU, precision=precision, seed=0, pad_id=exp.rt.pad_id,
                           progress=False)
    return trainer.train(checkpoint=checkpoint)


@pytest.mark.parametrize("optimizer", ["adamw", "amsgrad"])
def test_amsgrad_keeps_the_running_maximum_of_second_moments(tmp_path, data_dir, tiny_encoder, optimizer):
    """AMSGrad (seed 000 App. B) is AdamW with `amsgrad`, which stores max_exp_avg_sq per parameter."""
    checkpoint = tmp_path / "stage.pt"
    train(tmp_path, data_dir, tiny_encoder, {"tasks": ["rte"], "max_steps": 3, "validate_every": 1,
                                             "optimizer": optimizer}, checkpoint=checkpoint)
    saved = torch.load(checkpoint, weights_only=False)["optimizer"]  # written at the validation of step 2
    amsgrad = optimizer == "amsgrad"
    assert {group["amsgrad"] for group in saved["param_groups"]} == {amsgrad}
    assert saved["state"] and all(("max_exp_avg_sq" in state) is amsgrad for state in saved["state"].values())


@pytest.mark.parametrize("max_grad_norm", [1e-3, None])
def test_the_optimizer_sees_gradients_clipped_to_max_grad_norm(tmp_path, data_dir, tiny_encoder, monkeypatch,
                                                               max_grad_norm):
    """The global gradient norm at each optimizer step is at most `max_grad_norm`; unclipped it is larger."""
    norms: list[float] = []

    def recording_adamw(*args: Any, **kwargs: Any) -> torch.optim.Optimizer:
        optimizer = build_adamw(*args, **kwargs)

        def record(opt: torch.optim.Optimizer, *_: Any) -> None:
            grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

        optimizer.register_step_pre_hook(record)
        return optimizer

    build_adamw = stage_module.build_adamw
    monkeypatch.setattr(stage_module, "build_adamw", recording_adamw)
    train(tmp_path, data_dir, tiny_encoder, {"tasks": ["rte"], "max_steps": 3, "max_grad_norm": max_grad_norm})
    assert len(norms) == 3
    if max_grad_norm is None:
        assert min(norms) > 1e-3
    else:
        assert max(norms) == pytest.approx(max_grad_norm, rel=1e-3)


@pytest.mark.parametrize(("tasks", "steps"), [(["rte"], [2, 4, 6, 8, 9]), (["rte", "mrpc"], [4, 8, 9])])
def test_validate_every_n_steps_times_the_number_of_tasks(tmp_path, data_dir, tiny_encoder, tasks, steps):
    """Seed 000 App. B: `validate_every: N` validates every N x (tasks in the mixture) steps, and after the last."""
    outcome = train(tmp_path, data_dir, tiny_encoder, {"tasks": tasks, "max_steps": 9, "validate_every": 2})
    assert [h["step"] for h in outcome.history] == steps


def test_dev_holdout_carves_a_fixed_dev_set_out_of_the_training_rows(tmp_path, data_dir, tiny_encoder):
    exp = runner(tmp_path, data_dir, str(tiny_encoder), {"tasks": [{"name": "rte", "dev_holdout": 20}],
                                                        "max_train_examples": None, "max_dev_examples": None})
    cfg = exp.cfg.stages[0]
    (first,) = exp.assembly.stage_tasks(cfg.tasks, cfg, np.random.default_rng(1))
    (second,) = exp.assembly.stage_tasks(cfg.tasks, cfg, np.random.default_rng(2))
    assert list(first.dev) == [HOLDOUT_SPLIT]
    held_out = set(first.dev[HOLDOUT_SPLIT].uids)
    train_rows = set(exp.rt.splits(first.task).get("train").uids)
    assert len(held_out) == 20 and held_out <= train_rows
    assert set(first.train.uids) == train_rows - held_out  # the rest trains, none of the held-out rows
    assert set(second.dev[HOLDOUT_SPLIT].uids) == held_out  # the same rows for every restart seed


def test_fp16_chooses_float16_autocast_and_loss_scaling(tmp_path, data_dir, tiny_encoder):
    """fp16 needs CUDA in a run; on CPU the same code path still trains: float16 autocast, a GradScaler
    that scales the loss, and its state in the stage checkpoint."""
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with autocast(CPU, "fp16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float16
    with autocast(CPU, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert grad_scaler(CPU, "fp32") is None and grad_scaler(CPU, "bf16") is None
    assert isinstance(grad_scaler(CPU, "fp16"), torch.amp.GradScaler)

    checkpoint = tmp_path / "stage.pt"
    outcome = train(tmp_path, data_dir, tiny_encoder, {"tasks": ["rte"], "max_steps": 3, "validate_every": 1},
                    precision="fp16", checkpoint=checkpoint)
    scaler = torch.load(checkpoint, weights_only=False)["scaler"]
    assert scaler is not None and scaler["scale"] > 1.0
    assert outcome.steps == 3 and np.isfinite(outcome.best.score)


@pytest.mark.parametrize("enabled", [True, False])
def test_gradient_checkpointing_recomputes_activations_in_backward(tmp_path, data_dir, tiny_encoder, enabled):
    """`encoder: {gradient_checkpointing: true}` reruns each layer's forward during backward, with equal gradients."""
    exp = runner(tmp_path, data_dir, {"name": str(tiny_encoder), "gradient_checkpointing": enabled}, {"tasks": ["rte"]})
    model = exp.assembly.fresh_model(None)
    model.train()
    calls = []  # the feed-forward block of layer 0 runs once forward, and again in backward when checkpointed
    model.encoder.model.encoder.layer[0].intermediate.register_forward_hook(lambda *_: calls.append(1))
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])
    model.encoder(ids, torch.ones_like(ids)).pooled.sum().backward()
    assert len(calls) == (2 if enabled else 1)
    gradient = model.encoder.input_embeddings().weight.grad[ids[0]]
    plain = runner(tmp_path, data_dir, str(tiny_encoder), {"tasks": ["rte"]}).assembly.fresh_model(None)
    plain.train()
    plain.encoder(ids, torch.ones_like(ids)).pooled.sum().backward()
    torch.testing.assert_close(gradient, plain.encoder.input_embeddings().weight.grad[ids[0]])
