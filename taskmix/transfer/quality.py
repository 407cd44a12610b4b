"""How good a predictor is, against the measured matrix, leaving each target out in turn.

For every target of the matrix, each method ranks the candidates measured on it (the
target's own task excluded as a candidate) without seeing that target's column, and its
ranking is compared with the measured mean gains:

- NDCG@k: discounted gain of the method's top k over the best possible top k.  Poth et al.
  (2021) and Vu et al. (2020) use the measured transfer result as relevance; gains can be
  negative, so ours is the gain minus the target's smallest gain (the worst candidate has
  relevance 0), with the linear gain rel / log2(rank + 1).  All-equal gains give NDCG 1.
- Regret@k: points of target score lost by taking the best of the method's top k instead of
  the best candidate (best gain − best gain within the top k; 0 is perfect).
- Spearman correlation between the method's scores and the measured gains.
- Cost: the method's seconds for one target (reused items at full price, see
  `predictors.SelectionContext`) as a fraction of the matrix's compute.

Ties in a method's scores are broken by the candidates' order in the matrix (the order their cells ran).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from scipy import stats

from taskmix.config import TaskRef
from taskmix.errors import ConfigError
from taskmix.rundir import write_text
from taskmix.task_refs import pretraining_name
from taskmix.tasks import get_task
from taskmix.transfer.matrix import TransferMatrix
from taskmix.transfer.predictors import Selection, SelectionContext

SELECTION_FILE = "selection.json"
TOP_K = 3
CLOSE_POINTS = 1.0  # a selection is good when its top 3 hold a candidate within 1 point of the best


def ranking(scores: dict[str, float]) -> list[str]:
    """Candidates best first; ties keep the given order."""
    return sorted(scores, key=lambda c: -scores[c])


def ndcg_at_k(scores: dict[str, float], gains: dict[str, float], k: int) -> float:
    floor = min(gains.values())
    relevance = {c: g - floor for c, g in gains.items()}
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = sum(relevance[c] * d for c, d in zip(ranking(scores)[:k], discounts))
    ideal = sum(r * d for r, d in zip(sorted(relevance.values(), reverse=True)[:k], discounts))
    return 1.0 if ideal == 0 else float(dcg / ideal)


def regret_at_k(scores: dict[str, float], gains: dict[str, float], k: int) -> float:
    return float(max(gains.values()) - max(gains[c] for c in ranking(scores)[:k]))


def spearman(scores: dict[str, float], gains: dict[str, float]) -> float:
    """Rank correlation; NaN when either side is constant or there are fewer than three candidates."""
    names = list(gains)
    x, y = [scores[c] for c in names], [gains[c] for c in names]
    if len(names) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(x, y).statistic)


@dataclass
class TargetOutcome:
    """One method on one left-out target."""

    method: str
    target: str
    scores: dict[str, float]
    seconds: float
    ndcg: float
    regret1: float
    regret3: float
    spearman: float


@dataclass
class MethodSummary:
    method: str
    targets: int
    ndcg: float
    regret1: float
    regret3: float
    spearman: float
    seconds: float
    cost_fraction: float
    close_top3: int  # targets whose top 3 holds a candidate within CLOSE_POINTS of the best


def target_entry(spec_targets: Iterable[TaskRef], target: str) -> TaskRef:
    """The transfer file's entry for a matrix column (the store names tasks by their registered name)."""
    for ref in spec_targets:
        if get_task(ref.name).name == target:
            return ref
    return TaskRef(name=target)


def candidate_task(ref: TaskRef) -> str | None:
    return None if pretraining_name(ref.name) else get_task(ref.name).name


def left_out_selections(ctx: SelectionContext, matrix: TransferMatrix) -> list[tuple[Selection, dict[str, float]]]:
    """Per target: the selection a method answers and the measured mean gains of its candidates."""
    out = []
    for target in matrix.targets:
        gains = {c: g for c, g in matrix.target_gains(target).items()
                 if c in ctx.spec.candidates and candidate_task(ctx.spec.candidates[c]) != target}
        if len(gains) >= 2:
            candidates = {c: ctx.spec.candidates[c] for c in gains}
            out.append((Selection(target_entry(ctx.spec.targets, target), candidates), gains))
    return out


def evaluate(ctx: SelectionContext, matrix: TransferMatrix, methods: list[str]) -> list[TargetOutcome]:
    """Every method on every target of the matrix, the target's column unseen by the method."""
    selections = left_out_selections(ctx, matrix)
    if not selections:
        raise ConfigError("the matrix has no target with two or more measured candidates: nothing to evaluate")
    outcomes = []
    for method in methods:
        for selection, gains in selections:
            scores, seconds = ctx.run(method, selection)
            outcomes.append(TargetOutcome(
                method, selection.target_task, scores, seconds, ndcg_at_k(scores, gains, TOP_K),
                regret_at_k(scores, gains, 1), regret_at_k(scores, gains, TOP_K), spearman(scores, gains)))
    return outcomes


def summarise(outcomes: list[TargetOutcome], matrix: TransferMatrix) -> list[MethodSummary]:
    """Means over targets per method (Spearman over targets where it is defined)."""
    summaries = []
    for method in dict.fromkeys(o.method for o in outcomes):
        mine = [o for o in outcomes if o.method == method]
        seconds = float(np.mean([o.seconds for o in mine]))
        rho = [o.spearman for o in mine if not math.isnan(o.spearman)]
        summaries.append(MethodSummary(
            method, len(mine), float(np.mean([o.ndcg for o in mine])), float(np.mean([o.regret1 for o in mine])),
            float(np.mean([o.regret3 for o in mine])), float(np.mean(rho)) if rho else math.nan, seconds,
            seconds / matrix.seconds if matrix.seconds > 0 else math.nan,
            sum(o.regret3 <= CLOSE_POINTS for o in mine)))
    return summaries


def save_outcomes(study_dir: Path, outcomes: list[TargetOutcome], summaries: list[MethodSummary],
                  matrix: TransferMatrix) -> Path:
    """`selection.json` in the study directory: the report's predictor-quality section reads it."""
    data = {"matrix_seconds": matrix.seconds, "seed_noise": matrix.seed_noise(), "seeds": matrix.seeds(),
            "summaries": [asdict(s) for s in summaries], "targets": [asdict(o) for o in outcomes]}
    return write_text(study_dir / SELECTION_FILE, json.dumps(data, indent=2, allow_nan=True) + "\n")


def load_summaries(study_dir: Path) -> tuple[list[MethodSummary], dict] | None:
    path = study_dir / SELECTION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [MethodSummary(**s) for s in data["summaries"]], data
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: cannot read the saved predictor evaluation ({err}); rerun "
                          f"`taskmix select --evaluate {study_dir}`") from None


def quality_table(summaries: list[MethodSummary]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the predictor-quality table (shared by the CLI and the report)."""
    header = ["method", "targets", f"NDCG@{TOP_K}", "Regret@1", f"Regret@{TOP_K}", "Spearman",
              f"top-{TOP_K} within {CLOSE_POINTS:g} pt", "seconds / target", "cost / matrix"]
    rows = [[s.method, str(s.targets), f"{s.ndcg:.2f}", f"{s.regret1:.1f}", f"{s.regret3:.1f}",
             "—" if math.isnan(s.spearman) else f"{s.spearman:+.2f}", f"{s.close_top3}/{s.targets}",
             f"{s.seconds:.1f}", "—" if math.isnan(s.cost_fraction) else f"{100 * s.cost_fraction:.1f}%"]
            for s in summaries]
    return header, rows
