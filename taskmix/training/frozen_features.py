"""Cached outputs of a frozen encoder: each split is encoded once and read from disk afterwards.

A stage with `frozen: true` whose encoder keeps nothing trainable (`freezing.encoder_is_fixed`)
computes the same token states for a row in every epoch, restart and target task.  The
first use encodes the whole split and writes the states, memory-mapped, under
`<cache>/frozen_features/<key>/`; batches then carry them (`encoded_tokens`,
`encoded_pooled`) and `MultiTaskModel.encode` skips the encoder.  Heads still apply their
dropout to these states, so training sees the same randomness as without the cache.

The key is the encoder's weights (a digest of its state dict and buffers), the split's contents (the
token ids, offsets and segment starts, so any subset or concatenation of a split has its
own entry, labels aside), the padding id, the precision and the device type.  States are
stored as float32, the exact superset of the fp32, bf16 and fp16 outputs, and handed back
in the dtype the encoder produced, so a cached run computes exactly what an uncached one
does (tested): 4 bytes × width per token (MiniLM: 1.5 kB per token).

Only text kinds' features (`TokenizedSplit`, one encoder row per example) are cached;
other kinds' stage tasks and corpus tasks are left as they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap

from taskmix.cache import atomic_directory, cache_root, digest
from taskmix.models.model import MultiTaskModel
from taskmix.training.batching import sorted_batches, to_device
from taskmix.training.device import autocast
from taskmix.training.distributed import parameter_digest
from taskmix.training.features import TokenizedSplit
from taskmix.training.stage_task import LabelledStageTask, TrainableTask

log = logging.getLogger(__name__)

VERSION = "1"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def split_fingerprint(split: TokenizedSplit) -> str:
    """A digest of everything of a split the encoder reads (labels and ids of rows aside)."""
    hasher = hashlib.sha256()
    for array in (split.ids, split.offsets, split.segment_starts):
        contiguous = np.ascontiguousarray(array)
        hasher.update(f"{contiguous.dtype}{contiguous.shape}".encode())
        hasher.update(contiguous.tobytes())
    return hasher.hexdigest()


def encoder_digest(model: MultiTaskModel) -> str:
    """The encoder's weights, buffers kept out of checkpoints included (the BiLSTM's word vectors)."""
    weights = {**model.encoder.state_dict(), **{f"buffer:{n}": b for n, b in model.encoder.named_buffers()}}
    return f"{type(model.encoder).__name__}:{parameter_digest(weights)}"


@dataclasses.dataclass
class EncodedSplit:
    """A `TokenizedSplit` whose batches carry the frozen encoder's states for their rows.

    `tokens` holds the states of every token of every row back to back (row i at
    `split.offsets[i]:split.offsets[i + 1]`), `pooled` one vector per row.
    """

    split: TokenizedSplit
    tokens: np.ndarray
    pooled: np.ndarray
    dtype: torch.dtype

    @property
    def labels(self) -> np.ndarray:
        return self.split.labels

    @property
    def uids(self) -> list[str]:
        return self.split.uids

    def __len__(self) -> int:
        return len(self.split)

    @property
    def lengths(self) -> np.ndarray:
        return self.split.lengths

    def subset(self, indices: np.ndarray) -> "EncodedSplit":
        offsets = self.split.offsets
        rows = [self.tokens[offsets[i] : offsets[i + 1]] for i in indices]
        tokens = np.concatenate(rows) if rows else np.zeros((0, self.tokens.shape[1]), self.tokens.dtype)
        return EncodedSplit(self.split.subset(indices), tokens, np.asarray(self.pooled[indices]), self.dtype)

    def collate(self, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        batch = self.split.collate(indices, pad_id)
        width = batch["input_ids"].shape[1]
        states = np.zeros((len(indices), width, self.tokens.shape[1]), dtype=np.float32)
        offsets = self.split.offsets
        for row, index in enumerate(indices):
            begin, end = offsets[index], offsets[index + 1]
            states[row, : end - begin] = self.tokens[begin:end]
        batch["encoded_tokens"] = torch.from_numpy(states).to(self.dtype)
        batch["encoded_pooled"] = torch.from_numpy(np.asarray(self.pooled[indices], dtype=np.float32)).to(self.dtype)
        return batch

    def arrays(self) -> dict[str, np.ndarray]:
        return self.split.arrays()


class FrozenFeatureCache:
    """Disk cache of frozen encoders' outputs per split (see the module docstring)."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else cache_root("frozen_features")

    def key(self, encoder_id: str, split: TokenizedSplit, pad_id: int, precision: str, device: torch.device) -> str:
        return digest([VERSION, encoder_id, split_fingerprint(split), pad_id, precision, device.type], 24)

    def encoded(self, model: MultiTaskModel, encoder_id: str, split: TokenizedSplit, *, pad_id: int,
                batch_size: int, device: torch.device, precision: str) -> EncodedSplit:
        """The split with its states, encoded now if no entry holds them yet."""
        folder = self.root / self.key(encoder_id, split, pad_id, precision, device)
        if not (folder / "done").exists():
            with atomic_directory(folder) as staging:
                self._encode(model, split, staging, pad_id, batch_size, device, precision)
        meta = json.loads((folder / "meta.json").read_text())
        return EncodedSplit(split, np.load(folder / "tokens.npy", mmap_mode="r"),
                            np.load(folder / "pooled.npy", mmap_mode="r"), DTYPES[meta["dtype"]])

    @staticmethod
    @torch.inference_mode()
    def _encode(model: MultiTaskModel, split: TokenizedSplit, out: Path, pad_id: int, batch_size: int,
                device: torch.device, precision: str) -> None:
        was_training = model.encoder.training
        model.encoder.eval()
        tokens = pooled = None
        dtype = "float32"
        for indices in sorted_batches(split.lengths, batch_size):
            batch = to_device(split.collate(indices, pad_id), device)
            with autocast(device, precision):
                encoded = model.encode(batch)
            if tokens is None:
                tokens = open_memmap(out / "tokens.npy", "w+", np.float32, (int(split.offsets[-1]), encoded.tokens.shape[-1]))
                pooled = open_memmap(out / "pooled.npy", "w+", np.float32, (len(split), encoded.pooled.shape[-1]))
                dtype = str(encoded.tokens.dtype).removeprefix("torch.")
            states = encoded.tokens.float().cpu().numpy()
            for row, index in enumerate(indices):
                begin, end = split.offsets[index], split.offsets[index + 1]
                tokens[begin:end] = states[row, : end - begin]
            pooled[indices] = encoded.pooled.float().cpu().numpy()
        model.encoder.train(was_training)
        if tokens is None:  # an empty split
            np.save(out / "tokens.npy", np.zeros((0, 0), np.float32))
            np.save(out / "pooled.npy", np.zeros((0, 0), np.float32))
        else:
            tokens.flush()
            pooled.flush()
        (out / "meta.json").write_text(json.dumps({"dtype": dtype, "rows": len(split)}))
        (out / "done").write_text("")


def with_cached_features(tasks: list[TrainableTask], model: MultiTaskModel, cache: FrozenFeatureCache, *,
                         pad_id: int, batch_size: int, device: torch.device, precision: str) -> list[TrainableTask]:
    """The stage tasks with their training and dev splits read from the frozen-feature cache where possible."""
    encoder_id = encoder_digest(model)

    def encoded(split):
        if not isinstance(split, TokenizedSplit):
            return split
        return cache.encoded(model, encoder_id, split, pad_id=pad_id, batch_size=batch_size, device=device,
                             precision=precision)

    out: list[TrainableTask] = []
    for st in tasks:
        if isinstance(st, LabelledStageTask) and isinstance(st.train, TokenizedSplit):
            st = dataclasses.replace(st, train=encoded(st.train), dev={n: encoded(s) for n, s in st.dev.items()})
            log.info("task %s: frozen encoder outputs read from the feature cache", st.name)
        out.append(st)
    return out
