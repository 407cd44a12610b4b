"""AX scoring: R3 overall and per coarse category on a hand-computed case and on the real file."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from taskmix.diagnostic import (
    COARSE_CATEGORIES,
    NLI_LABELS,
    DiagnosticScores,
    R3Score,
    diagnostic_table_markdown,
    score_diagnostic,
    to_nli_order,
)
from taskmix.errors import DataError, TaskmixError
from taskmix.kinds.classification import CLASSIFICATION
from taskmix.tasks.base import Example, Task

E, N, C = 0, 1, 2


def row(uid: int, gold: int, *categories: str) -> Example:
    meta = {"categories": list(categories)}
    return Example("premise", "hypothesis", label=gold, uid=str(uid), meta=meta)


# (example, prediction) pairs of the hand-worked case below
HAND_CASE = [
    (row(1, E, "Logic"), E),
    (row(2, N, "Logic", "Knowledge"), N),
    (row(3, C, "Logic"), C),
    (row(4, E, "Lexical Semantics"), N),
    (row(5, C, "Lexical Semantics"), C),
    (row(6, N, "Knowledge"), E),
    (row(7, C, "Knowledge"), C),
]


def test_r3_per_category_matches_hand_computation() -> None:
    # R3 = (c*s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2)(s^2 - sum_k t_k^2)), with s rows,
    # c correct, p_k predicted and t_k true counts of class k.
    # All: s=7, c=5, t=p=(2,2,3): (35-17)/sqrt(32*32) = 18/32.
    # Logic: rows 1-3 all correct, one per class: (9-3)/sqrt(6*6) = 1.
    # Lexical Semantics: rows 4-5, t=(1,0,1), p=(0,1,1): (2-1)/sqrt(2*2) = 1/2.
    # Knowledge: rows 2,6,7, t=(0,2,1), p=(1,1,1): (6-3)/sqrt(6*4) = 3/sqrt(24).
    # Predicate-Argument Structure: no rows.
    examples, predictions = zip(*HAND_CASE)
    scores = score_diagnostic(examples, predictions)
    assert scores.overall == R3Score(pytest.approx(18 / 32), 7)
    assert scores.by_category == {
        "Lexical Semantics": R3Score(pytest.approx(0.5), 2),
        "Predicate-Argument Structure": R3Score(None, 0),
        "Logic": R3Score(pytest.approx(1.0), 3),
        "Knowledge": R3Score(pytest.approx(3 / math.sqrt(24)), 3),
    }


def test_rejects_unlabelled_rows_unknown_categories_and_length_mismatch() -> None:
    with pytest.raises(DataError, match="'9'.*no label"):
        score_diagnostic([Example("p", "h", uid="9")], [0])
    with pytest.raises(DataError, match="'1'.*Negation"):
        score_diagnostic([row(1, E, "Negation")], [0])
    with pytest.raises(ValueError):
        score_diagnostic([row(1, E, "Logic")], [0, 1])


def nli_task(name: str, labels: tuple[str, ...]) -> Task:
    return Task(name=name, kind=CLASSIFICATION, metrics=("accuracy",), splits={}, labels=labels)


def test_to_nli_order_maps_other_label_orders() -> None:
    snli = nli_task("snli", ("contradiction", "entailment", "neutral"))
    assert to_nli_order(snli, [0, 1, 2, 1]).tolist() == [C, E, N, E]
    assert to_nli_order(nli_task("mnli", NLI_LABELS), [2, 0]).tolist() == [2, 0]


def test_to_nli_order_rejects_two_class_models() -> None:
    with pytest.raises(TaskmixError, match="'rte'.*three-class NLI"):
        to_nli_order(nli_task("rte", ("entailment", "not_entailment")), [0, 1])


def test_table_markdown() -> None:
    scores = DiagnosticScores(
        overall=R3Score(0.2345, 1104),
        by_category={
            "Lexical Semantics": R3Score(0.1, 368),
            "Predicate-Argument Structure": R3Score(-0.0512, 424),
            "Logic": R3Score(None, 0),
            "Knowledge": R3Score(0.3, 284),
        },
    )
    assert diagnostic_table_markdown(scores) == (
        "| category | R3 | rows |\n"
        "|---|---:|---:|\n"
        "| All | 23.4 | 1104 |\n"
        "| Lexical Semantics | 10.0 | 368 |\n"
        "| Predicate-Argument Structure | -5.1 | 424 |\n"
        "| Logic | n/a | 0 |\n"
        "| Knowledge | 30.0 | 284 |\n"
    )


def read_full_ax(path: Path) -> list[Example]:
    """Enough of a reader for the test: coarse-category columns are non-empty when they apply."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [
        Example(
            r["Premise"],
            r["Hypothesis"],
            label=NLI_LABELS.index(r["Label"]),
            uid=str(i),
            meta={"categories": [c for c in COARSE_CATEGORIES if r[c].strip()]},
        )
        for i, r in enumerate(rows)
    ]


def test_real_ax_category_counts_and_extremes(data_dir: Path) -> None:
    examples = read_full_ax(data_dir / "glue" / "diagnostic" / "diagnostic-full.tsv")
    gold = np.array([e.label for e in examples])
    perfect = score_diagnostic(examples, gold)
    assert perfect.overall == R3Score(1.0, 1104)
    assert {name: s.rows for name, s in perfect.by_category.items()} == {
        "Lexical Semantics": 368,
        "Predicate-Argument Structure": 424,
        "Logic": 364,
        "Knowledge": 284,
    }
    # an uninformed model (always "entailment") scores R3 = 0 overall and in every category
    constant = score_diagnostic(examples, np.zeros_like(gold))
    assert constant.overall.r3 == 0.0
    assert all(s.r3 == 0.0 for s in constant.by_category.values())
