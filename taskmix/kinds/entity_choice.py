"""Entity choice (ReCoRD): fill a query's placeholder with the right entity of the passage.

Every candidate entity (the passage's entities, one per distinct text) is put in place of
`@placeholder`, and the passage with that filled query is encoded as a text pair and
scored from its pooled vector, as in multiple choice; the scores of one query compete in
a softmax over its (variable number of) candidates.  Several candidates may be right: a
candidate is gold when it matches an answer exactly after SQuAD normalisation, and the
loss is the negative log of the total probability of the gold candidates (the marginal
likelihood), which neither favours one gold over another nor counts a query twice.
Training queries with no gold candidate carry no loss.

A prediction is the chosen entity's text, so the metrics are ReCoRD's own (the best
exact match and token F1 over the gold answers, `taskmix.text_answers`) and the
submission's label is that text.  The head reads the candidates' UTF-8 bytes from the
batch to return it.  `num_outputs` is 1 (one score per candidate; the number of
candidates varies per query), so loss scaling by class count treats the task as binary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from taskmix.kinds.base import TaskKind, register_kind
from taskmix.kinds.multiple_choice import ChoiceFeatures, MultipleChoiceHead
from taskmix.metrics import register_metric
from taskmix.models.heads import register_head
from taskmix.text_answers import best_exact_match, mean_exact_match, mean_f1
from taskmix.training.features import TokenizedSplit, tokenize_texts
from taskmix.training.ragged import Ragged, member_rows, object_rows

PLACEHOLDER = "@placeholder"
NOT_GOLD = -1e30  # log-probability given to non-gold candidates in the marginal: finite, so gradients stay finite


@dataclass(frozen=True)
class EntityChoiceExample:
    """A passage, a query with `@placeholder`, the candidate entity texts and the gold answers (None: unlabelled)."""

    passage: str
    query: str
    candidates: tuple[str, ...]
    answers: tuple[str, ...] | None = None
    uid: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


def _grouped(items: list[Any], counts: Sequence[int]) -> list[tuple]:
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    return [tuple(items[starts[i]:starts[i + 1]]) for i in range(len(counts))]


@dataclass
class EntityChoiceFeatures(ChoiceFeatures):
    """Choice rows (one per candidate; row labels 1 for gold candidates) plus each query's candidate texts.

    `labels` holds each query's gold answers (a tuple, None when unlabelled).
    """

    candidates: list[tuple[str, ...]] = field(default_factory=list)

    def subset(self, indices: np.ndarray) -> "EntityChoiceFeatures":
        part = super().subset(indices)
        return EntityChoiceFeatures(part.rows, part.starts, part.labels, part.uids,
                                    [self.candidates[i] for i in indices])

    def collate(self, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        """Candidate rows of the batch's queries, a (queries, max candidates) gold mask, and the candidates' bytes."""
        rows, starts = member_rows(self.starts, indices)
        batch = self.rows.collate(rows, pad_id)
        example = np.repeat(np.arange(len(indices)), np.diff(starts))
        position = np.arange(len(rows)) - starts[example]
        gold = np.zeros((len(indices), int(position.max()) + 1), dtype=np.float32)
        gold[example, position] = self.rows.labels[rows] > 0
        texts = [c.encode("utf-8") for i in indices for c in self.candidates[i]]
        data = np.zeros((len(texts), max(1, max(len(t) for t in texts))), dtype=np.uint8)
        for r, text in enumerate(texts):
            data[r, :len(text)] = np.frombuffer(text, dtype=np.uint8)
        batch.update(choice_example=torch.from_numpy(example), choice_position=torch.from_numpy(position),
                     labels=torch.from_numpy(gold), candidate_bytes=torch.from_numpy(data),
                     candidate_lengths=torch.tensor([len(t) for t in texts]))
        return batch

    def arrays(self) -> dict[str, np.ndarray]:
        counts = [len(c) for c in self.candidates]
        candidates = Ragged.of_texts([c for cs in self.candidates for c in cs])
        answers = Ragged.of_texts([a for group in self.labels if group is not None for a in group])
        answer_counts = np.array([-1 if a is None else len(a) for a in self.labels], dtype=np.int64)
        return {"ids": self.rows.ids, "offsets": self.rows.offsets, "segment_starts": self.rows.segment_starts,
                "row_gold": self.rows.labels, "starts": self.starts, "candidate_counts": np.array(counts, dtype=np.int64),
                "candidate_codes": candidates.values, "candidate_offsets": candidates.offsets,
                "answer_codes": answers.values, "answer_offsets": answers.offsets, "answer_counts": answer_counts}


@register_head("entity_choice")
class EntityChoiceHead(MultipleChoiceHead):
    """Multiple choice's scorer with a loss for several gold candidates and text predictions."""

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        gold = batch["labels"] > 0
        answerable = gold.any(dim=-1)
        if not bool(answerable.any()):
            return logits.sum() * 0.0
        log_p = torch.log_softmax(logits, dim=-1)
        marginal = torch.logsumexp(torch.where(gold, log_p, log_p.new_tensor(NOT_GOLD)), dim=-1)
        return -marginal[answerable].mean()

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[str]:
        """The text of each query's best-scored candidate."""
        first = torch.searchsorted(batch["choice_example"], torch.arange(len(logits), device=logits.device))
        rows = (first + logits.argmax(dim=-1)).cpu()
        data, lengths = batch["candidate_bytes"].cpu().numpy(), batch["candidate_lengths"].cpu().numpy()
        return [data[r, :lengths[r]].tobytes().decode("utf-8") for r in rows.tolist()]


register_metric("record_em", mean_exact_match)
register_metric("record_f1", mean_f1)


class EntityChoiceKind(TaskKind):
    name = "entity_choice"
    head = "entity_choice"
    metrics_allowed = ("record_em", "record_f1")
    default_metrics = ("record_em", "record_f1")
    prediction_dtype = object

    def num_outputs(self, task) -> int:
        return 1

    def label_array(self, labels: Sequence[tuple[str, ...] | None]) -> np.ndarray:
        return object_rows([None if answers is None else tuple(answers) for answers in labels])

    def featurize(self, examples: Sequence[EntityChoiceExample], tokenizer, max_length: int) -> EntityChoiceFeatures:
        passages = [e.passage for e in examples for _ in e.candidates]
        queries = [e.query.replace(PLACEHOLDER, c) for e in examples for c in e.candidates]
        gold = np.array([int(e.answers is not None and best_exact_match(c, e.answers) == 1.0)
                         for e in examples for c in e.candidates], dtype=np.int64)
        rows = tokenize_texts(passages, queries, gold, [str(i) for i in range(len(gold))], tokenizer, max_length)
        starts = np.zeros(len(examples) + 1, dtype=np.int64)
        starts[1:] = np.cumsum([len(e.candidates) for e in examples])
        return EntityChoiceFeatures(rows, starts, self.label_array([e.answers for e in examples]),
                                    [e.uid for e in examples], [e.candidates for e in examples])

    def load_features(self, arrays: Mapping[str, np.ndarray], uids: list[str]) -> EntityChoiceFeatures:
        rows = TokenizedSplit(ids=arrays["ids"], offsets=arrays["offsets"], segment_starts=arrays["segment_starts"],
                              labels=np.asarray(arrays["row_gold"]),
                              uids=[str(i) for i in range(len(arrays["offsets"]) - 1)])
        candidates = _grouped(Ragged(np.asarray(arrays["candidate_codes"]), arrays["candidate_offsets"]).texts(),
                              arrays["candidate_counts"])
        counts = np.asarray(arrays["answer_counts"])
        answers = _grouped(Ragged(np.asarray(arrays["answer_codes"]), arrays["answer_offsets"]).texts(),
                           np.maximum(counts, 0))
        labels = self.label_array([None if n < 0 else a for n, a in zip(counts, answers)])
        return EntityChoiceFeatures(rows, np.asarray(arrays["starts"]), labels, uids, candidates)

    def concatenate(self, parts: list[EntityChoiceFeatures]) -> EntityChoiceFeatures:
        shifts = np.cumsum([0] + [int(p.starts[-1]) for p in parts[:-1]])
        starts = np.concatenate([[0]] + [p.starts[1:] + s for p, s in zip(parts, shifts)])
        return EntityChoiceFeatures(TokenizedSplit.concatenate([p.rows for p in parts]), starts,
                                    np.concatenate([p.labels for p in parts]), [u for p in parts for u in p.uids],
                                    [c for p in parts for c in p.candidates])

    def metric_inputs(self, task, predictions: Any, labels: Any) -> tuple[list[str], list[tuple[str, ...]]]:
        """Predicted entity texts and each query's gold answers."""
        if len(predictions) != len(labels):
            raise ValueError(f"task {task.name!r}: {len(predictions)} predictions for {len(labels)} queries")
        unanswered = sum(not answers for answers in labels)
        if unanswered:
            raise ValueError(f"task {task.name!r}: {unanswered} queries have no gold answer (an unlabelled split?)")
        return [str(p) for p in predictions], [tuple(a) for a in labels]

    def format_prediction(self, task, value: Any) -> str:
        """A predicted entity, or the gold answers joined by " | "."""
        if value is None:
            return ""
        return value if isinstance(value, str) else " | ".join(value)

    def submission_label(self, task, value: Any) -> str:
        return str(value)

    def submission_value(self, task, value: Any) -> str:
        """The entity text as it is, even when it looks like a number or a boolean."""
        return str(value)

    def is_degenerate(self, score: float, best_constant: float | None) -> bool:
        """No constant prediction exists (candidates differ per query), so no run is called degenerate."""
        return False


ENTITY_CHOICE = register_kind(EntityChoiceKind())
