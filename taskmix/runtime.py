"""What every command that touches a model shares: device, precision, tokenizer and cached task splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from taskmix.models.encoder import EncoderFamily
from taskmix.models.model import MultiTaskModel
from taskmix.tasks import split_file
from taskmix.tasks.base import Task
from taskmix.training.device import default_eval_batch_size, resolve_precision, select_device
from taskmix.kinds.base import Features
from taskmix.training.features import TokenCache
from taskmix.training.frozen_features import FrozenFeatureCache
from taskmix.training.predict import predict
from taskmix.training.task_data import TaskSplits


class Runtime:
    """Device, precision, inference batch size, the encoder family's tokenizer, one `TaskSplits` per task,
    and the cache of frozen encoders' outputs."""

    def __init__(self, encoder: EncoderFamily, data_dir: Path | None, max_length: int, device: str = "auto",
                 precision: str = "auto", cache_dir: Path | None = None, threads: int | None = None,
                 eval_batch_size: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.data_dir = data_dir
        self.max_length = max_length
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.eval_batch_size = eval_batch_size or default_eval_batch_size(self.device)
        self.tokenizer = encoder.tokenizer()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.cache = TokenCache(cache_dir)
        self.feature_cache = FrozenFeatureCache(cache_dir / "frozen_features" if cache_dir else None)
        self._splits: dict[str, TaskSplits] = {}

    def splits(self, task: Task) -> TaskSplits:
        if task.name not in self._splits:
            self._splits[task.name] = TaskSplits(task, self.data_dir, self.tokenizer, self.max_length, self.cache)
        return self._splits[task.name]

    def predict(self, model: MultiTaskModel, head: str, task: Task, split: str) -> np.ndarray:
        return self.predict_split(model, head, self.splits(task).get(split))

    def predict_split(self, model: MultiTaskModel, head: str, split: Features) -> np.ndarray:
        """Predictions for an already tokenised (possibly limited) split, with this runtime's settings."""
        return predict(model, head, split, self.eval_batch_size, self.pad_id, self.device, self.precision)

    def has_file(self, task: Task, split: str) -> bool:
        """Whether a split's file is present locally (hub loading always has every split)."""
        path = split_file(task, split, self.data_dir)
        return path is None or path.exists()
