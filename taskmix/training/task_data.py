"""A task's tokenised splits for one experiment: loaded lazily, cached, and limited as configured."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from taskmix.errors import ConfigError
from taskmix.kinds.base import Features
from taskmix.tasks import load_split, split_file
from taskmix.tasks.base import Example, Task
from taskmix.tasks.loading import companion_files, hub_source, reader_version
from taskmix.models.encoder import tokenizer_fingerprint
from taskmix.training.features import TokenCache


class TaskSplits:
    """Tokenised splits of one task, read from disk only when the token cache misses."""

    def __init__(self, task: Task, data_dir: Path | None, tokenizer, max_length: int, cache: TokenCache):
        self.task = task
        self.data_dir = data_dir
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.cache = cache
        self._splits: dict[str, Features] = {}

    @cached_property
    def _tokenizer_id(self) -> str:
        return tokenizer_fingerprint(self.tokenizer)

    def _source_identity(self, split: str) -> str:
        """Path, size and mtime of the local file (and its reader's companion files), or the hub
        coordinates when loading online."""
        if split not in self.task.splits:
            known = ", ".join(self.task.splits)
            raise ConfigError(f"task '{self.task.name}' has no split '{split}'; its splits are: {known}")
        path = split_file(self.task, split, self.data_dir)
        if path is None:
            return hub_source(self.task, split)
        return "|".join(_file_identity(p.resolve()) for p in [path, *companion_files(self.task, split, path)])

    def examples(self, split: str) -> list[Example]:
        """The raw rows (needed for metadata such as diagnostic categories)."""
        return load_split(self.task, split, self.data_dir)

    def get(self, split: str) -> Features:
        if split not in self._splits:
            source = f"{self._source_identity(split)}|{reader_version(self.task.splits[split].reader)}"
            key = self.cache.key(self.task, split, source, self._tokenizer_id, self.max_length)
            features = self.cache.load(key, self.task)
            if features is None:
                features = self.task.kind.featurize(self.examples(split), self.tokenizer, self.max_length)
                self.cache.store(key, features)
            self._splits[split] = features
        return self._splits[split]

    def concatenated(self, splits: list[str]) -> Features:
        parts = [self.get(s) for s in splits]
        return parts[0] if len(parts) == 1 else self.task.kind.concatenate(parts)


def _file_identity(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return f"missing:{path}"  # load_split raises the user-facing error
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def limit(split: Features, max_examples: int | None, rng: np.random.Generator) -> Features:
    """A random subset of at most `max_examples` rows (the split itself when it is small enough)."""
    if max_examples is None or len(split) <= max_examples:
        return split
    return split.subset(np.sort(rng.choice(len(split), size=max_examples, replace=False)))


HOLDOUT_SPLIT = "holdout"


def hold_out(split: Features, size: int, task_name: str) -> tuple[Features, Features]:
    """Split off a fixed random dev set (the same rows for every seed) from training rows."""
    if size >= len(split):
        raise ConfigError(f"task '{task_name}': dev_holdout {size} leaves no training rows (only {len(split)})")
    order = np.random.default_rng(0).permutation(len(split))
    return split.subset(np.sort(order[size:])), split.subset(np.sort(order[:size]))
