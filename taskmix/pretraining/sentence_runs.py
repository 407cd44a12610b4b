"""Where examples come from in the corpus: runs of whole sentences and how two runs relate.

A run is a stretch of consecutive sentences of one document filling a token budget (always at
least one sentence).  Window tasks read one run, pair tasks two runs whose relation
(next, previous, same document but apart, other document) is the class they predict.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from taskmix.pretraining.tokenized import TokenizedCorpus


@dataclass(frozen=True)
class Run:
    """Sentences [first, end) of document `doc`."""

    doc: int
    first: int
    end: int


class Relation(Enum):
    """How the second text of a pair relates to the first."""

    NEXT = "next"                    # B directly follows A
    PREVIOUS = "previous"            # B directly precedes A
    NON_ADJACENT = "non_adjacent"    # same document, at least one sentence between them
    OTHER_DOCUMENT = "other_document"


def forward_run(corpus: TokenizedCorpus, doc: int, first: int, limit: int, budget: int) -> Run:
    """Sentences from `first` on (not past `limit`) while they fit `budget` tokens."""
    end = first + 1
    while end < limit and corpus.span_length(first, end + 1) <= budget:
        end += 1
    return Run(doc, first, end)


def backward_run(corpus: TokenizedCorpus, doc: int, end: int, limit: int, budget: int) -> Run:
    """Sentences ending just before `end` (not before `limit`) while they fit `budget` tokens."""
    first = end - 1
    while first > limit and corpus.span_length(first - 1, end) <= budget:
        first -= 1
    return Run(doc, first, end)


def windows(corpus: TokenizedCorpus, docs: list[int], budget: int) -> list[Run]:
    """Consecutive, non-overlapping runs covering each document: one epoch of a window task."""
    runs = []
    for doc in docs:
        first, stop = corpus.sentence_range(doc)
        while first < stop:
            run = forward_run(corpus, doc, first, stop, budget)
            runs.append(run)
            first = run.end
    return runs


def tokens(corpus: TokenizedCorpus, run: Run) -> np.ndarray:
    lo, hi = corpus.token_span(run.first, run.end)
    return np.asarray(corpus.ids[lo:hi], dtype=np.int64)


def pair(corpus: TokenizedCorpus, docs: list[int], anchor: Run, relation: Relation, budget: int,
         rng: np.random.Generator) -> tuple[Run, Run]:
    """Two runs (A, B) starting at the anchor's first sentence, B related to A as asked."""
    doc, start = anchor.doc, anchor.first
    first, stop = corpus.sentence_range(doc)
    if relation is Relation.OTHER_DOCUMENT:
        a = forward_run(corpus, doc, start, stop, budget)
        others = [d for d in docs if d != doc]
        other = others[int(rng.integers(len(others)))]
        lo, hi = corpus.sentence_range(other)
        return a, forward_run(corpus, other, int(rng.integers(lo, hi)), hi, budget)
    if relation is Relation.NON_ADJACENT:
        return _apart(corpus, doc, start, budget, rng)
    start = min(start, stop - 2)  # leave room for the second run
    a = forward_run(corpus, doc, start, stop - 1, budget)
    b = forward_run(corpus, doc, a.end, stop, budget)
    return (a, b) if relation is Relation.NEXT else (b, a)


def _apart(corpus: TokenizedCorpus, doc: int, start: int, budget: int, rng: np.random.Generator) -> tuple[Run, Run]:
    """A at `start`; B after A or before it with at least one sentence between them.

    B's position is drawn uniformly from all places it can start (after A) or end (before A).
    If A is so long that nothing is left, A shrinks to its first sentence; a document of
    three or more sentences always leaves a place then.
    """
    first, stop = corpus.sentence_range(doc)
    for a in (forward_run(corpus, doc, start, stop, budget), Run(doc, start, start + 1)):
        places = [("after", j) for j in range(a.end + 1, stop)] + [("before", j) for j in range(first + 1, a.first)]
        if places:
            side, j = places[int(rng.integers(len(places)))]
            if side == "after":
                return a, forward_run(corpus, doc, j, stop, budget)
            return a, backward_run(corpus, doc, j, first, budget)
    raise ValueError(f"document {doc} has too few sentences for a non-adjacent pair")
