"""Multiple choice (COPA, CommonsenseQA): one score per (context, choice) pair, softmax over the choices.

Each choice is encoded together with the context as a text pair, the head scores every
pair from its pooled vector, and the scores of one example compete in a softmax.  Examples
may have different numbers of choices; missing choices of a batch get a score that the
softmax turns into zero probability.  Labels, metrics and baselines are those of
classification (choosing answer k is predicting class k, `Task.labels` names the choices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from taskmix.kinds.base import register_kind
from taskmix.kinds.classification import ChoiceScoring
from taskmix.models.encoder import EncoderOutput
from taskmix.models.heads import Head, register_head
from taskmix.training.features import TokenizedSplit, tokenize_texts
from taskmix.training.ragged import longest_member, member_rows

# Score of a choice an example does not have: far below any real score, yet finite, so the
# softmax gives it zero probability without producing NaN in losses or R3F's KL term.
ABSENT_CHOICE_SCORE = -1e9


@dataclass(frozen=True)
class ChoiceExample:
    """A context, its candidate answers, and the index of the right one (None when unlabelled)."""

    context: str
    choices: tuple[str, ...]
    label: int | None = None
    uid: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ChoiceFeatures:
    """Token rows of every (context, choice) pair; example i owns rows `starts[i]:starts[i + 1]`."""

    rows: TokenizedSplit
    starts: np.ndarray
    labels: np.ndarray
    uids: list[str]

    def __len__(self) -> int:
        return len(self.starts) - 1

    @property
    def lengths(self) -> np.ndarray:
        return longest_member(self.rows.lengths, self.starts)

    def subset(self, indices: np.ndarray) -> "ChoiceFeatures":
        rows, starts = member_rows(self.starts, indices)
        return ChoiceFeatures(self.rows.subset(rows), starts, self.labels[indices], [self.uids[i] for i in indices])

    def collate(self, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        """The pairs of the batch's examples as one padded batch, plus where each pair's score goes."""
        rows, starts = member_rows(self.starts, indices)
        batch = self.rows.collate(rows, pad_id)
        example = np.repeat(np.arange(len(indices)), np.diff(starts))
        batch["choice_example"] = torch.from_numpy(example)
        batch["choice_position"] = torch.from_numpy(np.arange(len(rows)) - starts[example])
        batch["labels"] = torch.from_numpy(np.asarray(self.labels[indices]))
        return batch

    def arrays(self) -> dict[str, np.ndarray]:
        return {"ids": self.rows.ids, "offsets": self.rows.offsets, "segment_starts": self.rows.segment_starts,
                "starts": self.starts, "labels": self.labels}


@register_head("multiple_choice")
class MultipleChoiceHead(Head):
    """One score per pair from the pooled vector (dropout, linear); logits are (examples, choices)."""

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__(hidden_size, num_outputs, dropout)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, encoded: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        scores = self.out(self.dropout(encoded.pooled)).squeeze(-1).float()
        examples, positions = batch["choice_example"], batch["choice_position"]
        logits = scores.new_full((len(batch["labels"]), int(positions.max()) + 1), ABSENT_CHOICE_SCORE)
        logits[examples, positions] = scores
        return logits

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(logits, batch["labels"].long())

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return logits.argmax(dim=-1)

    def distribution_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits


class MultipleChoiceKind(ChoiceScoring):
    name = "multiple_choice"
    head = "multiple_choice"
    metrics_allowed = ("accuracy",)

    def featurize(self, examples: Sequence[ChoiceExample], tokenizer, max_length: int) -> ChoiceFeatures:
        counts = [len(e.choices) for e in examples]
        contexts = [e.context for e, n in zip(examples, counts) for _ in range(n)]
        choices = [c for e in examples for c in e.choices]
        rows = tokenize_texts(contexts, choices, np.zeros(len(choices), dtype=np.int64),
                              [str(i) for i in range(len(choices))], tokenizer, max_length)
        starts = np.zeros(len(examples) + 1, dtype=np.int64)
        starts[1:] = np.cumsum(counts)
        return ChoiceFeatures(rows, starts, self.label_array([e.label for e in examples]),
                              [e.uid for e in examples])

    def load_features(self, arrays: Mapping[str, np.ndarray], uids: list[str]) -> ChoiceFeatures:
        rows = TokenizedSplit(ids=arrays["ids"], offsets=arrays["offsets"], segment_starts=arrays["segment_starts"],
                              labels=np.zeros(len(arrays["offsets"]) - 1, dtype=np.int64),
                              uids=[str(i) for i in range(len(arrays["offsets"]) - 1)])
        return ChoiceFeatures(rows, np.asarray(arrays["starts"]), arrays["labels"], uids)

    def concatenate(self, parts: list[ChoiceFeatures]) -> ChoiceFeatures:
        shifts = np.cumsum([0] + [int(p.starts[-1]) for p in parts[:-1]])
        starts = np.concatenate([[0]] + [p.starts[1:] + s for p, s in zip(parts, shifts)])
        return ChoiceFeatures(TokenizedSplit.concatenate([p.rows for p in parts]), starts,
                              np.concatenate([p.labels for p in parts]), [u for p in parts for u in p.uids])


MULTIPLE_CHOICE = register_kind(MultipleChoiceKind())
