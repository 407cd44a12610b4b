"""Metrics agree with scikit-learn/scipy and with independent formulas; scores and baselines."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, rankdata, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from taskmix.errors import ConfigError
from taskmix.metrics import (
    METRICS,
    apply_majority_rule,
    compute_metrics,
    constant_metrics,
    glue_score,
    mixture_validation_score,
    prefixed,
    task_score,
    validation_value,
)
from taskmix.kinds.classification import CLASSIFICATION
from taskmix.kinds.regression import REGRESSION
from taskmix.tasks.base import Task

SEEDS = range(50)


def classification(name: str, metrics: tuple[str, ...], labels: tuple[str, ...]) -> Task:
    return Task(name=name, kind=CLASSIFICATION, metrics=metrics, splits={}, labels=labels)


MRPC = classification("mrpc", ("accuracy", "f1"), ("0", "1"))
COLA = classification("cola", ("matthews",), ("0", "1"))
CB = classification("cb", ("accuracy", "f1_macro"), ("entailment", "contradiction", "neutral"))
NLI = classification("mnli", ("accuracy", "r3"), ("entailment", "neutral", "contradiction"))
WNLI = Task(name="wnli", kind=CLASSIFICATION, metrics=("accuracy",), splits={}, labels=("0", "1"), majority_floor=True)
STSB = Task(name="sts-b", kind=REGRESSION, metrics=("pearson", "spearman"), splits={})


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_metrics_match_sklearn_and_phi(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gold, pred = rng.integers(0, 2, size=(2, int(rng.integers(5, 200))))
    got = compute_metrics(MRPC, pred, gold) | compute_metrics(COLA, pred, gold)
    assert got["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert got["f1"] == pytest.approx(f1_score(gold, pred, zero_division=0.0))
    assert got["matthews"] == pytest.approx(matthews_corrcoef(gold, pred))
    if gold.std() > 0 and pred.std() > 0:  # binary Matthews correlation is the phi coefficient
        assert got["matthews"] == pytest.approx(np.corrcoef(gold, pred)[0, 1])


@pytest.mark.parametrize("seed", SEEDS)
def test_three_class_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gold, pred = rng.integers(0, 3, size=(2, int(rng.integers(5, 200))))
    got = compute_metrics(CB, pred, gold) | compute_metrics(NLI, pred, gold)
    macro = f1_score(gold, pred, average="macro", zero_division=0.0)
    assert got["f1_macro"] == pytest.approx(macro)
    assert got["r3"] == pytest.approx(matthews_corrcoef(gold, pred))


@pytest.mark.parametrize("seed", SEEDS)
def test_correlations_match_scipy_and_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gold = rng.uniform(0, 5, size=int(rng.integers(3, 300)))
    pred = gold + rng.normal(0, 2, size=gold.size)
    got = compute_metrics(STSB, pred, gold)
    assert got["pearson"] == pytest.approx(pearsonr(pred, gold).statistic)
    assert got["pearson"] == pytest.approx(np.corrcoef(pred, gold)[0, 1])
    assert got["spearman"] == pytest.approx(spearmanr(pred, gold).statistic)
    assert got["spearman"] == pytest.approx(np.corrcoef(rankdata(pred), rankdata(gold))[0, 1])


def test_hand_computed_values() -> None:
    got = compute_metrics(MRPC, [0, 1, 0, 0], [0, 1, 1, 0])
    # one true positive, one false negative: precision 1, recall 1/2, F1 2/3
    assert got == pytest.approx({"accuracy": 0.75, "f1": 2 / 3})


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("task", "pred", "gold", "expected"),
    [
        (STSB, [2.0, 2.0, 2.0], [1.0, 3.0, 5.0], {"pearson": 0.0, "spearman": 0.0}),
        (STSB, [1.0, 3.0, 5.0], [2.0, 2.0, 2.0], {"pearson": 0.0, "spearman": 0.0}),
        (STSB, [1.0], [2.0], {"pearson": 0.0, "spearman": 0.0}),
        (COLA, [1, 1, 1, 1], [0, 1, 0, 1], {"matthews": 0.0}),
        (COLA, [1, 1], [1, 1], {"matthews": 0.0}),
        (MRPC, [0, 0, 0], [1, 1, 0], {"accuracy": 1 / 3, "f1": 0.0}),
        (MRPC, [0, 0], [0, 0], {"accuracy": 1.0, "f1": 0.0}),
        (NLI, [2, 2, 2], [0, 1, 2], {"accuracy": 1 / 3, "r3": 0.0}),
    ],
)
def test_degenerate_inputs_have_defined_values_without_warnings(
    task: Task, pred: list[float], gold: list[float], expected: dict[str, float]
) -> None:
    assert compute_metrics(task, pred, gold) == pytest.approx(expected)


def test_compute_metrics_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="'mrpc'.*missing"):
        compute_metrics(MRPC, [0, 1], [0, None])
    with pytest.raises(ValueError, match="'mrpc'"):
        compute_metrics(MRPC, [0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="zero examples"):
        compute_metrics(MRPC, [], [])
    with pytest.raises(ConfigError, match="'odd'.*'rouge'"):
        compute_metrics(classification("odd", ("rouge",), ("a", "b")), [0], [0])


def test_r3_is_a_registered_alias_of_matthews() -> None:
    pred, gold = np.array([0, 1, 2, 2, 1]), np.array([0, 1, 1, 2, 0])
    assert METRICS["r3"](pred, gold) == METRICS["matthews"](pred, gold)


def test_task_score_is_mean_of_metrics_over_all_dev_splits() -> None:
    assert task_score({"accuracy": 0.8, "f1": 0.9}) == pytest.approx(0.85)
    matched = prefixed("dev_matched", {"accuracy": 0.84})
    mnli = matched | prefixed("dev_mismatched", {"accuracy": 0.82})
    assert mnli == {"dev_matched/accuracy": 0.84, "dev_mismatched/accuracy": 0.82}
    assert task_score(mnli) == pytest.approx(0.83)
    with pytest.raises(ValueError):
        task_score({})


def test_glue_score_is_mean_over_tasks() -> None:
    assert glue_score({"cola": 0.3, "sst": 0.9, "mrpc": 0.75}) == pytest.approx(0.65)
    with pytest.raises(ValueError):
        glue_score({})


def test_perplexity_transform_and_mixture_validation_score() -> None:
    assert validation_value("perplexity", 50.0) == pytest.approx(0.8)
    assert validation_value("dev/perplexity", 250.0) == pytest.approx(0.0)
    assert validation_value("accuracy", 0.7) == 0.7
    assert task_score({"accuracy": 0.8, "f1": 0.9}) == pytest.approx(0.85)
    per_task = {
        "lm": {"perplexity": 100.0},
        "rte": {"accuracy": 0.7},
        "mrpc": {"accuracy": 0.8, "f1": 0.9},
    }
    assert mixture_validation_score(per_task) == pytest.approx((0.6 + 0.7 + 0.85) / 3)
    # lower perplexity must raise the mixture score
    better = per_task | {"lm": {"perplexity": 50.0}}
    assert mixture_validation_score(better) > mixture_validation_score(per_task)


def test_majority_class_and_constant_metrics() -> None:
    majority_class = CLASSIFICATION.majority_prediction
    assert majority_class(np.array([1, 0, 1, 1, 0])) == 1
    assert majority_class(np.array([2, 0, 2, 0])) == 0  # ties go to the smallest index
    assert majority_class(np.array([-1, -1, 1])) == 1  # unlabelled rows do not count
    assert constant_metrics(MRPC, 1, [1, 1, 0, 1]) == pytest.approx({"accuracy": 0.75, "f1": 6 / 7})
    assert constant_metrics(COLA, 0, [0, 1, 0]) == {"matthews": 0.0}
    with pytest.raises(ValueError):
        majority_class(np.array([], dtype=np.int64))
    assert REGRESSION.majority_prediction(np.array([1.0])) is None
    assert REGRESSION.constant_predictions(STSB) == [] and CLASSIFICATION.constant_predictions(CB) == [0, 1, 2]


def test_wnli_majority_rule() -> None:
    majority = constant_metrics(WNLI, 0, [0] * 40 + [1] * 31)
    assert majority["accuracy"] == pytest.approx(40 / 71)  # 56.3, as in seeds 001/002
    metrics, applied = apply_majority_rule(WNLI, {"accuracy": 0.45}, majority)
    assert applied and metrics == majority
    assert apply_majority_rule(WNLI, {"accuracy": 0.6}, majority) == ({"accuracy": 0.6}, False)
    rte = classification("rte", ("accuracy",), ("entailment", "not_entailment"))
    assert apply_majority_rule(rte, {"accuracy": 0.45}, majority) == ({"accuracy": 0.45}, False)


def test_registered_wnli_alone_has_the_majority_floor() -> None:
    from taskmix.tasks import all_tasks

    assert [t.name for t in all_tasks() if t.majority_floor] == ["wnli"]


def test_degenerate_detection() -> None:
    assert CLASSIFICATION.is_degenerate(0.527, best_constant=0.527)
    assert CLASSIFICATION.is_degenerate(0.535, best_constant=0.527)  # within the one-point margin
    assert not CLASSIFICATION.is_degenerate(0.60, best_constant=0.527)
    assert CLASSIFICATION.is_degenerate(0.0, best_constant=0.0)
    assert not CLASSIFICATION.is_degenerate(0.3, best_constant=0.0)
    assert REGRESSION.is_degenerate(0.05, None)
    assert REGRESSION.is_degenerate(-0.2, None)
    assert not REGRESSION.is_degenerate(0.85, None)
    with pytest.raises(ValueError, match="best constant"):
        CLASSIFICATION.is_degenerate(0.6, None)
