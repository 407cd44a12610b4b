"""What one task of a stage trains and is validated on, for labelled splits and pretraining corpora alike.

The trainer only needs a head to route to, a size for planning epochs and sampling, an
endless resumable stream of batch keys, a way to turn a key into tensors, and dev metrics;
the experiment also asks for the constant baselines a result is judged against and for
the task's output files.  `TrainableTask` names exactly that, so GLUE fine-tuning and
self-supervised pretraining are configurations of the one `StageTrainer`, and the
experiment never asks which of the two it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch

from taskmix import metrics as glue_metrics
from taskmix.models.model import MultiTaskModel
from taskmix.kinds.base import Features
from taskmix.rundir import write_text
from taskmix.tasks.base import Task
from taskmix.training.batching import BatchStream
from taskmix.training.predict import predict

# Predictions of a head on a split, with the experiment's inference settings.
SplitPredictor = Callable[[str, Features], np.ndarray]


class ResumableStream(Protocol):
    """Batch keys forever; the state restores the exact position after an interruption."""

    def __next__(self) -> Any: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class TaskEvaluation:
    """One task's dev metrics, plus its per-row dev predictions by split where it has labelled rows.

    The predictions of the best validation are what the run's prediction files hold, so
    they are kept rather than recomputed after training.
    """

    metrics: dict[str, float]
    predictions: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Baselines:
    """What a task's result is judged against.

    `majority`: dev metrics of `majority_prediction`, the training majority (None where a
    task has no such constant); `best_constant`: the best dev score any constant prediction
    reaches, the bar a degenerate run fails to clear.
    """

    majority: dict[str, float] | None = None
    best_constant: float | None = None
    majority_prediction: Any = None

    @property
    def majority_score(self) -> float | None:
        return None if self.majority is None else glue_metrics.task_score(self.majority)


class TrainableTask(Protocol):
    """A stage task as the engine sees it."""

    head: str

    @property
    def name(self) -> str: ...

    @property
    def head_kind(self) -> str: ...

    @property
    def num_outputs(self) -> int:
        """Outputs of the head (also the class count loss scaling reads)."""

    @property
    def size(self) -> int:
        """Training rows per epoch: plans epochs in steps and weights sampling and scaling."""

    def stream(self, batch_size: int, seed: int, shard: tuple[int, int] = (0, 1),
               grouped: bool = True) -> ResumableStream:
        """Batch keys for one process; `shard` = (rank, world size) under torchrun; `grouped`:
        length-grouped batches where the task has a choice."""

    def to_batch(self, key: Any, pad_id: int) -> dict[str, torch.Tensor]:
        """The CPU tensors of one batch key drawn from `stream`."""

    def evaluate(self, model: MultiTaskModel, batch_size: int, pad_id: int, device: torch.device,
                 precision: str) -> TaskEvaluation:
        """Dev metrics by name (several dev splits are prefixed by split name) and any predictions."""

    @property
    def labelled_task(self) -> Task | None:
        """The benchmark task whose test submission and diagnostic a target can produce, if any."""

    def baselines(self) -> Baselines:
        """The constant predictions' dev results (empty where the task has none)."""

    def is_degenerate(self, score: float, baselines: Baselines) -> bool:
        """Whether a restart's dev score is no better than guessing."""

    def write_predictions(self, out_dir: Path, kept: dict[str, np.ndarray], predict_split: SplitPredictor) -> None:
        """Dev prediction files; `kept` holds the best validation's predictions by split where known."""


@dataclass
class LabelledStageTask:
    """A labelled task (GLUE and the like) in a stage: its head name, training rows and dev splits."""

    task: Task
    head: str
    train: Features
    dev: dict[str, Features]
    _baselines: Baselines | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def head_kind(self) -> str:
        return self.task.kind.head

    @property
    def num_outputs(self) -> int:
        return self.task.num_classes

    @property
    def size(self) -> int:
        return len(self.train)

    def stream(self, batch_size: int, seed: int, shard: tuple[int, int] = (0, 1),
               grouped: bool = True) -> BatchStream:
        return BatchStream(self.train, batch_size, seed, shard, grouped)

    def to_batch(self, key: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        return self.train.collate(key, pad_id)

    def evaluate(self, model: MultiTaskModel, batch_size: int, pad_id: int, device: torch.device,
                 precision: str) -> TaskEvaluation:
        predictions = {name: predict(model, self.head, split, batch_size, pad_id, device, precision)
                       for name, split in self.dev.items()}
        metrics = glue_metrics.merge_splits({
            name: glue_metrics.compute_metrics(self.task, predictions[name], np.asarray(split.labels))
            for name, split in self.dev.items()
        })
        return TaskEvaluation(metrics, predictions)

    @property
    def labelled_task(self) -> Task:
        return self.task

    def baselines(self) -> Baselines:
        """Computed once: outputs and target results both judge against them."""
        if self._baselines is None:
            kind = self.task.kind
            constants = kind.constant_predictions(self.task)
            if not constants:
                self._baselines = Baselines()
            else:
                majority = kind.majority_prediction(np.asarray(self.train.labels))
                best = max(glue_metrics.task_score(self._constant_metrics(c)) for c in constants)
                self._baselines = Baselines(self._constant_metrics(majority), best, majority)
        return self._baselines

    def _constant_metrics(self, prediction: Any) -> dict[str, float]:
        """Dev metrics of predicting `prediction` for every row."""
        return glue_metrics.merge_splits({
            name: glue_metrics.constant_metrics(self.task, prediction, np.asarray(split.labels))
            for name, split in self.dev.items()
        })

    def is_degenerate(self, score: float, baselines: Baselines) -> bool:
        """Judged against the best constant, not the training majority: a run that predicts the dev
        set's most frequent class must not pass as learned when a subsampled training set leans the
        other way."""
        return self.task.kind.is_degenerate(score, baselines.best_constant)

    def write_predictions(self, out_dir: Path, kept: dict[str, np.ndarray], predict_split: SplitPredictor) -> None:
        """One file per dev split: each row's id, prediction and gold label."""
        kind = self.task.kind
        for split_name, split in self.dev.items():
            preds = kept.get(split_name)
            if preds is None or len(preds) != len(split):  # a stage reused from the cache: predict afresh
                preds = predict_split(self.head, split)
            rows = ["uid\tprediction\tlabel"] + [
                f"{uid}\t{kind.format_prediction(self.task, p)}\t{kind.format_prediction(self.task, gold)}"
                for uid, p, gold in zip(split.uids, preds, split.labels)
            ]
            write_text(out_dir / "predictions" / f"{self.task.name}-{split_name}.tsv", "\n".join(rows) + "\n")
