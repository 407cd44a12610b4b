"""Binary decisions grouped into questions (MultiRC): is each candidate answer of a question right?

Each row is a (paragraph, question + candidate answer) pair classified 0/1 by the
classification head, but MultiRC scores questions as well as rows: F1a is the binary F1
over all answer options, EM the fraction of questions whose answers are all labelled
right.  So the question survives to the metrics inside the labels: a split's labels are
an (N, 2) integer array of (label, question group), the group numbered by the first row
of each question (`Example.meta["group"]` names it).  A row id is the row's place in the
official nested submission, "paragraph-question-answer", and test predictions are written
back into that nesting (`MultiRC.jsonl`, answer labels 0/1).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from taskmix.kinds.base import register_kind
from taskmix.kinds.classification import ChoiceScoring
from taskmix.kinds.text import TextKind
from taskmix.metrics import register_metric
from taskmix.training.features import TokenizedSplit


class GroupedSplit(TokenizedSplit):
    """A `TokenizedSplit` whose labels are (label, group) rows; batches carry the labels alone."""

    def subset(self, indices: np.ndarray) -> "GroupedSplit":
        return GroupedSplit(**vars(super().subset(indices)))

    def collate(self, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        batch = super().collate(indices, pad_id)
        batch["labels"] = batch["labels"][:, 0]
        return batch


def row_path(uid: str) -> tuple[int, int, int]:
    """(paragraph, question, answer) idx of a row id "p-q-a"."""
    try:
        paragraph, question, answer = (int(part) for part in uid.split("-"))
    except ValueError:
        raise ValueError(f"row id {uid!r} is not 'paragraph-question-answer' integers") from None
    return paragraph, question, answer


def _f1a(predictions: np.ndarray, gold: np.ndarray) -> float:
    """Binary F1 (answer right = positive) over every answer option of every question."""
    from sklearn.metrics import f1_score

    return float(f1_score(gold[:, 0], predictions, pos_label=1, average="binary", zero_division=0.0))


def _exact_match(predictions: np.ndarray, gold: np.ndarray) -> float:
    """Fraction of questions on which every answer option is labelled right."""
    groups, inverse = np.unique(gold[:, 1], return_inverse=True)
    wrong = np.zeros(len(groups), dtype=bool)
    np.logical_or.at(wrong, inverse, predictions != gold[:, 0])
    return float(np.mean(~wrong))


register_metric("multirc_f1a", _f1a)
register_metric("multirc_em", _exact_match)


class GroupedClassificationKind(ChoiceScoring, TextKind):
    name = "grouped_classification"
    head = "classification"
    metrics_allowed = ("multirc_f1a", "multirc_em")
    default_metrics = ("multirc_f1a", "multirc_em")

    def featurize(self, examples: Sequence[Any], tokenizer, max_length: int) -> GroupedSplit:
        rows = super().featurize(examples, tokenizer, max_length)
        numbers: dict[str, int] = {}
        groups = np.array([numbers.setdefault(e.meta["group"], len(numbers)) for e in examples], dtype=np.int64)
        rows.labels = np.column_stack([rows.labels, groups]) if len(examples) else np.zeros((0, 2), dtype=np.int64)
        return GroupedSplit(**vars(rows))

    def load_features(self, arrays: Mapping[str, np.ndarray], uids: list[str]) -> GroupedSplit:
        return GroupedSplit(uids=uids, **arrays)

    def concatenate(self, parts: list[GroupedSplit]) -> GroupedSplit:
        """Parts keep their questions apart: each part's groups are numbered after the previous part's."""
        shifted, offset = [], 0
        for part in parts:
            labels = part.labels.copy()
            labels[:, 1] += offset
            offset += int(labels[:, 1].max()) + 1 if len(labels) else 0
            shifted.append(GroupedSplit(**{**vars(part), "labels": labels}))
        return GroupedSplit(**vars(TokenizedSplit.concatenate(shifted)))

    def metric_inputs(self, task, predictions: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
        """Predicted labels (1-d) and the (label, group) rows, so EM can see the questions."""
        gold = np.asarray(labels, dtype=np.int64)
        if gold.ndim != 2 or gold.shape[1] != 2:
            raise ValueError(f"task {task.name!r}: labels of shape {gold.shape}, expected (rows, 2)")
        pred, _ = super().metric_inputs(task, predictions, gold[:, 0])
        return pred, gold

    def majority_prediction(self, train_labels: np.ndarray) -> int | None:
        return super().majority_prediction(np.asarray(train_labels)[:, 0])

    def format_prediction(self, task, value: Any) -> str:
        """A prediction is a label index; a gold value is its (label, group) row."""
        return super().format_prediction(task, np.ravel(value)[0])

    def submission_records(self, task, uids: Sequence[str], predictions: Sequence[Any]) -> list[dict]:
        """One line per paragraph: {"idx": p, "passage": {"questions": [{"idx": q, "answers":
        [{"idx": a, "label": 0/1}]}]}}, paragraphs and questions in order of first appearance."""
        nested: dict[int, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
        for uid, p in zip(uids, predictions):
            try:
                paragraph, question, answer = row_path(uid)
            except ValueError as error:
                raise ValueError(f"task {task.name!r}: {error}") from None
            nested[paragraph][question].append({"idx": answer, "label": self.submission_value(task, p)})
        return [{"idx": paragraph, "passage": {"questions": [{"idx": q, "answers": answers}
                                                              for q, answers in questions.items()]}}
                for paragraph, questions in nested.items()]


GROUPED_CLASSIFICATION = register_kind(GroupedClassificationKind())
