"""One stage: train a model on a mixture of tasks with a fresh optimizer, validate, stop, restore the best.

Single-task fine-tuning, intermediate training, multi-task training and self-supervised
pretraining are all this loop; what differs is the tasks (see `stage_task.TrainableTask`),
the mixture (which tasks each step sees and how their losses are scaled) and the stopping
rules from the stage config.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taskmix import metrics as glue_metrics
from taskmix.config import StageConfig
from taskmix.errors import NonFinitePredictions, TaskmixError
from taskmix.mixture import build_schedule, loss_weights, sub_batches_per_step
from taskmix.models.model import MultiTaskModel
from taskmix.rundir import load_torch, save_torch
from taskmix.tensor_state import predictions_from_plain, to_plain
from taskmix.training import distributed
from taskmix.training.batching import to_device
from taskmix.training.device import autocast, build_adamw, default_eval_batch_size, grad_scaler
from taskmix.training.freezing import apply_freezing, encoder_is_fixed, set_training_mode
from taskmix.training.frozen_features import FrozenFeatureCache, with_cached_features
from taskmix.training.progress import StepProgress
from taskmix.training.divergence import DivergenceState, TrainingDiverged, observe
from taskmix.training.tracking import NullTracker
from taskmix.training.r3f import r3f_forward
from taskmix.training.stage_task import TrainableTask

log = logging.getLogger(__name__)

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


@dataclass
class Evaluation:
    """Dev metrics per task, the task scores and the mixture's validation score, plus the dev
    predictions of labelled tasks (task -> split -> per-row predictions)."""

    metrics: dict[str, dict[str, float]]
    scores: dict[str, float]
    score: float
    predictions: dict[str, dict[str, np.ndarray]] | None = None


@dataclass
class StageOutcome:
    best: Evaluation
    steps: int
    seconds: float
    train_examples: int
    history: list[dict] = field(default_factory=list)
    rank_digests: list[str] | None = None  # under torchrun: each rank's parameter digest after the last step


def evaluate_tasks(model, tasks: list[TrainableTask], batch_size: int, pad_id: int, device, precision) -> Evaluation:
    """Score every task of the stage on its dev data; `mixture_validation_score` combines them."""
    evaluations = {st.name: st.evaluate(model, batch_size, pad_id, device, precision) for st in tasks}
    per_task = {name: e.metrics for name, e in evaluations.items()}
    scores = {name: glue_metrics.task_score(m) for name, m in per_task.items()}
    return Evaluation(per_task, scores, glue_metrics.mixture_validation_score(per_task),
                      {name: e.predictions for name, e in evaluations.items() if e.predictions})


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only, as BERT fine-tuning does."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith(NO_DECAY) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def linear_warmup_decay(total_steps: int, warmup_fraction: float):
    warmup = int(total_steps * warmup_fraction)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


class StageTrainer:
    """Runs one stage's training loop on a model whose heads for the stage's tasks exist."""

    def __init__(
        self,
        model: MultiTaskModel,
        cfg: StageConfig,
        tasks: list[TrainableTask],
        *,
        device: torch.device,
        precision: str,
        seed: int,
        pad_id: int,
        eval_batch_size: int | None = None,
        progress: bool = True,
        tracker: NullTracker | None = None,
        feature_cache: FrozenFeatureCache | None = None,
    ):
        self.model = model
        self.cfg = cfg
        self.tasks = {st.name: st for st in tasks}
        self.device = device
        self.precision = precision
        self.seed = seed
        self.pad_id = pad_id
        self.eval_batch_size = eval_batch_size or default_eval_batch_size(device)
        self.progress = progress
        self.tracker = tracker or NullTracker()
        self.feature_cache = feature_cache or FrozenFeatureCache()

    # -- planning -----------------------------------------------------------------------
    def _sizes(self) -> dict[str, int]:
        return {name: st.size for name, st in self.tasks.items()}

    def total_steps(self, sub_batches_per_step: float) -> int:
        """Optimizer steps: `max_steps`, or epochs over all tasks' training rows (summed over ranks)."""
        if self.cfg.max_steps:
            return self.cfg.max_steps
        examples = sum(self._sizes().values())
        per_step = self.cfg.batch_size * sub_batches_per_step * self.cfg.grad_accumulation * distributed.world_size()
        return max(1, math.ceil(self.cfg.max_epochs * examples / per_step))

    def validation_interval(self, steps_per_epoch: int) -> int:
        """Seed 000 App. B: validate every N steps times the number of tasks in the mixture.

        Without an explicit `validate_every`, heads that come with their own cadence (Table 5's
        100/100/1000 steps of the sesame heads) set N, the largest of the stage's heads.
        """
        every = self.cfg.validate_every
        if "validate_every" not in self.cfg.model_fields_set:
            own = [h.validation_steps for h in (self.model.heads[st.head] for st in self.tasks.values())
                   if h.validation_steps is not None]
            every = max(own) if own else every
        if every == "epoch":
            return max(1, steps_per_epoch)
        return every * len(self.tasks)

    # -- training -----------------------------------------------------------------------
    def evaluate(self) -> Evaluation:
        return evaluate_tasks(
            self.model, list(self.tasks.values()), self.eval_batch_size, self.pad_id, self.device, self.precision
        )

    def _evaluate_after(self, step: int) -> Evaluation:
        """Dev evaluation after `step`; a model predicting NaN has diverged (it must not score 0.0)."""
        try:
            return self.evaluate()
        except NonFinitePredictions as exc:
            raise TrainingDiverged(f"stage '{self.cfg.name}': diverged by step {step}: {exc}", step) from None

    def _step_losses(self, names: list[str], streams, weights, reduction: str, scale: float, schedule) -> float:
        """Forward and backward every sub-batch of one step; returns the summed loss for logging."""
        total = 0.0
        divisor = len(names) if reduction == "mean" else 1
        r3f = self.cfg.r3f
        for name in names:
            st = self.tasks[name]
            batch = to_device(st.to_batch(next(streams[name]), self.pad_id), self.device)
            with autocast(self.device, self.precision):
                if r3f is not None:
                    logits, extra = r3f_forward(self.model, st.head, batch, r3f.weight, r3f.sigma, r3f.noise)
                else:
                    logits, extra = self.model(st.head, batch), 0.0
                loss = self.model.heads[st.head].loss(logits, batch) + extra
            loss = loss * weights[name] / divisor / self.cfg.grad_accumulation
            (scale(loss) if scale else loss).backward()
            total += float(loss.detach())
            # Token budgets count every rank's tokens; ranks see similar lengths, so this rank's times the world.
            schedule.record(name, int(batch["attention_mask"].sum()) * distributed.world_size())
        return total

    def train(self, checkpoint: Path | None = None) -> StageOutcome:
        """Train to the step limit or a stopping rule; with `checkpoint`, save at validations and resume.

        The checkpoint holds everything that decides the rest of training (weights, optimizer,
        scheduler, data position, mixture schedule, RNG, best-so-far state), so a resumed stage
        ends exactly where an uninterrupted one would.  The last validation saves nothing: the
        caller stores the finished stage at once.  Under torchrun every rank trains on its
        shard of each task with its own task schedule; rank 0 validates and saves.
        """
        cfg = self.cfg
        rank, world = distributed.rank(), distributed.world_size()
        torch.manual_seed(distributed.rank_seed(self.seed, rank))
        counts = apply_freezing(self.model, cfg.frozen)
        log.info("stage '%s': %d trainable parameters, %d frozen%s", cfg.name, counts.trainable, counts.frozen,
                 " (encoder frozen)" if cfg.frozen else "")
        if cfg.frozen and cfg.cache_features and encoder_is_fixed(self.model, cfg.frozen):
            cached = with_cached_features(list(self.tasks.values()), self.model, self.feature_cache,
                                          pad_id=self.pad_id, batch_size=self.eval_batch_size, device=self.device,
                                          precision=self.precision)
            self.tasks = {st.name: st for st in cached}
        distributed.broadcast_module(self.model)
        sizes = self._sizes()
        total_steps = self.total_steps(sub_batches_per_step(cfg.mixture, len(sizes)))
        schedule = build_schedule(cfg.mixture, task_sizes=sizes, seed=distributed.rank_seed(self.seed, rank),
                                  total_steps=total_steps, batch_size=cfg.batch_size)
        weights = loss_weights(
            cfg.mixture, task_sizes=sizes, num_classes={n: st.num_outputs for n, st in self.tasks.items()}
        )
        streams = {n: st.stream(cfg.batch_size, self.seed + 7919 * i, (rank, world), cfg.length_grouping)
                   for i, (n, st) in enumerate(self.tasks.items())}
        steps_per_epoch = math.ceil(total_steps / cfg.max_epochs) if not cfg.max_steps else total_steps
        interval = self.validation_interval(steps_per_epoch)

        optimizer = build_adamw(
            parameter_groups(self.model, cfg.weight_decay), cfg.lr, cfg.weight_decay, cfg.optimizer == "amsgrad", self.device
        )
        lr_factor = linear_warmup_decay(total_steps, cfg.warmup) if cfg.scheduler == "linear" else constant_factor
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        scaler = grad_scaler(self.device, self.precision)
        progress = Progress()
        if checkpoint is not None and checkpoint.exists():
            progress = self._resume(checkpoint, optimizer, scheduler, scaler, schedule, streams)
            log.info("resuming stage at step %d/%d", progress.step, total_steps)

        started = time.perf_counter() - progress.seconds
        set_training_mode(self.model, cfg.frozen)
        bar = StepProgress(total_steps, progress.step, "+".join(self.tasks), self.progress and distributed.is_main())
        finished = schedule.finished
        while progress.step < total_steps and not finished and not progress.stopped:
            optimizer.zero_grad(set_to_none=True)
            loss = 0.0
            for _ in range(cfg.grad_accumulation):
                loss += self._step_losses(
                    schedule.next_step(), streams, weights, schedule.reduction, scaler.scale if scaler else None, schedule
                )
            distributed.average_gradients(list(self.model.parameters()))
            if scaler:
                scaler.unscale_(optimizer)
            skip, grad_norm = self._guard(progress, loss, scaler is not None)
            if not skip:
                if cfg.max_grad_norm:
                    torch.nn.utils.clip_grads_with_norm_(self.model.parameters(), cfg.max_grad_norm, grad_norm)
                if scaler:
                    scaler.step(optimizer)
                else:
                    optimizer.step()
            if scaler:
                scaler.update()
            scheduler.step()
            progress.step += 1
            if not skip:  # a skipped step's loss is not finite and would poison the running mean
                progress.loss = 0.98 * progress.loss + 0.02 * loss if progress.step > 1 else loss
            bar.update(progress.loss)
            self.tracker.scalars(progress.step, {"train/loss": loss, "train/lr": optimizer.param_groups[0]["lr"]})
            finished = distributed.any_rank(schedule.finished)
            if progress.step % interval == 0 or progress.step == total_steps or finished:
                if distributed.is_main():
                    self._validate(progress, optimizer, scheduler)
                progress = self._share_decisions(progress, optimizer, scheduler)
                done = progress.step >= total_steps or finished or progress.stopped
                if checkpoint is not None and not done:  # a finished stage is stored by the caller instead
                    progress.seconds = time.perf_counter() - started
                    self._save(checkpoint, progress, optimizer, scheduler, scaler, schedule, streams)
        bar.close()
        self.tracker.close()
        # Each rank's weights after its last step: identical on every rank when gradients were averaged.
        digests = distributed.gather_objects(distributed.parameter_digest(self.model.state_dict())) \
            if distributed.active() else None
        if progress.best_state is not None:
            self.model.load_state_dict(progress.best_state)
        distributed.broadcast_module(self.model)  # rank 0 alone kept the best state
        return StageOutcome(
            best=progress.best if progress.best is not None else self._evaluate_after(progress.step),
            steps=progress.step,
            seconds=time.perf_counter() - started,
            train_examples=sum(sizes.values()),
            history=progress.history,
            rank_digests=digests,
        )

    def _guard(self, progress: "Progress", loss: float, scaled: bool) -> tuple[bool, torch.Tensor | None]:
        """Whether to skip this step's update (non-finite loss or gradients), and the gradient norm
        (None when neither the check nor clipping needs it).

        Under fp16 the loss scaler already skips steps whose gradients overflowed and lowers
        its scale, so only the loss counts there; the decision is shared by every rank.
        """
        norm = None
        if not scaled or self.cfg.max_grad_norm:  # fp16 without clipping needs no norm
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        finite = math.isfinite(loss) and (scaled or bool(torch.isfinite(norm)))
        progress.divergence, skip = observe(progress.divergence, progress.step + 1, loss,
                                            not distributed.any_rank(not finite), self.cfg.name, self.cfg.lr,
                                            self.cfg.max_grad_norm)
        return skip, norm

    @staticmethod
    def _share_decisions(progress: "Progress", optimizer, scheduler) -> "Progress":
        """Give every rank rank 0's validation outcome: best score, stopping flags and learning rates."""
        if not distributed.active():
            return progress
        shared, lrs, base_lrs = distributed.broadcast_object(
            (replace(progress, best_state=None), [g["lr"] for g in optimizer.param_groups], scheduler.base_lrs))
        if distributed.is_main():
            return progress
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr
        scheduler.base_lrs = base_lrs
        return shared

    def _validate(self, progress: "Progress", optimizer, scheduler) -> None:
        """Evaluate, keep the best state, and apply early stopping and LR-on-plateau (seed 000 App. B)."""
        cfg = self.cfg
        current = self._evaluate_after(progress.step)
        set_training_mode(self.model, cfg.frozen)
        progress.history.append({"step": progress.step, "score": current.score, "scores": current.scores,
                                 "loss": progress.loss, "lr": optimizer.param_groups[0]["lr"]})
        self.tracker.scalars(progress.step, {
            "dev/score": current.score,
            **{f"dev/{task}/{name}": value for task, values in current.metrics.items() for name, value in values.items()},
        })
        log.info("step %d: dev %s (mixture score %.4f)", progress.step,
                 ", ".join(f"{k}={v:.4f}" for k, v in current.scores.items()), current.score)
        if progress.best is None or current.score > progress.best.score:
            progress.best, progress.since_best, progress.since_decay = current, 0, 0
            progress.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            return
        progress.since_best += 1
        progress.since_decay += 1
        if cfg.patience is not None and progress.since_best > cfg.patience:
            log.info("early stopping after %d checks without improvement", progress.since_best)
            progress.stopped = True
        if cfg.scheduler == "plateau" and progress.since_decay > cfg.lr_decay_patience:
            progress.since_decay = 0
            for group in optimizer.param_groups:
                group["lr"] *= cfg.lr_decay_factor
            scheduler.base_lrs = [g["lr"] for g in optimizer.param_groups]
            if optimizer.param_groups[0]["lr"] < cfg.min_lr:
                log.info("stopping: learning rate fell below %g", cfg.min_lr)
                progress.stopped = True

    def _save(self, path: Path, progress: "Progress", optimizer, scheduler, scaler, schedule, streams) -> None:
        """Rank 0 writes the shared state plus every rank's own data position, schedule and RNG."""
        ranks = distributed.gather_objects(rank_state(schedule, streams))
        if not distributed.is_main():
            return
        ranks = to_plain(ranks)
        save_torch(path, {
            "progress": progress.state(), "model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
            **ranks[0], "ranks": ranks,
        })

    def _resume(self, path: Path, optimizer, scheduler, scaler, schedule, streams) -> "Progress":
        saved = load_torch(path)
        ranks = saved.get("ranks", [saved])
        if len(ranks) != distributed.world_size():
            raise TaskmixError(f"{path}: saved by {len(ranks)} process(es); resume it with the same number "
                               f"(this run has {distributed.world_size()})")
        own = ranks[distributed.rank()]
        self.model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if scaler and saved["scaler"]:
            scaler.load_state_dict(saved["scaler"])
        schedule.load_state_dict(own["schedule"])
        for name, state in own["streams"].items():
            streams[name].load_state_dict(state)
        torch.set_rng_state(own["torch_rng"])
        if own["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(own["cuda_rng"])
        return Progress.from_state(saved["progress"])


def rank_state(schedule, streams) -> dict:
    """What differs between ranks and decides the rest of training: data position, schedule, RNG."""
    return {
        "schedule": schedule.state_dict(), "streams": {n: s.state_dict() for n, s in streams.items()},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def constant_factor(step: int) -> float:
    return 1.0


@dataclass
class Progress:
    """Training-loop state that must survive an interruption."""

    step: int = 0
    loss: float = 0.0
    seconds: float = 0.0
    best: Evaluation | None = None
    best_state: dict | None = None
    since_best: int = 0
    since_decay: int = 0
    stopped: bool = False
    history: list[dict] = field(default_factory=list)
    divergence: DivergenceState = DivergenceState()

    def state(self) -> dict[str, Any]:
        """Tensors and plain data only, so the resume file loads with `weights_only`."""
        nested = ("best", "best_state", "divergence")
        state = to_plain({f.name: getattr(self, f.name) for f in fields(self) if f.name not in nested})
        best = None if self.best is None else to_plain({f.name: getattr(self.best, f.name) for f in fields(self.best)})
        return {**state, "best": best, "best_state": self.best_state, "divergence": asdict(self.divergence)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Progress":
        best = state["best"]
        if best is not None:
            best = Evaluation(**dict(best, predictions=predictions_from_plain(best["predictions"])))
        return cls(**dict(state, best=best, divergence=DivergenceState(**state.get("divergence", {}))))
