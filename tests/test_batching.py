"""Training batch order: length grouping, plain random batches, and per-rank shards of a pass."""

from __future__ import annotations

import numpy as np
import pytest

from taskmix.training.batching import PAD_MULTIPLE, BatchStream
from taskmix.training.features import TokenizedSplit

ROWS = 203


def split_of(lengths: np.ndarray) -> TokenizedSplit:
    return TokenizedSplit(uids=[str(i) for i in range(len(lengths))], ids=np.zeros(int(lengths.sum()), dtype=np.int32),
                          offsets=np.concatenate([[0], np.cumsum(lengths)]), segment_starts=lengths,
                          labels=np.zeros(len(lengths), dtype=np.int64))


def one_pass(stream: BatchStream) -> list[np.ndarray]:
    return [next(stream) for _ in range(len(stream.batches))]


def padded_tokens(lengths: np.ndarray, batches: list[np.ndarray]) -> int:
    return sum(len(b) * -(-int(lengths[b].max()) // PAD_MULTIPLE) * PAD_MULTIPLE for b in batches)


@pytest.fixture
def lengths() -> np.ndarray:
    return np.random.default_rng(0).integers(5, 120, size=ROWS)


@pytest.mark.parametrize("grouped", [True, False])
def test_a_pass_covers_every_row_once(lengths, grouped):
    batches = one_pass(BatchStream(split_of(lengths), 8, seed=1, grouped=grouped))
    assert sorted(np.concatenate(batches).tolist()) == list(range(ROWS))


def test_grouping_cuts_padding_and_plain_batches_do_not(lengths):
    grouped = one_pass(BatchStream(split_of(lengths), 8, seed=1, grouped=True))
    plain = one_pass(BatchStream(split_of(lengths), 8, seed=1, grouped=False))
    assert padded_tokens(lengths, grouped) < 0.8 * padded_tokens(lengths, plain)
    spread = [int(lengths[b].max() - lengths[b].min()) for b in plain]
    assert np.mean(spread) > 50  # plain batches mix short and long rows


def test_shards_split_each_pass_between_ranks(lengths):
    whole = one_pass(BatchStream(split_of(lengths), 8, seed=5))
    ranks = [one_pass(BatchStream(split_of(lengths), 8, seed=5, shard=(rank, 2))) for rank in range(2)]
    assert [b.tolist() for b in ranks[0]] == [b.tolist() for b in whole[0::2]]
    assert [b.tolist() for b in ranks[1]] == [b.tolist() for b in whole[1::2]]
    assert sorted(np.concatenate(ranks[0] + ranks[1]).tolist()) == list(range(ROWS))
