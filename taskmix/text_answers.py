"""Scoring a predicted answer text against gold answer texts: SQuAD v1.1 exact match and token F1.

The official SQuAD v1.1 evaluation normalises both texts (lower case, punctuation removed,
the articles a/an/the removed as words, whitespace collapsed), then compares them whole
(exact match) or as bags of tokens (F1), and keeps the best score over the gold answers.
ReCoRD's official evaluation uses the same normalisation and the same max over answers,
so both extractive QA and ReCoRD score through this module.  As in SQuAD v1.1, a text
that normalises to nothing shares no token with anything, so its F1 is 0.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD v1.1's order of steps)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall of the normalised texts (a bag of tokens)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def best_exact_match(prediction: str, golds: Iterable[str]) -> float:
    """Exact match against the closest gold answer (0 when there are none)."""
    return max((exact_match(prediction, g) for g in golds), default=0.0)


def best_f1(prediction: str, golds: Iterable[str]) -> float:
    """Token F1 against the closest gold answer (0 when there are none)."""
    return max((token_f1(prediction, g) for g in golds), default=0.0)


def mean_exact_match(predictions: Sequence[str], answers: Sequence[Iterable[str]]) -> float:
    """Exact match against each question's closest gold answer, averaged over questions (SQuAD, ReCoRD)."""
    return sum(map(best_exact_match, predictions, answers)) / len(predictions)


def mean_f1(predictions: Sequence[str], answers: Sequence[Iterable[str]]) -> float:
    """Token F1 against each question's closest gold answer, averaged over questions (SQuAD, ReCoRD)."""
    return sum(map(best_f1, predictions, answers)) / len(predictions)
