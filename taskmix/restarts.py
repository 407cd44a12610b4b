"""A stage group's restarts: each trains from the same starting point with its own seed and data draw,
and the best on dev is kept (seed 002).  Finished restarts and the running one's checkpoint survive
an interruption; a restart that diverged is a failed result, never selected."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from taskmix.assembly import Assembly
from taskmix.config import ExperimentConfig, StageConfig, TaskRef
from taskmix.errors import TaskmixError
from taskmix.pretraining import TaskIdEmbedding
from taskmix.stage_cache import BestRestart, StageCache
from taskmix.training import distributed
from taskmix.training.divergence import TrainingDiverged
from taskmix.training.stage import StageTrainer
from taskmix.training.stage_task import TrainableTask
from taskmix.training.tracking import TensorBoardTracker

log = logging.getLogger(__name__)


@dataclass
class RestartResult:
    """One restart of a stage group: its best validation's metrics per task, and what it cost."""

    restart: int
    seed: int
    metrics: dict[str, dict[str, float]]
    scores: dict[str, float]
    score: float | None  # None when the restart failed
    steps: int
    seconds: float
    train_examples: int
    rank_digests: list[str] | None = None  # under torchrun: each rank's weights after the last step, hashed
    failed: str | None = None  # why the restart has no result, e.g. "diverged at step 12"; never selected


@dataclass
class GroupOutcome:
    """The selected restart's weights, every restart's result, and the data the group trained on."""

    encoder_state: dict
    head_states: dict
    restarts: list[RestartResult]
    selected: int
    tasks: list[TrainableTask]
    dev_predictions: dict[str, dict[str, np.ndarray]] | None = None  # the selected restart's best validation


def restart_seed(base: int, restart: int) -> int:
    return base * 1000 + restart


def select_restart(stage: StageConfig, refs: list[TaskRef], restarts: list[RestartResult]) -> int:
    """The best restart on dev among those that finished; a stage whose every restart failed is an error."""
    finished = [i for i, r in enumerate(restarts) if r.failed is None]
    if not finished:
        reasons = "; ".join(f"restart {r.restart + 1}: {r.failed}" for r in restarts)
        raise TaskmixError(f"stage '{stage.name}' {[t.name for t in refs]}: every restart failed ({reasons}); "
                           f"lower the learning rate or set max_grad_norm")
    return max(finished, key=lambda i: restarts[i].score)


class RestartRunner:
    """Trains the restarts of stage groups, keeping partial results in the stage cache."""

    def __init__(self, cfg: ExperimentConfig, assembly: Assembly, stage_cache: StageCache, progress: bool):
        self.cfg = cfg
        self.assembly = assembly
        self.stage_cache = stage_cache
        self.progress = progress

    def train_group(self, stage: StageConfig, refs: list[TaskRef], encoder_state: dict | None,
                    kept_heads: dict, key: str, tensorboard_dir: Path) -> GroupOutcome:
        """Run the restarts not yet finished and select the best."""
        rt = self.assembly.rt
        saved_restarts, best = self.stage_cache.partial(key) or ([], None)
        restarts: list[RestartResult] = [RestartResult(**r) for r in saved_restarts]
        tasks_of: dict[int, list[TrainableTask]] = {}  # restarts trained in this process
        for r in range(len(restarts), stage.restarts):
            seed = restart_seed(self.cfg.seed, r)
            tasks = tasks_of[r] = self.assembly.stage_tasks(refs, stage, np.random.default_rng(seed))
            model = self.assembly.fresh_model(encoder_state)
            torch.manual_seed(seed)
            self.assembly.add_heads(model, refs, kept_heads, stage)
            if stage.task_ids:
                model.task_embedding = TaskIdEmbedding(model.encoder.hidden_size).to(rt.device)
            log.info("stage '%s' %s restart %d/%d (seed %d): %s", stage.name, [t.name for t in refs], r + 1,
                     stage.restarts, seed, ", ".join(f"{t.name}={t.size} train" for t in tasks))
            tracker = (TensorBoardTracker(tensorboard_dir / f"restart-{r}")
                       if self.cfg.tensorboard and distributed.is_main() else None)
            trainer = StageTrainer(model, stage, tasks, device=rt.device, precision=rt.precision, seed=seed,
                                   pad_id=rt.pad_id, eval_batch_size=rt.eval_batch_size,
                                   progress=self.progress, tracker=tracker, feature_cache=rt.feature_cache)
            restart, predictions = self.train_restart(trainer, stage, key, r, seed)
            restarts.append(restart)
            if restart.failed is None and (best is None or restart.score > best.score):
                best = BestRestart(restart.score, copy.deepcopy(model.encoder.state_dict()),
                                   {k: copy.deepcopy(v.state_dict()) for k, v in model.heads.items()}, predictions)
            if distributed.is_main() and r < stage.restarts - 1:  # after the last restart the group is stored
                self.stage_cache.save_partial(key, [asdict(x) for x in restarts], best)
        selected = select_restart(stage, refs, restarts)
        tasks = tasks_of.get(selected) or self.assembly.stage_tasks(
            refs, stage, np.random.default_rng(restart_seed(self.cfg.seed, selected)))
        return GroupOutcome(best.encoder_state, best.head_states, restarts, selected, tasks, best.predictions)

    def train_restart(self, trainer: StageTrainer, stage: StageConfig, key: str, r: int,
                      seed: int) -> tuple[RestartResult, dict | None]:
        """One restart's result and best dev predictions; a diverged restart is a failed result, not an error."""
        started = time.perf_counter()
        try:
            outcome = trainer.train(checkpoint=self.stage_cache.training_checkpoint(key, r))
        except TrainingDiverged as exc:
            log.warning("restart %d/%d failed: %s", r + 1, stage.restarts, exc)  # exc names the stage
            return RestartResult(r, seed, {}, {}, None, exc.step, time.perf_counter() - started,
                                 sum(t.size for t in trainer.tasks.values()), failed=exc.reason), None
        return RestartResult(r, seed, outcome.best.metrics, outcome.best.scores, outcome.best.score, outcome.steps,
                             outcome.seconds, outcome.train_examples, outcome.rank_digests), outcome.best.predictions
