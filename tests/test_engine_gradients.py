"""Engine numerics on a tiny random BERT: step-loss gradients, R3F and the LR schedules.

The tests load the tiny random BERT of `conftest.py` through `HFEncoder`, so they
check the real encoder/head/trainer code paths while staying well under a second each.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from taskmix.config import R3FConfig, StageConfig
from taskmix.mixture import MixtureConfig, loss_weights
from taskmix.models.encoder import HFEncoder
from taskmix.models.heads import build_head
from taskmix.models.model import MultiTaskModel
from taskmix.kinds.classification import CLASSIFICATION
from taskmix.kinds.regression import REGRESSION
from taskmix.tasks.base import Task
from taskmix.training.batching import collate
from taskmix.training.features import TokenizedSplit
from taskmix.training.r3f import r3f_forward, sample_noise, symmetric_kl
from taskmix.training.stage import (
    Evaluation,
    Progress,
    StageTrainer,
    constant_factor,
    linear_warmup_decay,
)
from taskmix.training.stage_task import LabelledStageTask

PAD_ID = 0
CPU = torch.device("cpu")

TASKS = {
    "pair2": Task(name="pair2", kind=CLASSIFICATION, metrics=("accuracy",), splits={}, labels=("no", "yes")),
    "nli3": Task(name="nli3", kind=CLASSIFICATION, metrics=("accuracy",), splits={},
                 labels=("entailment", "neutral", "contradiction")),
    "sts": Task(name="sts", kind=REGRESSION, metrics=("pearson",), splits={}),
}
# Distinct training sizes so that size-based loss scaling gives distinct weights.
TRAIN_SIZES = {"pair2": 4, "nli3": 9, "sts": 16}


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_model(tiny_encoder: Path) -> MultiTaskModel:
    """Encoder plus one head per task, built the way the experiment runner builds them (dropout 0)."""
    torch.manual_seed(1)
    encoder = HFEncoder(str(tiny_encoder))
    heads = {name: build_head(task.kind.head, encoder.hidden_size, task.num_classes, dropout=0.0)
             for name, task in TASKS.items()}
    return MultiTaskModel(encoder, heads)


@pytest.fixture()
def model(base_model: MultiTaskModel) -> MultiTaskModel:
    """A fresh copy per test, so gradients and modes never leak between tests."""
    fresh = copy.deepcopy(base_model)
    fresh.zero_grad(set_to_none=True)
    return fresh


def make_split(task: Task, n: int, seed: int) -> TokenizedSplit:
    """A hand-built split: random ids in 5..63, lengths 3..11, some pairs, labels of the task's kind."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, size=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    ids = rng.integers(5, 64, size=int(offsets[-1])).astype(np.int32)
    # Every other example is a sentence pair whose second segment starts half-way.
    starts = np.where(np.arange(n) % 2 == 0, lengths, lengths // 2).astype(np.int32)
    if task.kind is REGRESSION:
        labels = rng.uniform(0.0, 5.0, size=n).astype(np.float32)
    else:
        labels = rng.integers(0, task.num_classes, size=n).astype(np.int64)
    return TokenizedSplit(ids=ids, offsets=offsets, segment_starts=starts, labels=labels,
                          uids=[f"{task.name}-{i}" for i in range(n)])


@pytest.fixture(scope="module")
def splits() -> dict[str, TokenizedSplit]:
    return {name: make_split(TASKS[name], TRAIN_SIZES[name], seed=i) for i, name in enumerate(TASKS)}


def stage_tasks(splits: dict[str, TokenizedSplit]) -> list[LabelledStageTask]:
    return [LabelledStageTask(task=TASKS[n], head=n, train=splits[n], dev={"dev": splits[n]}) for n in TASKS]


def stage_config(mixture: MixtureConfig, **overrides: object) -> StageConfig:
    return StageConfig(name="s", tasks=list(TASKS), mixture=mixture, dropout=0.0, **overrides)


class FixedSchedule:
    """Stands in for a mixture schedule: `_step_losses` only calls `record`, which we log to check it."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, int]] = []

    def record(self, name: str, n_tokens: int) -> None:
        self.recorded.append((name, n_tokens))


# A heterogeneous step of k = 3 sub-batches; a task may appear twice (sampling is with replacement).
STEP_NAMES = ["nli3", "sts", "nli3"]
STEP_BATCHES = {
    "nli3": [np.array([0, 3, 5, 8]), np.array([1, 2, 7])],
    "sts": [np.array([4, 9, 11, 15, 2])],
}


def fixed_streams() -> dict[str, Iterator[np.ndarray]]:
    return {name: iter(list(batches)) for name, batches in STEP_BATCHES.items()}


def manual_step_loss(model: MultiTaskModel, splits: dict[str, TokenizedSplit], weights: dict[str, float],
                     divisor: float) -> torch.Tensor:
    """Σ_i w_i L_i / divisor over the step's sub-batches, written out without the trainer."""
    streams = fixed_streams()
    terms = []
    for name in STEP_NAMES:
        batch = collate(splits[name], next(streams[name]), PAD_ID)
        logits = model(name, batch)
        if TASKS[name].kind is REGRESSION:
            task_loss = F.mse_loss(logits, batch["labels"].float())
        else:
            task_loss = F.cross_entropy(logits, batch["labels"])
        terms.append(weights[name] * task_loss)
    return torch.stack(terms).sum() / divisor


def grads(model: MultiTaskModel) -> dict[str, torch.Tensor | None]:
    return {n: (None if p.grad is None else p.grad.detach().clone()) for n, p in model.named_parameters()}


def assert_same_grads(actual: dict[str, torch.Tensor | None], expected: dict[str, torch.Tensor | None]) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        if expected[name] is None:
            assert actual[name] is None, f"{name} got a gradient the manual loss does not give it"
            continue
        assert actual[name] is not None, f"{name} has no gradient"
        torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=1e-5, msg=lambda m: f"{name}: {m}")


# -- 1. per-step loss and gradients ---------------------------------------------------------
HETEROGENEOUS_SCALINGS = [{"name": "power", "alpha": 0.5}, "log_classes"]


@pytest.mark.parametrize("scaling", HETEROGENEOUS_SCALINGS, ids=["power", "log_classes"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("accumulation", [1, 2])
def test_step_gradients_equal_weighted_task_losses(model: MultiTaskModel, splits: dict[str, TokenizedSplit],
                                                   scaling: object, reduction: str, accumulation: int) -> None:
    """Muppet §3.2 heterogeneous step: grad of Σ w_i L_i / k (mean) or Σ w_i L_i (sum), over grad accumulation."""
    mixture = MixtureConfig.model_validate(
        {"batching": "heterogeneous", "tasks_per_step": 3, "loss_scaling": scaling}
    )
    weights = loss_weights(mixture, TRAIN_SIZES, {n: t.num_classes for n, t in TASKS.items()})
    assert len({round(w, 9) for w in weights.values() if w}) > 1, "the check needs non-uniform weights"
    trainer = StageTrainer(model, stage_config(mixture, grad_accumulation=accumulation), stage_tasks(splits),
                           device=CPU, precision="fp32", seed=0, pad_id=PAD_ID, progress=False)
    reference = copy.deepcopy(model)
    schedule = FixedSchedule()

    total = trainer._step_losses(list(STEP_NAMES), fixed_streams(), weights, reduction, None, schedule)

    divisor = (len(STEP_NAMES) if reduction == "mean" else 1) * accumulation
    expected_loss = manual_step_loss(reference, splits, weights, divisor)
    expected_loss.backward()
    expected_loss = expected_loss.detach()
    assert total == pytest.approx(expected_loss.item(), rel=1e-5)
    assert_same_grads(grads(model), grads(reference))
    # The unused head gets nothing; used parts get a real (non-zero) gradient.
    assert model.heads["pair2"].out.weight.grad is None
    assert model.heads["sts"].out.weight.grad.abs().sum() > 0
    assert model.encoder.input_embeddings().weight.grad.abs().sum() > 0
    # Every sub-batch is recorded with its real (unpadded) token count.
    expected_tokens = []
    streams = fixed_streams()
    for name in STEP_NAMES:
        expected_tokens.append((name, int(splits[name].lengths[next(streams[name])].sum())))
    assert schedule.recorded == expected_tokens


def test_mean_reduction_is_sum_over_k(model: MultiTaskModel, splits: dict[str, TokenizedSplit]) -> None:
    """The two reductions differ by exactly the number of sub-batches in the step (catches a wrong divisor)."""
    mixture = MixtureConfig.model_validate({"batching": "heterogeneous", "tasks_per_step": 3, "loss_scaling": "log_classes"})
    weights = loss_weights(mixture, TRAIN_SIZES, {n: t.num_classes for n, t in TASKS.items()})
    results = {}
    for reduction in ("mean", "sum"):
        copy_ = copy.deepcopy(model)
        trainer = StageTrainer(copy_, stage_config(mixture), stage_tasks(splits), device=CPU, precision="fp32",
                               seed=0, pad_id=PAD_ID, progress=False)
        total = trainer._step_losses(list(STEP_NAMES), fixed_streams(), weights, reduction, None, FixedSchedule())
        results[reduction] = (total, grads(copy_))
    assert results["sum"][0] == pytest.approx(3 * results["mean"][0], rel=1e-6)
    mean_grads, sum_grads = results["mean"][1], results["sum"][1]
    for name, g in sum_grads.items():
        if g is not None:
            torch.testing.assert_close(g, 3 * mean_grads[name], atol=1e-6, rtol=1e-5)


def test_r3f_with_zero_noise_leaves_step_gradients_unchanged(model: MultiTaskModel,
                                                              splits: dict[str, TokenizedSplit]) -> None:
    """With sigma = 0 the symmetric KL is at its minimum, so R3F adds neither loss nor gradient."""
    mixture = MixtureConfig.model_validate({"batching": "heterogeneous", "tasks_per_step": 3})
    weights = loss_weights(mixture, TRAIN_SIZES)
    outcomes = []
    for r3f in (None, R3FConfig(weight=5.0, sigma=0.0)):
        copy_ = copy.deepcopy(model)
        trainer = StageTrainer(copy_, stage_config(mixture, r3f=r3f), stage_tasks(splits), device=CPU,
                               precision="fp32", seed=0, pad_id=PAD_ID, progress=False)
        total = trainer._step_losses(list(STEP_NAMES), fixed_streams(), weights, "mean", None, FixedSchedule())
        outcomes.append((total, grads(copy_)))
    assert outcomes[1][0] == pytest.approx(outcomes[0][0], abs=1e-6)
    assert_same_grads(outcomes[1][1], outcomes[0][1])


def test_r3f_noise_changes_step_gradients(model: MultiTaskModel, splits: dict[str, TokenizedSplit]) -> None:
    """With real noise the R3F term enters the step loss (guards against the term being dropped)."""
    mixture = MixtureConfig.model_validate({"batching": "heterogeneous", "tasks_per_step": 3})
    weights = loss_weights(mixture, TRAIN_SIZES)
    totals = []
    for r3f in (None, R3FConfig(weight=1.0, sigma=0.5)):
        torch.manual_seed(3)
        trainer = StageTrainer(copy.deepcopy(model), stage_config(mixture, r3f=r3f), stage_tasks(splits),
                               device=CPU, precision="fp32", seed=0, pad_id=PAD_ID, progress=False)
        totals.append(trainer._step_losses(list(STEP_NAMES), fixed_streams(), weights, "mean", None, FixedSchedule()))
    assert totals[1] > totals[0] + 1e-9


# -- 2. R3F -------------------------------------------------------------------------------
def r3f_batch(splits: dict[str, TokenizedSplit], name: str) -> dict[str, torch.Tensor]:
    return collate(splits[name], np.arange(4), PAD_ID)


@pytest.mark.parametrize("noise", ["normal", "uniform"])
def test_r3f_zero_sigma_gives_zero_extra(model: MultiTaskModel, splits: dict[str, TokenizedSplit], noise: str) -> None:
    """Noise of scale 0 leaves the prediction unchanged, so the symmetric KL term vanishes."""
    model.eval()
    batch = r3f_batch(splits, "nli3")
    logits, extra = r3f_forward(model, "nli3", batch, weight=1.0, sigma=0.0, kind=noise)
    assert extra.ndim == 0
    assert extra.item() < 1e-7
    torch.testing.assert_close(logits, model("nli3", batch))


@pytest.mark.parametrize("noise", ["normal", "uniform"])
def test_r3f_noise_gives_positive_extra_scaled_by_weight(model: MultiTaskModel, splits: dict[str, TokenizedSplit],
                                                         noise: str) -> None:
    """sigma = 1e-2 moves the prediction, the term is positive, differentiable and linear in lambda."""
    model.eval()
    batch = r3f_batch(splits, "pair2")
    torch.manual_seed(7)
    logits, extra = r3f_forward(model, "pair2", batch, weight=1.0, sigma=1e-2, kind=noise)
    torch.manual_seed(7)
    _, extra_x3 = r3f_forward(model, "pair2", batch, weight=3.0, sigma=1e-2, kind=noise)
    assert extra.item() > 0
    assert extra_x3.item() == pytest.approx(3 * extra.item(), rel=1e-5)
    # The clean logits are the plain forward's; the extra term carries gradient into the encoder.
    torch.testing.assert_close(logits, model("pair2", batch))
    extra.backward()
    assert model.encoder.input_embeddings().weight.grad.abs().sum() > 0


def test_r3f_regression_head_gives_zero_extra(model: MultiTaskModel, splits: dict[str, TokenizedSplit]) -> None:
    """A regression head has no categorical distribution, so even large noise adds nothing."""
    batch = r3f_batch(splits, "sts")
    logits, extra = r3f_forward(model, "sts", batch, weight=1.0, sigma=1.0, kind="normal")
    assert extra.item() == 0.0
    assert logits.shape == (4,)
    torch.testing.assert_close(logits, model("sts", batch))


def test_sample_noise_kinds() -> None:
    """Uniform noise lies in [-sigma, sigma]; normal noise has standard deviation sigma."""
    like = torch.zeros(200, 50)
    torch.manual_seed(0)
    uniform = sample_noise(like, "uniform", 0.1)
    normal = sample_noise(like, "normal", 0.1)
    assert uniform.shape == like.shape and uniform.dtype == like.dtype
    assert float(uniform.abs().max()) <= 0.1
    assert float(uniform.std()) == pytest.approx(0.1 / math.sqrt(3), rel=0.05)
    assert float(normal.std()) == pytest.approx(0.1, rel=0.05)
    assert float(normal.abs().max()) > 0.1


def test_symmetric_kl_matches_hand_computation() -> None:
    """KL(p||q) + KL(q||p), summed over classes and averaged over the batch."""
    logits_p = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    logits_q = torch.tensor([[0.0, 0.2, 0.3], [-1.0, 1.5, 0.0]])
    p, q = logits_p.softmax(-1), logits_q.softmax(-1)
    kl_pq = (p * (p.log() - q.log())).sum(-1)
    kl_qp = (q * (q.log() - p.log())).sum(-1)
    expected = (kl_pq + kl_qp).mean()
    torch.testing.assert_close(symmetric_kl(logits_p, logits_q), expected)
    torch.testing.assert_close(symmetric_kl(logits_q, logits_p), expected)
    # Softmax is shift-invariant: the same distribution written with shifted logits has zero divergence.
    assert float(symmetric_kl(logits_p, logits_p + 4.0)) == pytest.approx(0.0, abs=1e-6)


# -- 3. learning-rate schedules ---------------------------------------------------------------
@pytest.mark.parametrize(("total", "fraction"), [(100, 0.1), (37, 0.25)])
def test_linear_warmup_decay_factors(total: int, fraction: float) -> None:
    """Linear warmup to the peak over int(total * fraction) steps, then linear decay to zero at `total`.

    The warmup is shifted by one step ((step + 1) / warmup), so the first update already
    has a non-zero learning rate and the peak is reached on the last warmup step.
    """
    warmup = int(total * fraction)
    factor = linear_warmup_decay(total, fraction)
    assert factor(0) == pytest.approx(1 / warmup)
    assert factor(warmup - 1) == pytest.approx(1.0)
    assert factor(warmup) == pytest.approx(1.0)
    assert factor(warmup + 1) == pytest.approx((total - warmup - 1) / (total - warmup))
    assert factor(total - 1) == pytest.approx(1 / (total - warmup))
    assert factor(total) == 0.0
    assert factor(total + 5) == 0.0
    values = [factor(s) for s in range(total)]
    assert values[:warmup] == sorted(values[:warmup])
    assert values[warmup:] == sorted(values[warmup:], reverse=True)
    assert all(0 < v <= 1 for v in values)


def test_linear_warmup_decay_drives_lambda_lr() -> None:
    """Through LambdaLR the lr of optimizer step s is lr * factor(s); no warmup starts at the peak."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=2e-5)
    factor = linear_warmup_decay(10, 0.2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    seen = []
    for _ in range(10):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [2e-5 * f for f in (0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8)]
    assert seen == pytest.approx(expected)
    assert linear_warmup_decay(10, 0.0)(0) == 1.0


def plateau_trainer(model: MultiTaskModel, splits: dict[str, TokenizedSplit], scores: list[float],
                    **overrides: object) -> StageTrainer:
    """A trainer whose dev evaluation returns the given scores in turn (no real evaluation needed)."""
    trainer = StageTrainer(model, stage_config(MixtureConfig(), scheduler="plateau", **overrides),
                           stage_tasks(splits), device=CPU, precision="fp32", seed=0, pad_id=PAD_ID, progress=False)
    queue = iter(scores)

    def fake_evaluate() -> Evaluation:
        score = next(queue)
        return Evaluation(metrics={}, scores={"nli3": score}, score=score)

    trainer.evaluate = fake_evaluate  # type: ignore[method-assign]
    return trainer


def constant_lr_optimizer() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """A stand-in optimizer at lr 1e-3 with the constant schedule the plateau recipe runs on."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, constant_factor)


def test_plateau_halves_lr_after_patience_and_stops_below_min(model: MultiTaskModel,
                                                              splits: dict[str, TokenizedSplit]) -> None:
    """Seed 000 App. B: decay the lr after `lr_decay_patience` checks without improvement; stop under min_lr."""
    trainer = plateau_trainer(model, splits, [0.5, 0.4, 0.4, 0.3, 0.6, 0.1, 0.1],
                              lr=1e-3, lr_decay_patience=1, lr_decay_factor=0.5, min_lr=3e-4)
    optimizer, scheduler = constant_lr_optimizer()
    progress = Progress()
    lrs = []
    for _ in range(7):
        trainer._validate(progress, optimizer, scheduler)
        optimizer.step()
        scheduler.step()  # the decayed lr must survive the scheduler's next step
        lrs.append(optimizer.param_groups[0]["lr"])
        if progress.stopped:
            break
    # checks: best, 1 bad, 2 bad -> halve, 1 bad, new best (counter reset), 1 bad, 2 bad -> halve below min
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 5e-4, 2.5e-4])
    assert progress.stopped
    assert progress.best is not None and progress.best.score == 0.6
    assert [h["score"] for h in progress.history] == [0.5, 0.4, 0.4, 0.3, 0.6, 0.1, 0.1]
    assert progress.best_state is not None


def test_early_stopping_after_patience(model: MultiTaskModel, splits: dict[str, TokenizedSplit]) -> None:
    """`patience` checks without improvement are tolerated; one more stops the stage."""
    trainer = plateau_trainer(model, splits, [0.5, 0.5, 0.4, 0.45], patience=2, lr_decay_patience=100)
    optimizer, scheduler = constant_lr_optimizer()
    progress = Progress()
    stopped_after = []
    for _ in range(4):
        trainer._validate(progress, optimizer, scheduler)
        stopped_after.append(progress.stopped)
    # An equal score is not an improvement.
    assert stopped_after == [False, False, False, True]
    assert optimizer.param_groups[0]["lr"] == 1e-3
