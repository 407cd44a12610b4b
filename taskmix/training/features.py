"""Tokenised task splits, cached on disk and memory-mapped.

Each (task, split, tokenizer, max_length) is tokenised once.  The cache key includes the
source file's size and modification time, the tokenizer's identity and a reader version,
so changing any of them re-tokenises.  Token ids of a split are stored as one flat array
plus offsets, which numpy memory-maps: a mixture of many tasks does not hold every
dataset in RAM.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskmix.tasks.base import Example, HeadKind, Task

FEATURE_VERSION = "1"
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


def label_array(task: Task, examples: list[Example]) -> np.ndarray:
    """Labels as a numpy array; unlabelled rows get -1 (classification) or NaN (regression)."""
    if task.kind is HeadKind.REGRESSION:
        return np.array([np.nan if e.label is None else float(e.label) for e in examples], dtype=np.float32)
    return np.array([-1 if e.label is None else int(e.label) for e in examples], dtype=np.int64)


def tokenize_examples(task: Task, examples: list[Example], tokenizer, max_length: int) -> TokenizedSplit:
    """Tokenise in chunks with the fast tokenizer (truncating the longer segment first)."""
    all_ids: list[list[int]] = []
    starts: list[int] = []
    for begin in range(0, len(examples), TOKENIZE_CHUNK):
        chunk = examples[begin : begin + TOKENIZE_CHUNK]
        first = [e.text_a for e in chunk]
        second = [e.text_b for e in chunk] if chunk[0].text_b is not None else None
        encoded = tokenizer(
            first,
            second,
            truncation="longest_first" if second is not None else True,
            max_length=max_length,
            return_token_type_ids=False,
            return_attention_mask=False,
        )
        for ids in encoded["input_ids"]:
            all_ids.append(ids)
        if second is None:
            starts.extend(len(ids) for ids in encoded["input_ids"])
        else:
            for i, ids in enumerate(encoded["input_ids"]):
                seq_ids = encoded.sequence_ids(i)
                starts.append(next((p for p, s in enumerate(seq_ids) if s == 1), len(ids)))
    offsets = np.zeros(len(all_ids) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in all_ids])
    flat = np.fromiter((t for ids in all_ids for t in ids), dtype=np.int32, count=int(offsets[-1]))
    return TokenizedSplit(
        ids=flat,
        offsets=offsets,
        segment_starts=np.array(starts, dtype=np.int32),
        labels=label_array(task, examples),
        uids=[e.uid for e in examples],
    )


def default_cache_dir() -> Path:
    root = os.environ.get("TASKMIX_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "taskmix"
    return Path(root) / "tokens"


def tokenizer_identity(tokenizer) -> str:
    """A digest of the tokenizer's vocabulary and settings, so a changed tokenizer re-tokenises."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TokenCache:
    """Disk cache of `TokenizedSplit`s keyed by task, split, source file, tokenizer and length."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else default_cache_dir()

    def key(self, task: Task, split: str, source: str, tokenizer_id: str, max_length: int) -> str:
        parts = [FEATURE_VERSION, task.name, split, source, tokenizer_id, str(max_length), task.kind.value, ",".join(task.labels)]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]

    def load(self, key: str) -> TokenizedSplit | None:
        folder = self.root / key
        if not (folder / "done").exists():
            return None
        arrays = {n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in ("ids", "offsets", "segment_starts", "labels")}
        uids = json.loads((folder / "uids.json").read_text())
        return TokenizedSplit(uids=uids, **arrays)

    def store(self, key: str, split: TokenizedSplit) -> None:
        """Write into a temporary folder and rename it into place, so readers never see half a split."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{key}-"))
        for name in ("ids", "offsets", "segment_starts", "labels"):
            np.save(tmp / f"{name}.npy", getattr(split, name))
        (tmp / "uids.json").write_text(json.dumps(split.uids))
        (tmp / "done").write_text("")
        try:
            os.replace(tmp, self.root / key)
        except OSError:  # another process stored the same key first
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
