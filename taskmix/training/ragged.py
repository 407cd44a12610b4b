"""Variable-length rows as numeric arrays: what kinds with structured features store in the token cache.

The token cache saves plain numeric `.npy` arrays (memory-mapped, never pickled), so a kind
whose examples own rows of different lengths (a sentence's tags, an answer's spans, a
query's candidate texts) stores them as one flat array plus offsets (`Ragged`), and texts
as Unicode code points, so character offsets index them directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass
class Ragged:
    """Rows of different lengths: row i is `values[offsets[i]:offsets[i + 1]]`."""

    values: np.ndarray
    offsets: np.ndarray

    @staticmethod
    def from_rows(rows: Sequence[np.ndarray], empty: np.ndarray) -> "Ragged":
        """`empty` gives the dtype (and trailing shape) when there are no rows."""
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(r) for r in rows])
        return Ragged(np.concatenate(rows).astype(empty.dtype) if len(rows) else empty, offsets)

    @staticmethod
    def of_texts(texts: Sequence[str]) -> "Ragged":
        return Ragged.from_rows([text_codes(t) for t in texts], np.zeros(0, dtype=np.int32))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, index: int) -> np.ndarray:
        return self.values[self.offsets[index] : self.offsets[index + 1]]

    def rows(self) -> list[np.ndarray]:
        return [self.row(i) for i in range(len(self))]

    def text(self, index: int) -> str:
        return codes_text(self.row(index))

    def texts(self) -> list[str]:
        return [self.text(i) for i in range(len(self))]

    def subset(self, indices: np.ndarray) -> "Ragged":
        return Ragged.from_rows([self.row(i) for i in indices], self.values[:0])

    @staticmethod
    def concatenate(parts: Sequence["Ragged"]) -> "Ragged":
        shifts = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in zip(parts, shifts)]).astype(np.int64)
        return Ragged(np.concatenate([p.values for p in parts]), offsets)


def text_codes(text: str) -> np.ndarray:
    """A text as its Unicode code points (one int per character)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int32)


def codes_text(codes: np.ndarray) -> str:
    return np.asarray(codes, dtype="<u4").tobytes().decode("utf-32-le")


def object_rows(rows: Sequence[Any]) -> np.ndarray:
    """A 1-d object array with one value per row (np.array would stack equal-length rows into 2-d)."""
    out = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        out[i] = row
    return out


# Examples that own several encoder rows (the choices of a question, the windows of a long
# context) keep `starts`: example i owns rows starts[i]:starts[i + 1].

def member_rows(starts: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows owned by the examples `indices`, back to back, and their `starts` within that selection."""
    counts = np.asarray(starts[1:] - starts[:-1])[indices]
    selected = np.zeros(len(indices) + 1, dtype=np.int64)
    selected[1:] = np.cumsum(counts)
    rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in indices]) if len(indices) \
        else np.zeros(0, dtype=np.int64)
    return rows.astype(np.int64), selected


def longest_member(row_lengths: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per example, the length of its longest row: the width it pads a batch to."""
    if len(starts) <= 1:
        return np.zeros(0, dtype=np.int64)
    return np.maximum.reduceat(row_lengths, starts[:-1])
