"""Single-text and text-pair classification (CoLA, SST-2, MRPC, RTE, SNLI, CB, ...)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from taskmix.kinds.base import TaskKind, register_kind
from taskmix.kinds.text import TextKind

# A classification run is degenerate when it does not beat the best constant prediction by
# more than one point (on the 0..100 scale).  One point is about three examples of RTE dev
# (277 rows), i.e. within the noise of the small dev sets where degenerate restarts occur,
# and far below the gap between a trained and an untrained model.
DEGENERATE_MARGIN = 0.01

MISSING_CLASS = -1  # label of an unlabelled (test) row


class ChoiceScoring(TaskKind):
    """Labels, predictions and baselines of any kind that predicts one of `Task.labels`.

    Multiple choice reuses it: choosing answer k is predicting class k.
    """

    metrics_allowed = ("accuracy", "f1", "f1_macro", "matthews", "r3")
    default_metrics = ("accuracy",)
    prediction_dtype = np.int64
    label_set = True

    def num_outputs(self, task) -> int:
        return len(task.labels)

    def parse_label(self, text: str, labels: Sequence[str]) -> int:
        try:
            return list(labels).index(text)
        except ValueError:
            allowed = ", ".join(repr(label) for label in labels)
            raise ValueError(f"label {text!r} is not one of {{{allowed}}}") from None

    def hub_label(self, value: Any) -> int:
        return int(value)

    def label_array(self, labels: Sequence[int | float | None]) -> np.ndarray:
        return np.array([MISSING_CLASS if v is None else int(v) for v in labels], dtype=np.int64)

    def format_prediction(self, task, value: Any) -> str:
        index = int(value)
        return task.labels[index] if 0 <= index < len(task.labels) else ""

    def submission_label(self, task, value: Any) -> str:
        index = int(value)
        if not 0 <= index < len(task.labels):
            raise ValueError(f"task {task.name!r}: class index {index} outside {len(task.labels)} labels")
        return task.labels[index]

    def constant_predictions(self, task) -> list[int]:
        return list(range(len(task.labels)))

    def majority_prediction(self, train_labels: np.ndarray) -> int | None:
        """The most frequent class index among labelled rows (the smallest index on ties)."""
        labelled = np.asarray(train_labels, dtype=np.int64)
        counts = np.bincount(labelled[labelled >= 0])
        if counts.size == 0:
            raise ValueError("cannot find the majority class of zero labels")
        return int(np.argmax(counts))

    def is_degenerate(self, score: float, best_constant: float | None) -> bool:
        if best_constant is None:
            raise ValueError("degenerate detection of a classification run needs the best constant score")
        return score <= best_constant + DEGENERATE_MARGIN


class ClassificationKind(ChoiceScoring, TextKind):
    """One text or a text pair, one label out of `Task.labels`, a linear head on the pooled vector."""

    name = "classification"
    head = "classification"


CLASSIFICATION = register_kind(ClassificationKind())
