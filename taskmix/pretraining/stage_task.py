"""A pretraining task as a stage task: corpus batches for the shared `StageTrainer`.

Batches come ready-made from the task (masking and labels are drawn as they are built), so
a batch key *is* the batch.  Resuming replays the interrupted epoch from its seed and skips
the batches already consumed, which regenerates exactly the same batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from taskmix.models.model import MultiTaskModel
from taskmix.pretraining.metrics import MetricSums, evaluate_batch
from taskmix.pretraining.tasks import PretrainingTask
from taskmix.training import distributed
from taskmix.training.batching import to_device
from taskmix.training.device import autocast
from taskmix.training.stage_task import Baselines, SplitPredictor, TaskEvaluation


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct seed per (stream seed, epoch) pair, so epochs never repeat an order."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class CorpusBatchStream:
    """Endless shuffled epochs of a pretraining task's training batches; state is (epoch, position)."""

    def __init__(self, task: PretrainingTask, batch_size: int, seed: int):
        self.task = task
        self.batch_size = batch_size
        self.seed = seed
        self._start(epoch=0)

    def _start(self, epoch: int) -> None:
        self.epoch, self.position = epoch, 0
        self._batches = self.task.train_batches(self.batch_size, epoch_seed(self.seed, epoch))

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        batch = next(self._batches, None)
        if batch is None:
            self._start(self.epoch + 1)
            batch = next(self._batches)
        self.position += 1
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self._start(state["epoch"])
        for _ in range(state["position"]):
            next(self._batches)
        self.position = state["position"]


@dataclass
class PretrainingStageTask:
    """A pretraining task in a stage.

    Dev batches use the training batch size (in-batch tasks such as QT score against the
    other rows, so the batch size is part of the metric) and at most `max_dev_rows` rows.
    With `task_ids`, every batch carries the task's id for the model's task embedding.
    """

    task: PretrainingTask
    head: str
    batch_size: int
    max_dev_rows: int | None = None
    task_ids: bool = False

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def head_kind(self) -> str:
        return self.task.head_kind

    @property
    def num_outputs(self) -> int:
        return self.task.num_outputs

    @cached_property
    def size(self) -> int:
        definition, context = self.task.definition, self.task.context
        return len(definition.anchors(context, context.train)) * definition.rows_per_anchor

    def stream(self, batch_size: int, seed: int, shard: tuple[int, int] = (0, 1),
               grouped: bool = True) -> CorpusBatchStream:
        """Each rank draws its own windows and masks (a seed per rank) rather than a slice of one order.

        Corpus windows are built at about the same length, so `grouped` changes nothing here.
        """
        return CorpusBatchStream(self.task, batch_size, distributed.rank_seed(seed, shard[0]))

    def to_batch(self, key: dict[str, torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
        return {**key, "task_id": torch.tensor(self.task.task_id)} if self.task_ids else key

    @torch.inference_mode()
    def evaluate(self, model: MultiTaskModel, batch_size: int, pad_id: int, device: torch.device,
                 precision: str) -> TaskEvaluation:
        """The task's dev metric, summed over the dev batches (`batch_size` is the stage's, see above)."""
        was_training = model.training
        model.eval()
        head = model.heads[self.head]
        batches = self.task.dev_batches(self.batch_size)
        if self.max_dev_rows is not None:
            batches = islice(batches, math.ceil(self.max_dev_rows / self.batch_size))
        sums = MetricSums()
        for key in batches:
            batch = to_device(self.to_batch(key, pad_id), device)
            with autocast(device, precision):
                logits = model(self.head, batch)
            sums = sums + evaluate_batch(head, logits, batch)
        model.train(was_training)
        return TaskEvaluation({self.task.metric.name: self.task.metric.value(sums)})

    @property
    def labelled_task(self) -> None:
        """Corpus tasks have no test submission or diagnostic."""
        return None

    def baselines(self) -> Baselines:
        return Baselines()

    def is_degenerate(self, score: float, baselines: Baselines) -> bool:
        """No constant baseline defines a degenerate run of a corpus task."""
        return False

    def write_predictions(self, out_dir: Path, kept: dict[str, np.ndarray], predict_split: SplitPredictor) -> None:
        """Corpus tasks write no per-row prediction files."""
