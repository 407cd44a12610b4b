"""Token tagging (CoNLL-2000 chunking and POS): one tag per word, predicted at its first sub-token.

Words are tokenised with the fast tokenizer's `is_split_into_words`; the head scores the
token vector of each word's first sub-token, the other sub-tokens carry no label (IGNORE),
as BERT tags words (Devlin et al. 2019, §5.3).  Metrics and predictions are per word, never
per sub-token.

Words that get no token because the sequence was cut at `max_length` (or because the
tokenizer maps them to nothing) keep their gold tag but are never predicted: their
prediction is MISSING.  They are scored as errors, never dropped: `token_accuracy` counts
them wrong and `chunk_f1` reads them as "O", so a gold chunk they belong to is missed.  A
score therefore never rises by truncating.

`num_outputs` is the size of the tag set (`Task.labels`), the class count of the per-word
softmax; Muppet's 1/log n loss scaling reads it as such.
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
from taskmix.metrics import register_metric
from taskmix.models.encoder import EncoderOutput
from taskmix.models.heads import IGNORE, Head, register_head
from taskmix.training.features import TOKENIZE_CHUNK, TokenizedSplit
from taskmix.training.ragged import Ragged, object_rows

MISSING = -1  # tag index of an unlabelled word, and the prediction of a word that has no token
NO_TOKEN = -1  # first-token position of a word that has no token
MISSING_TEXT = "_"  # a MISSING tag in prediction files and submissions (CoNLL's empty field)


@dataclass(frozen=True)
class TagExample:
    """A sentence as words, with one tag index per word (None when unlabelled)."""

    words: tuple[str, ...]
    tags: tuple[int, ...] | None = None
    uid: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TagFeatures:
    """Token rows of a split plus, per word, its first sub-token position and its tag.

    `positions` and `labels` are object arrays with one int array per example, aligned word
    by word: `positions[i][w]` is where word w of example i starts (NO_TOKEN when it has no
    token), `labels[i][w]` its tag index (MISSING when unlabelled).
    """

    rows: TokenizedSplit
    positions: np.ndarray
    labels: np.ndarray
    uids: list[str]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def lengths(self) -> np.ndarray:
        return self.rows.lengths

    def subset(self, indices: np.ndarray) -> "TagFeatures":
        return TagFeatures(self.rows.subset(indices), self.positions[indices], self.labels[indices],
                           [self.uids[i] for i in indices])

    def collate(self, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        """Padded tokens; `first_token` marks the positions scored, `labels` holds their tags (IGNORE
        elsewhere), `word_positions` (-1 padded to the longest sentence) maps them back to words."""
        batch = self.rows.collate(indices, pad_id)
        width = batch["input_ids"].shape[1]
        words = max(len(self.positions[i]) for i in indices)
        first = np.zeros((len(indices), width), dtype=bool)
        labels = np.full((len(indices), width), IGNORE, dtype=np.int64)
        word_positions = np.full((len(indices), words), NO_TOKEN, dtype=np.int64)
        for row, i in enumerate(indices):
            positions, tags = np.asarray(self.positions[i]), np.asarray(self.labels[i])
            seen = positions != NO_TOKEN
            first[row, positions[seen]] = True
            labels[row, positions[seen]] = np.where(tags[seen] == MISSING, IGNORE, tags[seen])
            word_positions[row, : len(positions)] = positions
        batch.update(first_token=torch.from_numpy(first), labels=torch.from_numpy(labels),
                     word_positions=torch.from_numpy(word_positions),
                     word_counts=torch.tensor([len(self.positions[i]) for i in indices]))
        return batch

    def arrays(self) -> dict[str, np.ndarray]:
        positions = Ragged.from_rows(list(self.positions), np.zeros(0, dtype=np.int32))
        tags = Ragged.from_rows(list(self.labels), np.zeros(0, dtype=np.int64))
        return {"ids": self.rows.ids, "offsets": self.rows.offsets, "positions": positions.values,
                "word_offsets": positions.offsets, "tags": tags.values}

    @staticmethod
    def from_arrays(arrays: Mapping[str, np.ndarray], uids: list[str]) -> "TagFeatures":
        offsets = np.asarray(arrays["word_offsets"])
        return TagFeatures(single_segment(arrays["ids"], np.asarray(arrays["offsets"]), uids),
                           object_rows(Ragged(np.asarray(arrays["positions"]), offsets).rows()),
                           object_rows(Ragged(np.asarray(arrays["tags"]), offsets).rows()), uids)


def single_segment(ids: np.ndarray, offsets: np.ndarray, uids: list[str]) -> TokenizedSplit:
    """Token rows of one segment each; their labels live in `TagFeatures`, not here."""
    return TokenizedSplit(ids=ids, offsets=offsets, segment_starts=np.diff(offsets).astype(np.int32),
                          labels=np.zeros(len(offsets) - 1, dtype=np.int64), uids=uids)


@register_head("tagging")
class TaggingHead(Head):
    """A linear layer over the token vector of each word's first sub-token.

    Logits are (scored words of the batch, tags) in row-major order, so the R3F term is the
    symmetric KL averaged over words (none for a batch without a scored word).
    """

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__(hidden_size, num_outputs, dropout)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_outputs)

    def forward(self, encoded: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.out(self.dropout(encoded.tokens[batch["first_token"]]))

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over labelled words (zero, not NaN, for a batch without any)."""
        targets = batch["labels"][batch["first_token"]].long()
        total = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE, reduction="sum")
        return total / (targets != IGNORE).sum().clamp(min=1)

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per example, one tag index per word; MISSING for words without a token."""
        best = logits.argmax(dim=-1).cpu().numpy()
        per_row = batch["first_token"].sum(dim=1).cpu().numpy()
        positions = batch["word_positions"].cpu().numpy()
        counts = batch["word_counts"].cpu().numpy()
        out, start = [], 0
        for row, (scored, words) in enumerate(zip(per_row, counts)):
            tags = np.full(int(words), MISSING, dtype=np.int64)
            tags[positions[row, :words] != NO_TOKEN] = best[start : start + scored]
            out.append(tags)
            start += scored
        return out

    def distribution_logits(self, logits: torch.Tensor) -> torch.Tensor | None:
        return logits if len(logits) else None


def word_positions(word_ids: Sequence[int | None], words: int) -> np.ndarray:
    """First sub-token position of each of `words` words, NO_TOKEN for words absent from `word_ids`."""
    positions = np.full(words, NO_TOKEN, dtype=np.int32)
    previous = None
    for position, word in enumerate(word_ids):
        if word is not None and word != previous:
            positions[word] = position
        previous = word
    return positions


class TaggingKind(ChoiceScoring):
    """Labels are indices into the tag set `Task.labels`; a prediction is a tag index per word.

    Baselines are constant tags: a scalar prediction stands for the same tag on every word, so
    the classification rules carry over (`constant_predictions` = every tag, the majority = the
    most frequent training tag, degenerate = not more than one point above the best constant).
    """

    name = "tagging"
    head = "tagging"
    metrics_allowed = ("chunk_f1", "token_accuracy")
    default_metrics = ("token_accuracy",)
    prediction_dtype = np.int64

    def featurize(self, examples: Sequence[TagExample], tokenizer, max_length: int) -> TagFeatures:
        ids: list[list[int]] = []
        positions: list[np.ndarray] = []
        for begin in range(0, len(examples), TOKENIZE_CHUNK):
            chunk = examples[begin : begin + TOKENIZE_CHUNK]
            encoded = tokenizer([list(e.words) for e in chunk], is_split_into_words=True, truncation=True,
                                max_length=max_length, return_token_type_ids=False, return_attention_mask=False)
            ids.extend(encoded["input_ids"])
            positions.extend(word_positions(encoded.word_ids(i), len(e.words)) for i, e in enumerate(chunk))
        uids = [e.uid for e in examples]
        tags = [np.full(len(e.words), MISSING, dtype=np.int64) if e.tags is None else np.asarray(e.tags, dtype=np.int64)
                for e in examples]
        tokens = Ragged.from_rows([np.asarray(row) for row in ids], np.zeros(0, dtype=np.int32))
        return TagFeatures(single_segment(tokens.values, tokens.offsets, uids),
                           object_rows(positions), object_rows(tags), uids)

    def load_features(self, arrays: Mapping[str, np.ndarray], uids: list[str]) -> TagFeatures:
        return TagFeatures.from_arrays(arrays, uids)

    def concatenate(self, parts: list[TagFeatures]) -> TagFeatures:
        return TagFeatures(TokenizedSplit.concatenate([p.rows for p in parts]),
                           object_rows([r for p in parts for r in p.positions]),
                           object_rows([r for p in parts for r in p.labels]), [u for p in parts for u in p.uids])

    # -- predictions -------------------------------------------------------------------------
    def tag_texts(self, task, indices: np.ndarray) -> list[str]:
        """Tag strings of indices; MISSING (or any index outside the tag set) becomes ""."""
        return [task.labels[i] if 0 <= i < len(task.labels) else "" for i in np.asarray(indices).tolist()]

    def metric_inputs(self, task, predictions: Any, labels: Any) -> tuple[list[list[str]], list[list[str]]]:
        """Per example, predicted and gold tag strings, word for word ("" for a MISSING prediction).

        A scalar prediction is one tag for every word of its example (the constant baselines).
        """
        if len(predictions) != len(labels):
            raise ValueError(f"task {task.name!r}: {len(predictions)} predictions for {len(labels)} sentences")
        pred, gold = [], []
        for i, (p, g) in enumerate(zip(predictions, labels)):
            g = np.asarray(g)
            p = np.full(len(g), p) if np.ndim(p) == 0 else np.asarray(p)
            if len(p) != len(g):
                raise ValueError(f"task {task.name!r}: sentence {i} has {len(g)} words but {len(p)} predicted tags")
            if np.any(g == MISSING):
                raise ValueError(f"task {task.name!r}: sentence {i} has words without a gold tag")
            pred.append(self.tag_texts(task, p))
            gold.append(self.tag_texts(task, g))
        return pred, gold

    def format_prediction(self, task, value: Any) -> str:
        """Tags of a sentence separated by spaces, MISSING as `_`."""
        return " ".join(tag or MISSING_TEXT for tag in self.tag_texts(task, value))

    def submission_label(self, task, value: Any) -> str:
        return self.format_prediction(task, value)

    def majority_prediction(self, train_labels: np.ndarray) -> int | None:
        """The most frequent tag over every labelled training word (the smallest index on ties)."""
        return super().majority_prediction(np.concatenate([np.asarray(t) for t in train_labels]))


def chunk_f1(predictions: list[list[str]], labels: list[list[str]]) -> float:
    """Micro F1 over chunks, as CoNLL-2000's conlleval scores it (seqeval's default mode).

    The default mode reads an I- tag after O or after another type as the start of a chunk, as
    conlleval does, rather than rejecting it as IOB2's strict mode would; a MISSING prediction
    is "O", so it never forms a chunk.
    """
    from seqeval.metrics import f1_score

    pred = [[tag or "O" for tag in sentence] for sentence in predictions]
    return float(f1_score(labels, pred))


def token_accuracy(predictions: list[list[str]], labels: list[list[str]]) -> float:
    """Fraction of words whose predicted tag is the gold tag (POS tagging's accuracy)."""
    flat_pred = [t for sentence in predictions for t in sentence]
    flat_gold = [t for sentence in labels for t in sentence]
    return sum(p == g for p, g in zip(flat_pred, flat_gold)) / len(flat_gold) if flat_gold else 0.0


register_metric("chunk_f1", chunk_f1)
register_metric("token_accuracy", token_accuracy)

TAGGING = register_kind(TaggingKind())
