"""Span-pair classification (WSC, WiC): two marked spans of a text or text pair, pooled and classified.

jiant treats WSC this way: the encoder reads the whole text, each span's token vectors are
pooled into one vector, and a classifier reads the two span vectors.  Examples mark spans
by characters; featurisation maps them to token ranges through the fast tokenizer's
offsets, so any tokenizer's word pieces are handled alike.  Labels, metrics, baselines and
submission cells are those of classification (`ChoiceScoring`), and `num_outputs` is the
number of labels, as for classification.

Truncation rule: a span that truncation cuts short keeps the tokens that remain; a span
that truncation removes entirely gets the empty token range (0, 0), which the head pools
into a zero vector, so the example is still classified (from the other span and the
bias) instead of failing a run.  The staged WSC and WiC rows all fit in 128 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from taskmix.kinds.base import register_kind
from taskmix.kinds.classification import ChoiceScoring
from taskmix.models.encoder import EncoderOutput
from taskmix.models.heads import ClassificationHead, register_head
from taskmix.training.features import TOKENIZE_CHUNK, TokenizedSplit

EMPTY_RANGE = (0, 0)  # token range of a span that truncation removed


@dataclass(frozen=True)
class CharSpan:
    """Characters [start, end) of segment `segment` (0: the first text, 1: the second)."""

    start: int
    end: int
    segment: int = 0


@dataclass(frozen=True)
class SpanPairExample:
    """A text (or text pair), two character spans in it, and a label index (None when unlabelled).

    Construction checks that each span is non-empty and lies inside its segment; readers
    turn the ValueError into a DataError naming the file and line.
    """

    text_a: str
    text_b: str | None
    span1: CharSpan
    span2: CharSpan
    label: int | None = None
    uid: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, span in (("span1", self.span1), ("span2", self.span2)):
            text = self.segment_text(span.segment)
            if text is None:
                raise ValueError(f"{name} lies in segment {span.segment}, which the example does not have")
            if not 0 <= span.start < span.end <= len(text):
                raise ValueError(f"{name} [{span.start}, {span.end}) is empty or outside its text of "
                                 f"{len(text)} characters")

    def segment_text(self, segment: int) -> str | None:
        return {0: self.text_a, 1: self.text_b}.get(segment)

    def span_text(self, span: CharSpan) -> str:
        return (self.segment_text(span.segment) or "")[span.start:span.end]


def token_range(offsets: Sequence[tuple[int, int]], sequence_ids: Sequence[int | None],
                span: CharSpan) -> tuple[int, int]:
    """The tokens [start, end) of the span's segment whose characters overlap the span.

    Special tokens (no sequence id, empty offsets) never belong to a span; a word piece
    that straddles a span boundary does.  `EMPTY_RANGE` when truncation removed every token.
    """
    hits = [i for i, ((begin, end), sequence) in enumerate(zip(offsets, sequence_ids))
            if sequence == span.segment and end > begin and begin < span.end and end > span.start]
    return (hits[0], hits[-1] + 1) if hits else EMPTY_RANGE


@dataclass
class SpanPairFeatures(TokenizedSplit):
    """Token rows as for text pairs, plus `spans` (rows, 4): token start and end of span 1, then of span 2."""

    spans: np.ndarray

    def subset(self, indices: np.ndarray) -> "SpanPairFeatures":
        return SpanPairFeatures(**vars(super().subset(indices)), spans=np.asarray(self.spans)[indices])

    def collate(self, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        batch = super().collate(indices, pad_id)
        batch["spans"] = torch.from_numpy(np.asarray(self.spans[indices], dtype=np.int64).reshape(-1, 2, 2))
        return batch

    def arrays(self) -> dict[str, np.ndarray]:
        return super().arrays() | {"spans": self.spans}

    @staticmethod
    def concatenate(parts: list["SpanPairFeatures"]) -> "SpanPairFeatures":
        if len(parts) == 1:
            return parts[0]
        rows = TokenizedSplit.concatenate(parts)
        return SpanPairFeatures(**vars(rows), spans=np.concatenate([p.spans for p in parts]))


def featurize_span_pairs(examples: Sequence[SpanPairExample], labels: np.ndarray, tokenizer,
                         max_length: int) -> SpanPairFeatures:
    """Tokenise in chunks with offsets (longer segment cut first, like text pairs) and map both spans."""
    pairs = bool(examples) and examples[0].text_b is not None
    rows: list[list[int]] = []
    segment_starts: list[int] = []
    spans: list[tuple[int, ...]] = []
    for begin in range(0, len(examples), TOKENIZE_CHUNK):
        chunk = examples[begin:begin + TOKENIZE_CHUNK]
        encoded = tokenizer([e.text_a for e in chunk], [e.text_b for e in chunk] if pairs else None,
                            truncation="longest_first" if pairs else True, max_length=max_length,
                            return_offsets_mapping=True, return_token_type_ids=False,
                            return_attention_mask=False)
        for i, example in enumerate(chunk):
            sequence_ids = encoded.sequence_ids(i)
            offsets = encoded["offset_mapping"][i]
            rows.append(encoded["input_ids"][i])
            segment_starts.append(next((p for p, s in enumerate(sequence_ids) if s == 1), len(sequence_ids)))
            spans.append(token_range(offsets, sequence_ids, example.span1)
                         + token_range(offsets, sequence_ids, example.span2))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    ids = np.fromiter((t for r in rows for t in r), dtype=np.int32, count=int(offsets[-1]))
    return SpanPairFeatures(ids=ids, offsets=offsets, segment_starts=np.array(segment_starts, dtype=np.int32),
                            labels=labels, uids=[e.uid for e in examples],
                            spans=np.array(spans, dtype=np.int64).reshape(-1, 4))


@register_head("span_pair")
class SpanPairHead(ClassificationHead):
    """Each span's tokens pooled by learned self-attention, then dropout and a linear layer on [s1; s2; s1*s2].

    Pooling follows jiant's span extractor for WSC: a linear score per token, a softmax over
    the span's tokens, the weighted sum of their vectors.  jiant classifies [s1; s2]; the
    elementwise product is added because a linear layer over the concatenation alone cannot
    compare the two spans, which is the question both WSC (same referent?) and WiC (same
    sense?) ask.  Loss, prediction and R3F's distribution are classification's.
    """

    reads_pooled = False  # it pools the spans' token states itself

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__(hidden_size, num_outputs, dropout)
        self.attend = nn.Linear(hidden_size, 1)
        self.out = nn.Linear(3 * hidden_size, num_outputs)

    def pool(self, tokens: torch.Tensor, ranges: torch.Tensor) -> torch.Tensor:
        """(B, H) span vectors from (B, T, H) token vectors and (B, 2) token ranges; empty ranges give zeros."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        inside = (positions >= ranges[:, :1]) & (positions < ranges[:, 1:])
        scores = self.attend(tokens).squeeze(-1).float().masked_fill(~inside, torch.finfo(torch.float32).min)
        weights = torch.softmax(scores, dim=-1) * inside
        return torch.bmm(weights.unsqueeze(1).to(tokens.dtype), tokens).squeeze(1)

    def forward(self, encoded: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        first = self.pool(encoded.tokens, batch["spans"][:, 0])
        second = self.pool(encoded.tokens, batch["spans"][:, 1])
        return self.out(self.dropout(torch.cat([first, second, first * second], dim=-1)))


class SpanPairKind(ChoiceScoring):
    name = "span_pair"
    head = "span_pair"
    metrics_allowed = ("accuracy", "f1", "f1_macro", "matthews")

    def featurize(self, examples: Sequence[SpanPairExample], tokenizer, max_length: int) -> SpanPairFeatures:
        return featurize_span_pairs(examples, self.label_array([e.label for e in examples]), tokenizer, max_length)

    def load_features(self, arrays: Mapping[str, np.ndarray], uids: list[str]) -> SpanPairFeatures:
        return SpanPairFeatures(uids=uids, **arrays)

    def concatenate(self, parts: list[SpanPairFeatures]) -> SpanPairFeatures:
        return SpanPairFeatures.concatenate(parts)


SPAN_PAIR = register_kind(SpanPairKind())
