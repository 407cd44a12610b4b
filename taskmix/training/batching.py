"""Batches: length-grouped for training, length-sorted for evaluation, padded to a multiple of 8.

Grouping by length removes most padding (the main CPU cost of fixed 128-token batches);
drawing groups from shuffled mega-batches and shuffling the batch order keeps training
stochastic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

if TYPE_CHECKING:
    from taskmix.kinds.base import Features
    from taskmix.training.features import TokenizedSplit

PAD_MULTIPLE = 8
MEGABATCH_FACTOR = 50


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One pass over the data: shuffle, sort within mega-batches by length, shuffle the batches."""
    order = rng.permutation(len(lengths))
    span = batch_size * MEGABATCH_FACTOR
    batches: list[np.ndarray] = []
    for begin in range(0, len(order), span):
        mega = order[begin : begin + span]
        mega = mega[np.argsort(-lengths[mega], kind="stable")]
        batches.extend(mega[i : i + batch_size] for i in range(0, len(mega), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def random_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One pass in plain shuffled order (the usual sampler), for comparison with length grouping."""
    order = rng.permutation(len(lengths))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation order: longest first, so padding is minimal and memory peaks early."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class BatchStream:
    """Training batches of one task forever, reshuffled at every pass, with a resumable position.

    The state is the generator state at the start of the current pass plus the position in
    it, so a resumed run regenerates the same pass and continues at the same batch.  With
    `shard` = (rank, world size), every rank draws the same pass (same seed) and keeps every
    world-th batch from its rank on, so the ranks split each pass between them.
    `grouped=False` draws plain random batches instead of length-grouped ones.
    """

    def __init__(self, split: "Features", batch_size: int, seed: int, shard: tuple[int, int] = (0, 1),
                 grouped: bool = True):
        self.lengths = split.lengths
        self.batch_size = batch_size
        self.rank, self.world = shard
        self.make_pass = length_grouped_batches if grouped else random_batches
        self.rng = np.random.default_rng(seed)
        self._new_pass()

    def _new_pass(self) -> None:
        self.pass_start = self.rng.bit_generator.state
        batches = self.make_pass(self.lengths, self.batch_size, self.rng)
        self.batches = batches[self.rank :: self.world] or batches[:1]
        self.position = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        if self.position == len(self.batches):
            self._new_pass()
        self.position += 1
        return self.batches[self.position - 1]

    def state_dict(self) -> dict:
        return {"pass_start": self.pass_start, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["pass_start"]
        self._new_pass()
        self.position = state["position"]


def collate(split: "TokenizedSplit", indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch dynamically to the next multiple of 8 and build masks and token types."""
    lengths = split.lengths[indices]
    width = int(-(-int(lengths.max()) // PAD_MULTIPLE) * PAD_MULTIPLE)
    input_ids = np.full((len(indices), width), pad_id, dtype=np.int64)
    token_type_ids = np.zeros((len(indices), width), dtype=np.int64)
    positions = np.arange(width)
    for row, index in enumerate(indices):
        ids = split.input_ids(index)
        input_ids[row, : len(ids)] = ids
        token_type_ids[row] = (positions >= split.segment_starts[index]) & (positions < len(ids))
    attention_mask = (positions[None, :] < lengths[:, None]).astype(np.int64)
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention_mask),
        "token_type_ids": torch.from_numpy(token_type_ids),
        "labels": torch.from_numpy(np.asarray(split.labels[indices])),
    }


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
