"""Extractive question answering (SQuAD v1.1 style): the answer is a span of the context.

The question and the context are encoded as a text pair; a context longer than the window is
cut into overlapping windows (the fast tokenizer's overflowing tokens), so one example owns
several rows.  The head gives every token a start and an end score; a prediction is the best
span of any window of the example (start <= end, at most `max_answer_length` tokens, a head
setting, default 30; context tokens only; score = start + end score), mapped back to
characters of the context through the tokenizer's offsets, so the predicted answer is a
substring of the original context.  Metrics are SQuAD v1.1's exact match and token F1 after
its answer normalisation.

Choices the papers leave open (standard SQuAD v1 practice):
- Training targets per window are the token positions of the first gold answer when it lies
  wholly inside the window, else position 0 ([CLS]); other gold answers only count in scoring.
- Windows overlap by a third of the window's token budget (`overlap_tokens`: 127 tokens at
  `max_length` 384, close to the usual 128), and a question keeps at most half of the budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from taskmix.errors import ConfigError
from taskmix.kinds.base import TaskKind, register_kind
from taskmix.metrics import register_metric
from taskmix.models.encoder import EncoderOutput
from taskmix.models.heads import Head, positive_int, register_head
from taskmix.text_answers import mean_exact_match, mean_f1
from taskmix.training.features import TOKENIZE_CHUNK, TokenizedSplit
from taskmix.training.ragged import Ragged, codes_text, longest_member, member_rows, object_rows

# Longest predicted answer, in tokens: the usual SQuAD setting (BERT's and Hugging Face's default).
# A head argument, fixed for tasks built from configs: `build_head` passes no per-task settings.
MAX_ANSWER_LENGTH = 30
# `num_outputs` of a span task, read by Muppet's 1/log n loss scaling: the loss is a softmax over
# the positions of a window, so n is the number of positions, taken as the default window of 128
# tokens (log 128 = 4.85 is the loss of a uniform start/end guess).  With n = 2 (the head's two
# scores per token) a QA loss at chance would weigh about 7 times a classification loss at chance;
# with 128, log_classes brings both to 1.
SCALED_POSITIONS = 128
# Score of padding positions: far below any real score yet finite, so softmaxes give them zero
# probability without NaN in the loss or R3F's KL term.
PADDING_SCORE = -1e9
# Shortest window budget (tokens left after the special tokens) that leaves room for a question,
# a context piece and the overlap.
MIN_BUDGET = 16
OUTSIDE_CONTEXT = -1  # character offset of question, special and padding tokens
_CELL_BREAKS = re.compile(r"[\t\r\n]")  # what would break a TSV cell of a prediction file


@dataclass(frozen=True)
class Answer:
    """A gold answer: its text and the character offset where it starts in the context."""

    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True)
class QAExample:
    """A question about a context with its gold answers (none when unlabelled)."""

    question: str
    context: str
    answers: tuple[Answer, ...] = ()
    uid: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


class AnswerSpan(NamedTuple):
    """A predicted answer: characters [start, end) of the context, and that text."""

    start: int
    end: int
    text: str


@dataclass
class SpanFeatures:
    """The windows of every example; example i owns windows `starts[i]:starts[i + 1]`.

    `windows.labels` holds each window's (start, end) target token positions; `char_spans` has,
    for every token of every window, its [begin, end) characters in the context (-1 outside it);
    `contexts` and `gold_spans` (the gold answers' character spans) keep what scoring needs as
    numbers, so the token cache stores them like token ids.
    """

    windows: TokenizedSplit
    char_spans: Ragged
    starts: np.ndarray
    contexts: Ragged
    gold_spans: Ragged
    uids: list[str]
    labels: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        """Gold answer texts per example (an empty tuple when unlabelled), as metrics and files need them."""
        contexts = self.contexts.texts()
        self.labels = object_rows([tuple(contexts[i][b:e] for b, e in self.gold_spans.row(i))
                                   for i in range(len(self.uids))])

    def __len__(self) -> int:
        return len(self.starts) - 1

    @property
    def lengths(self) -> np.ndarray:
        return longest_member(self.windows.lengths, self.starts)

    def subset(self, indices: np.ndarray) -> "SpanFeatures":
        rows, starts = member_rows(self.starts, indices)
        return SpanFeatures(self.windows.subset(rows), self.char_spans.subset(rows), starts,
                            self.contexts.subset(indices), self.gold_spans.subset(indices),
                            [self.uids[i] for i in indices])

    def collate(self, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        """The windows of the batch's examples as one padded batch; `labels` are their target positions.

        Also: `window_example` (which example of the batch a window belongs to), `char_spans`
        (windows, width, 2) and `context_codes` (examples, longest context), so the head can
        turn token positions into answer text.
        """
        rows, starts = member_rows(self.starts, indices)
        batch = self.windows.collate(rows, pad_id)
        width = batch["input_ids"].shape[1]
        spans = np.full((len(rows), width, 2), OUTSIDE_CONTEXT, dtype=np.int64)
        for r, w in enumerate(rows):
            row = self.char_spans.row(w)
            spans[r, : len(row)] = row
        longest = max(1, max(len(self.contexts.row(i)) for i in indices))
        codes = np.zeros((len(indices), longest), dtype=np.int32)
        for r, i in enumerate(indices):
            context = self.contexts.row(i)
            codes[r, : len(context)] = context
        batch["char_spans"] = torch.from_numpy(spans)
        batch["window_example"] = torch.from_numpy(np.repeat(np.arange(len(indices)), np.diff(starts)))
        batch["context_codes"] = torch.from_numpy(codes)
        return batch

    def arrays(self) -> dict[str, np.ndarray]:
        return {"ids": self.windows.ids, "offsets": self.windows.offsets,
                "segment_starts": self.windows.segment_starts, "positions": self.windows.labels,
                "char_spans": self.char_spans.values, "starts": self.starts,
                "context_codes": self.contexts.values, "context_offsets": self.contexts.offsets,
                "gold_spans": self.gold_spans.values, "gold_offsets": self.gold_spans.offsets}


def overlap_tokens(budget: int) -> int:
    """Tokens shared by consecutive windows: a third of the budget (the tokenizer's `stride`)."""
    return budget // 3


def _cut_questions(questions: Sequence[str], tokenizer, keep: int) -> list[str]:
    """Questions longer than `keep` tokens cut after their `keep`-th token, so a context piece always fits."""
    offsets = tokenizer(list(questions), add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [q if len(o) <= keep else q[: o[keep - 1][1]] for q, o in zip(questions, offsets)]


def _target_positions(char_spans: np.ndarray, in_context: np.ndarray, answer: Answer | None) -> tuple[int, int]:
    """Token positions of the first and last token of `answer` in a window, or (0, 0) when it is not wholly inside."""
    if answer is None or not in_context.any():
        return 0, 0
    positions = np.flatnonzero(in_context)
    begins, ends = char_spans[positions, 0], char_spans[positions, 1]
    if answer.start < begins[0] or answer.end > ends[-1]:
        return 0, 0
    first = positions[np.searchsorted(begins, answer.start, side="right") - 1]
    last = positions[np.searchsorted(ends, answer.end, side="left")]
    return int(first), int(last)


def featurize_spans(examples: Sequence[QAExample], tokenizer, max_length: int) -> SpanFeatures:
    """Tokenise question + context pairs into overlapping windows of at most `max_length` tokens."""
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    if budget < MIN_BUDGET:
        raise ConfigError(f"max_length {max_length} is too short for extractive QA: windows need at least "
                          f"{MIN_BUDGET} tokens besides the special tokens")
    questions = _cut_questions([e.question for e in examples], tokenizer, budget // 2)
    ids, segment_starts, positions, char_spans = [], [], [], []
    counts = np.zeros(len(examples), dtype=np.int64)
    for begin in range(0, len(examples), TOKENIZE_CHUNK):
        chunk = examples[begin : begin + TOKENIZE_CHUNK]
        encoded = tokenizer(questions[begin : begin + TOKENIZE_CHUNK], [e.context for e in chunk],
                            truncation="only_second", max_length=max_length, stride=overlap_tokens(budget),
                            return_overflowing_tokens=True, return_offsets_mapping=True,
                            return_token_type_ids=False, return_attention_mask=False)
        for w, owner in enumerate(encoded["overflow_to_sample_mapping"]):
            example = chunk[owner]
            counts[begin + owner] += 1
            in_context = np.array([s == 1 for s in encoded.sequence_ids(w)])
            spans = np.array(encoded["offset_mapping"][w], dtype=np.int32).reshape(-1, 2)
            spans[~in_context] = OUTSIDE_CONTEXT
            ids.append(np.asarray(encoded["input_ids"][w], dtype=np.int32))
            segment_starts.append(int(np.argmax(in_context)) if in_context.any() else len(in_context))
            positions.append(_target_positions(spans, in_context, example.answers[0] if example.answers else None))
            char_spans.append(spans)
    windows = Ragged.from_rows(ids, np.zeros(0, dtype=np.int32))
    starts = np.zeros(len(examples) + 1, dtype=np.int64)
    starts[1:] = np.cumsum(counts)
    return SpanFeatures(
        windows=TokenizedSplit(ids=windows.values, offsets=windows.offsets,
                               segment_starts=np.array(segment_starts, dtype=np.int32),
                               labels=np.array(positions, dtype=np.int64).reshape(-1, 2),
                               uids=[str(i) for i in range(len(ids))]),
        char_spans=Ragged.from_rows(char_spans, np.zeros((0, 2), dtype=np.int32)),
        starts=starts,
        contexts=Ragged.of_texts([e.context for e in examples]),
        gold_spans=Ragged.from_rows([np.array([(a.start, a.end) for a in e.answers], dtype=np.int64).reshape(-1, 2)
                                     for e in examples], np.zeros((0, 2), dtype=np.int64)),
        uids=[e.uid for e in examples],
    )


def best_spans(start: torch.Tensor, end: torch.Tensor, allowed: torch.Tensor,
               max_answer_length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per window (rows of `start`/`end`, (windows, width)): the best score and its first and last token.

    A span runs from token s to token e with s <= e < s + max_answer_length, both `allowed`
    (context tokens); its score is start[s] + end[e].  A window without any allowed span scores -inf.
    """
    width = start.shape[-1]
    position = torch.arange(width, device=start.device)
    length = position[None, :] - position[:, None]
    band = (length >= 0) & (length < max_answer_length)
    ok = band[None] & allowed[:, :, None] & allowed[:, None, :]
    scores = (start[:, :, None] + end[:, None, :]).masked_fill(~ok, float("-inf"))
    best, flat = scores.flatten(1).max(dim=1)
    return best, flat // width, flat % width


@register_head("extractive_qa")
class SpanHead(Head):
    """A start and an end score per token (dropout, linear); logits are (windows, width, 2).

    Head setting `max_answer_length`: the longest span, in tokens, that prediction considers.
    """

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1, *,
                 max_answer_length: int = MAX_ANSWER_LENGTH):
        super().__init__(hidden_size, num_outputs, dropout)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, 2)
        self.max_answer_length = positive_int("max_answer_length", max_answer_length)

    def forward(self, encoded: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.out(self.dropout(encoded.tokens)).float()
        return logits.masked_fill(~encoded.mask.bool()[..., None], PADDING_SCORE)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean of the start and end cross-entropies over the window's positions."""
        targets = batch["labels"].long()
        return (F.cross_entropy(logits[..., 0], targets[:, 0]) + F.cross_entropy(logits[..., 1], targets[:, 1])) / 2

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[AnswerSpan]:
        """The best span over all windows of each example, as characters and text of its context."""
        spans = batch["char_spans"]
        score, first, last = best_spans(logits[..., 0], logits[..., 1], spans[..., 0] >= 0, self.max_answer_length)
        score, first, last, spans = score.cpu(), first.cpu(), last.cpu(), spans.cpu()
        owner, codes = batch["window_example"].cpu(), batch["context_codes"].cpu()
        answers = []
        for example in range(len(codes)):
            windows = (owner == example).nonzero().flatten()
            w = windows[score[windows].argmax()]
            if not torch.isfinite(score[w]):
                answers.append(AnswerSpan(0, 0, ""))
                continue
            begin, end = int(spans[w, first[w], 0]), int(spans[w, last[w], 1])
            answers.append(AnswerSpan(begin, end, codes_text(codes[example, begin:end].numpy())))
        return answers

    def distribution_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The start and the end distributions of every window, stacked as rows (R3F compares both)."""
        return torch.cat([logits[..., 0], logits[..., 1]])


# -- SQuAD v1.1 scoring ------------------------------------------------------------------------

register_metric("squad_em", mean_exact_match)
register_metric("squad_f1", mean_f1)


class ExtractiveQAKind(TaskKind):
    """Answers are spans of the context; predictions are `AnswerSpan`s, gold labels tuples of answer texts."""

    name = "extractive_qa"
    head = "extractive_qa"
    metrics_allowed = ("squad_em", "squad_f1")
    default_metrics = ("squad_em", "squad_f1")
    prediction_dtype = object

    def num_outputs(self, task) -> int:
        return SCALED_POSITIONS

    def featurize(self, examples: Sequence[QAExample], tokenizer, max_length: int) -> SpanFeatures:
        return featurize_spans(examples, tokenizer, max_length)

    def load_features(self, arrays: Mapping[str, np.ndarray], uids: list[str]) -> SpanFeatures:
        windows = len(arrays["offsets"]) - 1
        return SpanFeatures(
            windows=TokenizedSplit(ids=arrays["ids"], offsets=arrays["offsets"], segment_starts=arrays["segment_starts"],
                                   labels=arrays["positions"], uids=[str(i) for i in range(windows)]),
            char_spans=Ragged(arrays["char_spans"], arrays["offsets"]),
            starts=np.asarray(arrays["starts"]),
            contexts=Ragged(arrays["context_codes"], arrays["context_offsets"]),
            gold_spans=Ragged(arrays["gold_spans"], arrays["gold_offsets"]),
            uids=uids,
        )

    def concatenate(self, parts: list[SpanFeatures]) -> SpanFeatures:
        shifts = np.cumsum([0] + [int(p.starts[-1]) for p in parts[:-1]])
        return SpanFeatures(
            windows=TokenizedSplit.concatenate([p.windows for p in parts]),
            char_spans=Ragged.concatenate([p.char_spans for p in parts]),
            starts=np.concatenate([[0]] + [p.starts[1:] + s for p, s in zip(parts, shifts)]).astype(np.int64),
            contexts=Ragged.concatenate([p.contexts for p in parts]),
            gold_spans=Ragged.concatenate([p.gold_spans for p in parts]),
            uids=[u for p in parts for u in p.uids],
        )

    def metric_inputs(self, task, predictions: Any, labels: Any) -> tuple[list[str], list[tuple[str, ...]]]:
        """Predicted answer texts and, per question, its gold answer texts."""
        if len(predictions) != len(labels):
            raise ValueError(f"task {task.name!r}: {len(predictions)} predictions for {len(labels)} questions")
        unanswered = sum(not answers for answers in labels)
        if unanswered:
            raise ValueError(f"task {task.name!r}: {unanswered} questions have no gold answer (an unlabelled split?)")
        return [p.text for p in predictions], [tuple(answers) for answers in labels]

    def format_prediction(self, task, value: Any) -> str:
        """A predicted answer's text, or the gold answers joined by " | "; tabs and line breaks become spaces."""
        text = value.text if isinstance(value, AnswerSpan) else " | ".join(value)
        return _CELL_BREAKS.sub(" ", text)

    def submission_label(self, task, value: Any) -> str:
        return self.format_prediction(task, value)

    def is_degenerate(self, score: float, best_constant: float | None) -> bool:
        """Never: a span task has no constant prediction to compare with."""
        return False


EXTRACTIVE_QA = register_kind(ExtractiveQAKind())
