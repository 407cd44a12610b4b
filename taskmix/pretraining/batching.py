"""Examples of token ids -> padded model inputs: [CLS] A [SEP] (B [SEP]), labels padded with -100."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from taskmix.models.heads import IGNORE


@dataclass
class Example:
    """One input row before special tokens and padding.

    `token_labels` and `protected` (positions dynamic MLM masking must leave alone, e.g.
    corrupted tokens) are aligned with `segments`; `label` is a sentence-level target.
    """

    segments: list[np.ndarray]
    token_labels: list[np.ndarray] | None = None
    label: int | None = None
    protected: list[np.ndarray] | None = None


def fit(example: Example, max_len: int) -> Example:
    """Trim to `max_len` with its special tokens: the first segment loses its start and the
    second its end, so the text around the A/B boundary the pair tasks judge is kept."""
    budget = max_len - len(example.segments) - 1
    lengths = [len(s) for s in example.segments]
    while sum(lengths) > budget:
        longest = int(np.argmax(lengths))
        lengths[longest] -= 1

    def cut(parts: list[np.ndarray] | None) -> list[np.ndarray] | None:
        if parts is None:
            return None
        if len(parts) == 1:
            return [parts[0][: lengths[0]]]
        return [parts[0][len(parts[0]) - lengths[0]:], parts[1][: lengths[1]]]

    return Example(cut(example.segments), cut(example.token_labels), example.label, cut(example.protected))


def collate(examples: list[Example], max_len: int, cls_id: int, sep_id: int, pad_id: int) -> tuple[dict, torch.Tensor]:
    """Pad a list of examples into batch tensors; also returns the protected-position mask."""
    rows = [fit(e, max_len) for e in examples]
    width = max(sum(len(s) + 1 for s in r.segments) + 1 for r in rows)
    size = (len(rows), width)
    ids = np.full(size, pad_id, dtype=np.int64)
    types = np.zeros(size, dtype=np.int64)
    attention = np.zeros(size, dtype=np.int64)
    protected = np.zeros(size, dtype=bool)
    float_labels = rows[0].token_labels is not None and rows[0].token_labels[0].dtype.kind == "f"
    token_labels = np.full(size, IGNORE, dtype=np.float32 if float_labels else np.int64)
    for i, row in enumerate(rows):
        ids[i, 0] = cls_id
        position = 1
        for s, segment in enumerate(row.segments):
            end = position + len(segment)
            ids[i, position:end] = segment
            ids[i, end] = sep_id
            types[i, position:end + 1] = s
            if row.token_labels is not None:
                token_labels[i, position:end] = row.token_labels[s]
            if row.protected is not None:
                protected[i, position:end] = row.protected[s]
            position = end + 1
        attention[i, :position] = 1
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(attention),
             "token_type_ids": torch.from_numpy(types)}
    if rows[0].token_labels is not None:
        batch["labels"] = torch.from_numpy(token_labels)
    elif rows[0].label is not None:
        batch["labels"] = torch.tensor([r.label for r in rows], dtype=torch.long)
    return batch, torch.from_numpy(protected)
