"""What one task of a stage trains and is validated on, for labelled splits and pretraining corpora alike.

The trainer only needs a head to route to, a size for planning epochs and sampling, an
endless resumable stream of batch keys, a way to turn a key into tensors, and dev metrics;
`TrainableTask` names exactly that, so GLUE fine-tuning and self-supervised pretraining
are configurations of the one `StageTrainer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from taskmix import metrics as glue_metrics
from taskmix.models.model import MultiTaskModel
from taskmix.tasks.base import Task
from taskmix.training.batching import BatchStream, collate
from taskmix.training.features import TokenizedSplit
from taskmix.training.predict import predict


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


@dataclass
class StageTask:
    """A labelled task (GLUE and the like): its head name, training rows and dev splits."""

    task: Task
    head: str
    train: TokenizedSplit
    dev: dict[str, TokenizedSplit]

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def head_kind(self) -> str:
        return self.task.kind.value

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
        return collate(self.train, key, pad_id)

    def evaluate(self, model: MultiTaskModel, batch_size: int, pad_id: int, device: torch.device,
                 precision: str) -> TaskEvaluation:
        predictions = {name: predict(model, self.head, split, batch_size, pad_id, device, precision)
                       for name, split in self.dev.items()}
        metrics = glue_metrics.merge_splits({
            name: glue_metrics.compute_metrics(self.task, predictions[name], np.asarray(split.labels))
            for name, split in self.dev.items()
        })
        return TaskEvaluation(metrics, predictions)
