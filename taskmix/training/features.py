"""Tokenised task splits, cached on disk and memory-mapped.

Each (task, split, tokenizer, max_length) is tokenised once.  The cache key includes the
source file's size and modification time, the reader's code version, the tokenizer's
identity, the task's kind and the feature format version, so changing any of them
re-tokenises.  Token ids of a split are stored as
one flat array plus offsets, which numpy memory-maps: a mixture of many tasks does not
hold every dataset in RAM.  What a kind stores is its own business (`Features.arrays`);
the cache only writes and reads named arrays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from taskmix.cache import atomic_directory, cache_root, digest
from taskmix.training.batching import collate

if TYPE_CHECKING:
    from taskmix.kinds.base import Features
    from taskmix.tasks.base import Task

FEATURE_VERSION = "3"
TOKENIZE_CHUNK = 2048


@dataclass
class TokenizedSplit:
    """Token ids of every example of one split, with labels and the ids used in submissions.

    `segment_starts[i]` is the position where the second segment starts (token type 1),
    or the sequence length for single-sentence examples.
    """

    ids: np.ndarray
    offsets: np.ndarray
    segment_starts: np.ndarray
    labels: np.ndarray
    uids: list[str]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def input_ids(self, index: int) -> np.ndarray:
        return self.ids[self.offsets[index] : self.offsets[index + 1]]

    def subset(self, indices: np.ndarray) -> "TokenizedSplit":
        """A copy restricted to `indices` (used for data limits and dev caps)."""
        pieces = [self.input_ids(i) for i in indices]
        offsets = np.zeros(len(indices) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(p) for p in pieces])
        ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=self.ids.dtype)
        return TokenizedSplit(
            ids=ids,
            offsets=offsets,
            segment_starts=self.segment_starts[indices],
            labels=self.labels[indices],
            uids=[self.uids[i] for i in indices],
        )

    def collate(self, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        return collate(self, indices, pad_id)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"ids": self.ids, "offsets": self.offsets, "segment_starts": self.segment_starts, "labels": self.labels}

    @staticmethod
    def concatenate(parts: list["TokenizedSplit"]) -> "TokenizedSplit":
        if len(parts) == 1:
            return parts[0]
        offsets = [np.zeros(1, dtype=np.int64)]
        shift = 0
        for part in parts:
            offsets.append(part.offsets[1:] + shift)
            shift += int(part.offsets[-1])
        return TokenizedSplit(
            ids=np.concatenate([p.ids for p in parts]),
            offsets=np.concatenate(offsets),
            segment_starts=np.concatenate([p.segment_starts for p in parts]),
            labels=np.concatenate([p.labels for p in parts]),
            uids=[u for p in parts for u in p.uids],
        )


def tokenize_texts(first: Sequence[str], second: Sequence[str] | None, labels: np.ndarray, uids: list[str],
                   tokenizer, max_length: int) -> TokenizedSplit:
    """Tokenise single texts or text pairs in chunks with the fast tokenizer (longer segment cut first)."""
    all_ids: list[list[int]] = []
    starts: list[int] = []
    for begin in range(0, len(first), TOKENIZE_CHUNK):
        chunk_a = list(first[begin : begin + TOKENIZE_CHUNK])
        chunk_b = None if second is None else list(second[begin : begin + TOKENIZE_CHUNK])
        encoded = tokenizer(
            chunk_a,
            chunk_b,
            truncation="longest_first" if chunk_b is not None else True,
            max_length=max_length,
            return_token_type_ids=False,
            return_attention_mask=False,
        )
        all_ids.extend(encoded["input_ids"])
        if chunk_b is None:
            starts.extend(len(ids) for ids in encoded["input_ids"])
        else:
            for i, ids in enumerate(encoded["input_ids"]):
                seq_ids = encoded.sequence_ids(i)
                starts.append(next((p for p, s in enumerate(seq_ids) if s == 1), len(ids)))
    offsets = np.zeros(len(all_ids) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in all_ids])
    flat = np.fromiter((t for ids in all_ids for t in ids), dtype=np.int32, count=int(offsets[-1]))
    return TokenizedSplit(ids=flat, offsets=offsets, segment_starts=np.array(starts, dtype=np.int32),
                          labels=labels, uids=uids)


class TokenCache:
    """Disk cache of a kind's features keyed by task, split, source file, tokenizer and length."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else cache_root("tokens")

    def key(self, task: "Task", split: str, source: str, tokenizer_id: str, max_length: int) -> str:
        parts = [FEATURE_VERSION, task.name, split, source, tokenizer_id, str(max_length), task.kind.name,
                 ",".join(task.labels)]
        return digest(parts, 24)

    def load(self, key: str, task: "Task") -> "Features | None":
        folder = self.root / key
        if not (folder / "done").exists():
            return None
        arrays = {f.stem: np.load(f, mmap_mode="r") for f in folder.glob("*.npy")}
        uids = json.loads((folder / "uids.json").read_text())
        return task.kind.load_features(arrays, uids)

    def store(self, key: str, features: "Features") -> None:
        """Written as one atomic directory, so readers never see half a split."""
        with atomic_directory(self.root / key) as staging:
            for name, array in features.arrays().items():
                np.save(staging / f"{name}.npy", array)
            (staging / "uids.json").write_text(json.dumps(features.uids))
            (staging / "done").write_text("")
