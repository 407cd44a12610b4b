"""Scoring of the GLUE diagnostic set (AX) with an NLI model: R3 overall and per coarse category;
which heads answer the diagnostics (AX: three-class NLI; SuperGLUE's AX-b and AX-g: RTE).

AX is labelled over three NLI classes and every row carries the coarse linguistic categories
it probes.  R3 (the three-class Matthews correlation) puts an uninformed model at about 0
whatever the class balance, which is why GLUE reports it instead of accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from taskmix.errors import DataError, TaskmixError
from taskmix.metrics import METRICS
from taskmix.tasks.base import NLI2, SUPERGLUE, Example, Task

# Class order of AX labels: Example.label indexes this tuple.
NLI_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")

# The coarse categories of the diagnostic, in the order of its TSV columns.
COARSE_CATEGORIES: tuple[str, ...] = (
    "Lexical Semantics",
    "Predicate-Argument Structure",
    "Logic",
    "Knowledge",
)


@dataclass(frozen=True)
class R3Score:
    """R3 on a subset of AX rows; `r3` is None when the subset is empty."""

    r3: float | None
    rows: int


@dataclass(frozen=True)
class DiagnosticScores:
    """R3 on all rows and on the rows of each coarse category (every category always present)."""

    overall: R3Score
    by_category: Mapping[str, R3Score]


# The SuperGLUE diagnostics an RTE model answers, by task name.
SUPERGLUE_DIAGNOSTICS: tuple[str, ...] = ("ax-b", "ax-g")


def is_entailment(task: Task) -> bool:
    """Whether the task predicts RTE's two classes in RTE's order, so AX-b and AX-g can use its head."""
    return tuple(task.labels) == NLI2


def writes_superglue_diagnostics(task: Task) -> bool:
    """Whether a target's test predictions include AX-b and AX-g: a SuperGLUE two-class entailment task (RTE)."""
    return task.benchmark == SUPERGLUE and is_entailment(task)


def is_nli(task: Task) -> bool:
    """Whether the task predicts the three NLI classes (in any order), so AX can score its head."""
    return sorted(task.labels) == sorted(NLI_LABELS)


def to_nli_order(task: Task, predictions: Sequence[int] | np.ndarray) -> np.ndarray:
    """Map class indices of `task`'s label order to indices of `NLI_LABELS`.

    Only a three-way NLI model can be scored on AX; a two-class model (RTE-style
    entailment / not_entailment) cannot, and gets an error naming its task.
    """
    if not is_nli(task):
        raise TaskmixError(
            f"task {task.name!r} has labels {list(task.labels)}; the diagnostic (AX) needs a "
            f"three-class NLI model with labels {list(NLI_LABELS)}"
        )
    mapping = np.array([NLI_LABELS.index(label) for label in task.labels])
    return mapping[np.asarray(predictions, dtype=np.int64)]


def _r3(predictions: np.ndarray, labels: np.ndarray) -> R3Score:
    rows = len(labels)
    return R3Score(METRICS["r3"](predictions, labels) if rows else None, rows)


def score_diagnostic(
    examples: Sequence[Example], predictions: Sequence[int] | np.ndarray
) -> DiagnosticScores:
    """R3 of predictions (indices into `NLI_LABELS`) on the AX rows, overall and by category."""
    if len(examples) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} diagnostic rows")
    for example in examples:
        if example.label is None:
            raise DataError(f"diagnostic row {example.uid!r} has no label (use the full AX file)")
        unknown = set(example.meta.get("categories", ())) - set(COARSE_CATEGORIES)
        if unknown:
            raise DataError(f"diagnostic row {example.uid!r}: unknown categories {sorted(unknown)}")
    pred = np.asarray(predictions, dtype=np.int64)
    gold = np.array([example.label for example in examples], dtype=np.int64)
    by_category: dict[str, R3Score] = {}
    for category in COARSE_CATEGORIES:
        mask = np.array([category in e.meta.get("categories", ()) for e in examples], dtype=bool)
        by_category[category] = _r3(pred[mask], gold[mask])
    return DiagnosticScores(overall=_r3(pred, gold), by_category=by_category)


def diagnostic_table_markdown(scores: DiagnosticScores) -> str:
    """A Markdown table of R3 x 100 (one decimal) and row counts, overall then per category."""
    lines = ["| category | R3 | rows |", "|---|---:|---:|"]
    for name, score in [("All", scores.overall), *scores.by_category.items()]:
        r3 = "n/a" if score.r3 is None else f"{100 * score.r3:.1f}"
        lines.append(f"| {name} | {r3} | {score.rows} |")
    return "\n".join(lines) + "\n"
