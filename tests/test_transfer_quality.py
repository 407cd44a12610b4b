"""Transfer matrix bookkeeping, ranking metrics on hand-made rankings, and leave-one-target-out evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from taskmix.errors import ConfigError
from taskmix.study.grid import expand
from taskmix.transfer.matrix import transfer_matrix
from taskmix.transfer.predictors import Selection, SelectionContext
from taskmix.transfer.quality import evaluate, ndcg_at_k, regret_at_k, spearman, summarise
from taskmix.transfer.spec import parse_transfer

GAINS = {"a": 3.0, "b": 1.0, "c": -1.0, "d": 2.0}
SCORES = {"a": 3.0, "b": 4.0, "c": 2.0, "d": 1.0}  # ranks b > a > c > d


def test_ndcg_uses_gains_above_the_worst_candidate_as_relevance() -> None:
    # relevance: a 4, b 2, c 0, d 3; the method's top 3 is b, a, c; the ideal top 3 is a, d, b
    dcg = 2 / math.log2(2) + 4 / math.log2(3) + 0 / math.log2(4)
    ideal = 4 / math.log2(2) + 3 / math.log2(3) + 2 / math.log2(4)
    assert ndcg_at_k(SCORES, GAINS, 3) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(GAINS, GAINS, 3) == pytest.approx(1.0)
    assert ndcg_at_k(SCORES, dict.fromkeys(GAINS, 0.5), 3) == 1.0  # nothing to tell apart


def test_regret_is_points_lost_against_the_best_candidate() -> None:
    assert regret_at_k(SCORES, GAINS, 1) == pytest.approx(2.0)  # picks b (+1) instead of a (+3)
    assert regret_at_k(SCORES, GAINS, 3) == 0.0  # a is in the top 3
    reversed_scores = {c: -g for c, g in GAINS.items()}
    assert regret_at_k(reversed_scores, GAINS, 1) == pytest.approx(4.0)  # picks c (-1)
    assert regret_at_k(reversed_scores, GAINS, 3) == pytest.approx(1.0)  # best of c, b, d is d (+2)


def test_ties_keep_the_candidate_order() -> None:
    assert regret_at_k(dict.fromkeys(GAINS, 0.0), GAINS, 1) == 0.0  # a comes first
    assert regret_at_k(dict.fromkeys(["b", "a", "c", "d"], 0.0), GAINS, 1) == pytest.approx(2.0)


def test_spearman() -> None:
    # ranks of SCORES a3 b4 c2 d1, of GAINS a4 b2 c1 d3: sum of squared differences 10 -> 1 - 60/60
    assert spearman(SCORES, GAINS) == pytest.approx(0.0)
    assert spearman(GAINS, GAINS) == pytest.approx(1.0)
    assert math.isnan(spearman(dict.fromkeys(GAINS, 1.0), GAINS))


def row(candidate: str, task: str, seed: int, score: float, selected: bool = True) -> dict:
    return {"task": task, "score": score, "is_selected": selected,
            "fields": {"intermediate": candidate, "seed": seed}}


ROWS = [
    row("none", "rte", 1, 0.50), row("none", "rte", 2, 0.60),
    row("none", "mrpc", 1, 0.70), row("none", "mrpc", 2, 0.72),
    row("a", "rte", 1, 0.55), row("a", "rte", 2, 0.70), row("a", "rte", 2, 0.99, selected=False),
    row("a", "mrpc", 1, 0.71), row("a", "mrpc", 3, 0.90),  # seed 3 has no baseline: no gain
    row("b", "rte", 1, 0.40), row("b", "rte", 2, 0.50),
    row("b", "mrpc", 1, 0.80), row("b", "mrpc", 2, 0.82),
    row("c", "rte", 1, 0.52), row("c", "rte", 2, 0.62),
    row("c", "mrpc", 1, 0.70), row("c", "mrpc", 2, 0.72),
    row("b", "ax", 1, 0.10),  # a diagnostic row is no target
]
CELLS = [{"status": "done", "started": "2024-01-01T00:00:00+00:00", "finished": "2024-01-01T00:01:40+00:00"},
         {"status": "done", "started": "2024-01-01T00:02:00+00:00", "finished": "2024-01-01T00:02:20+00:00"},
         {"status": "failed", "started": "2024-01-01T00:03:00+00:00", "finished": "2024-01-01T00:09:00+00:00"}]


def test_matrix_pairs_each_seed_with_its_own_baseline() -> None:
    matrix = transfer_matrix(ROWS, CELLS)
    assert matrix.candidates == ["a", "b", "c"] and matrix.targets == ["rte", "mrpc"]
    assert matrix.gains[("a", "rte")] == pytest.approx({1: 5.0, 2: 10.0})
    assert matrix.gains[("a", "mrpc")] == pytest.approx({1: 1.0})
    assert matrix.mean("a", "rte") == pytest.approx(7.5)
    assert matrix.std("a", "rte") == pytest.approx(math.sqrt(12.5))
    assert math.isnan(matrix.std("a", "mrpc"))
    assert matrix.seed_noise() == pytest.approx(math.sqrt(12.5) / 5)  # five pairs with two seeds; four have std 0
    assert matrix.average_gain("a") == pytest.approx(4.25)
    assert matrix.average_gain("a", exclude=["rte"]) == pytest.approx(1.0)
    assert matrix.best_candidate("rte") == ("a", pytest.approx(7.5))
    assert matrix.best_candidate("mrpc") == ("b", pytest.approx(10.0))
    assert matrix.seconds == 120.0  # done cells only
    assert not matrix.significance[("a", "rte")].significant
    assert matrix.significance[("b", "mrpc")].diff == pytest.approx(10.0)


SPEC = {
    "name": "t", "seeds": [1, 2],
    "candidates": {"a": "cola", "b": {"name": "sts-b", "max_train_examples": 50}, "c": "rte"},
    "targets": ["rte", "mrpc"],
    "intermediate": {"max_steps": 3, "lr": 1.0e-4},
    "target": {"restarts": 2},
}


def test_prior_leaves_the_target_out(tmp_path: Path) -> None:
    spec = parse_transfer(SPEC)
    ctx = SelectionContext(spec, None, tmp_path, matrix=transfer_matrix(ROWS, CELLS))
    selection = Selection(spec.targets[0], dict(spec.candidates))
    scores, _ = ctx.run("prior", selection)
    assert scores == pytest.approx({"a": 1.0, "b": 10.0, "c": 0.0})  # their mrpc gains only


def test_leave_one_target_out_evaluation(tmp_path: Path) -> None:
    matrix = transfer_matrix(ROWS, CELLS)
    ctx = SelectionContext(parse_transfer(SPEC), None, tmp_path, matrix=matrix)
    outcomes = {o.target: o for o in evaluate(ctx, matrix, ["prior"])}
    # rte: candidate c is rte itself and is left out; prior (mrpc gains) ranks b first, a was best
    assert set(outcomes["rte"].scores) == {"a", "b"}
    assert outcomes["rte"].scores == pytest.approx({"a": 1.0, "b": 10.0})
    assert outcomes["rte"].regret1 == pytest.approx(17.5)
    # mrpc: prior (rte gains) a 7.5 > c 2 > b -10; b (+10) was best
    assert outcomes["mrpc"].scores == pytest.approx({"a": 7.5, "b": -10.0, "c": 2.0})
    assert outcomes["mrpc"].regret1 == pytest.approx(9.0)
    assert outcomes["mrpc"].regret3 == 0.0
    (summary,) = summarise(list(outcomes.values()), matrix)
    assert summary.regret1 == pytest.approx((17.5 + 9.0) / 2)
    assert summary.close_top3 == 2  # rte has two candidates, both in its top 3; mrpc has b in its top 3


def test_random_is_seeded(tmp_path: Path) -> None:
    spec = parse_transfer(SPEC)
    selection = Selection(spec.targets[1], dict(spec.candidates))
    first = SelectionContext(spec, None, tmp_path, seed=3).run("random", selection)[0]
    assert SelectionContext(spec, None, tmp_path, seed=3).run("random", selection)[0] == first
    assert SelectionContext(spec, None, tmp_path, seed=4).run("random", selection)[0] != first


def test_transfer_file_expands_into_shared_cells() -> None:
    cells = expand(parse_transfer(SPEC).to_study())
    assert len(cells) == 8  # (none + 3 candidates) x 2 seeds
    by_fields = {(c.fields["intermediate"], c.fields["seed"]): c.experiment for c in cells}
    none = by_fields[("none", 2)]
    assert [s["name"] for s in none["stages"]] == ["target"] and none["seed"] == 2
    b = by_fields[("b", 1)]["stages"]
    assert b[0] == {"name": "intermediate", "tasks": [{"name": "sts-b", "max_train_examples": 50}],
                    "max_steps": 3, "lr": 1.0e-4}
    assert b[1] == {"name": "target", "tasks": [{"name": "rte"}, {"name": "mrpc"}], "separate": True,
                    "restarts": 2}


@pytest.mark.parametrize("change, message", [
    ({"candidates": {"none": "cola"}}, "'none' is reserved"),
    ({"intermediate": {"tasks": ["cola"]}}, "intermediate: tasks are set by the transfer file"),
    ({"experiment": {"seed": 3}}, "experiment: seed are set by the transfer file"),
    ({"seeds": [1, 1]}, "seeds: repeated"),
    ({"targets": []}, "targets"),
    ({"candidate": {}}, "candidate: unknown key"),
])
def test_bad_transfer_files(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_transfer({**SPEC, **change}, "t.yaml")
