"""The measured transfer matrix: gain of each candidate on each target, per seed, from a study's store.

A gain is a paired difference: the target's selected (best-on-dev) score in the cell of
candidate c and seed s minus its score in the no-intermediate cell of seed s, ×100.  Only
seeds with both runs count.  Significance reuses the study report's test
(`analysis.deltas`: t-test over seeds, Bonferroni over the matrix), so a transfer matrix and
a GLUE table of the same study never disagree on what is significant.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

import numpy as np

from taskmix.study import analysis
from taskmix.study.analysis import AVG, Delta, GlueTable, Sample
from taskmix.study.store import DIAGNOSTIC_TASK
from taskmix.transfer.spec import AXIS, NONE


@dataclass
class TransferMatrix:
    """gains[(candidate, target)] maps seed -> gain (points); `seconds` is the compute of the cells read."""

    candidates: list[str]
    targets: list[str]
    gains: dict[tuple[str, str], dict[Any, float]]
    baseline: dict[str, Sample]
    seconds: float = 0.0
    significance: dict[tuple[str, str], Delta] = field(default_factory=dict)

    def mean(self, candidate: str, target: str) -> float | None:
        seeds = self.gains.get((candidate, target))
        return float(np.mean(list(seeds.values()))) if seeds else None

    def std(self, candidate: str, target: str) -> float:
        """Sample std of the gain across seeds (NaN with fewer than two seeds)."""
        seeds = list(self.gains.get((candidate, target), {}).values())
        return float(np.std(seeds, ddof=1)) if len(seeds) > 1 else math.nan

    def seed_noise(self) -> float:
        """Mean over pairs of the gain's std across seeds: how precisely the matrix knows a gain."""
        stds = [s for key in self.gains if not math.isnan(s := self.std(*key))]
        return float(np.mean(stds)) if stds else math.nan

    def seeds(self) -> int:
        return max((len(v) for v in self.gains.values()), default=0)

    def target_gains(self, target: str) -> dict[str, float]:
        """candidate -> mean gain on `target`, for candidates measured on it."""
        return {c: m for c in self.candidates if (m := self.mean(c, target)) is not None}

    def average_gain(self, candidate: str, exclude: Iterable[str] = ()) -> float | None:
        """The candidate's mean gain over targets, leaving out `exclude` (None when nothing is left)."""
        left_out = set(exclude)
        means = [m for t in self.targets if t not in left_out and (m := self.mean(candidate, t)) is not None]
        return float(np.mean(means)) if means else None

    def best_candidate(self, target: str) -> tuple[str, float] | None:
        gains = self.target_gains(target)
        if not gains:
            return None
        best = max(gains, key=gains.get)
        return best, gains[best]


def transfer_matrix(rows: Iterable[dict[str, Any]], cells: Iterable[dict[str, Any]] = ()) -> TransferMatrix:
    """The matrix from selected result rows of a transfer study (cells: the store's cell rows, for seconds)."""
    scores: dict[tuple[str, str], dict[Any, float]] = defaultdict(dict)
    for r in rows:
        fields = r.get("fields", {})
        if not r["is_selected"] or r["task"] == DIAGNOSTIC_TASK or AXIS not in fields:
            continue
        scores[(str(fields[AXIS]), r["task"])][fields.get("seed")] = 100.0 * r["score"]
    candidates = list(dict.fromkeys(c for c, _ in scores if c != NONE))
    targets = list(dict.fromkeys(t for _, t in scores))
    gains: dict[tuple[str, str], dict[Any, float]] = {}
    baseline: dict[str, Sample] = {}
    for t in targets:
        base = scores.get((NONE, t), {})
        if base:
            baseline[t] = Sample(list(base.items()))
        for c in candidates:
            paired = {s: v - base[s] for s, v in scores.get((c, t), {}).items() if s in base}
            if paired:
                gains[(c, t)] = paired
    matrix = TransferMatrix(candidates, targets, gains, baseline, cells_seconds(cells))
    matrix.significance = _significance(scores, candidates, targets)
    return matrix


def _significance(scores: dict[tuple[str, str], dict[Any, float]], candidates: list[str],
                  targets: list[str]) -> dict[tuple[str, str], Delta]:
    """Each (candidate, target) against no intermediate, as the study report's delta table tests it."""
    cells = {(row, t): Sample(list(seeds.items())) for (row, t), seeds in scores.items()}
    rows = [NONE, *candidates]
    table = GlueTable(size=None, tasks=targets, rows=rows, cells=cells, avg={})
    with warnings.catch_warnings():  # identical scores across seeds (a degenerate target) only warn
        warnings.simplefilter("ignore", RuntimeWarning)
        found, _ = analysis.deltas(table, NONE)
    return {key: delta for key, delta in found.items() if key[1] != AVG}


def cells_seconds(cells: Iterable[dict[str, Any]]) -> float:
    """Wall-clock seconds of the finished cells (started → finished): the matrix's compute."""
    total = 0.0
    for cell in cells:
        if cell.get("status") == "done" and cell.get("started") and cell.get("finished"):
            start, end = datetime.fromisoformat(cell["started"]), datetime.fromisoformat(cell["finished"])
            total += max(0.0, (end - start).total_seconds())
    return total
