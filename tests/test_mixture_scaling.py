"""Loss scaling: seed 000 App. C (w_i = f(N_i) / max_j f(N_j)) and Muppet's L / log n(i)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from taskmix.errors import ConfigError
from taskmix.mixture import MixtureConfig, loss_weights
from taskmix.mixture.scaling import SCALING_POLICIES

SIZES = {"a": 100, "b": 400, "c": 1600}
CLASSES = {"a": 2, "b": 3, "c": None}

EXPECTED = {
    "uniform": ("uniform", {"a": 1.0, "b": 1.0, "c": 1.0}),
    "proportional": ("proportional", {"a": 1 / 16, "b": 1 / 4, "c": 1.0}),
    # N^0.5 = 10, 20, 40
    "power": ({"name": "power", "alpha": 0.5}, {"a": 0.25, "b": 0.5, "c": 1.0}),
    # regression (None) is scaled as n = 2
    "log_classes": ("log_classes", {"a": 1 / math.log(2), "b": 1 / math.log(3), "c": 1 / math.log(2)}),
    "explicit": ({"name": "explicit", "weights": {"a": 2, "b": 0.5, "c": 0}}, {"a": 2.0, "b": 0.5, "c": 0.0}),
}


def mixture(loss_scaling: object) -> MixtureConfig:
    return MixtureConfig.model_validate({"loss_scaling": loss_scaling})


def test_every_registered_policy_is_tested() -> None:
    assert set(EXPECTED) == set(SCALING_POLICIES)


@pytest.mark.parametrize("policy", sorted(EXPECTED))
def test_weights_match_hand_computed(policy: str) -> None:
    spec, expected = EXPECTED[policy]
    weights = loss_weights(mixture(spec), SIZES, CLASSES)
    assert list(weights) == list(SIZES)
    assert weights == pytest.approx(expected, abs=1e-12)


def test_default_is_uniform_and_needs_no_class_counts() -> None:
    assert loss_weights(MixtureConfig(), {"rte": 2490}) == {"rte": 1.0}


def test_log_classes_uniform_prediction_loss_is_one_for_every_head() -> None:
    """Muppet's aim: a model predicting uniformly over n outputs has scaled loss log(n) / log(n) = 1."""
    classes = {"binary": 2, "mnli": 3, "race": 4, "mlm": 30522}
    weights = loss_weights(mixture("log_classes"), dict.fromkeys(classes, 10), classes)
    for task, n in classes.items():
        assert weights[task] * math.log(n) == pytest.approx(1.0)


def test_single_output_regression_counts_as_two_classes() -> None:
    weights = loss_weights(mixture("log_classes"), {"sts-b": 10}, {"sts-b": 1})
    assert weights == {"sts-b": pytest.approx(1 / math.log(2))}


def test_log_classes_needs_every_class_count() -> None:
    with pytest.raises(ConfigError, match=r"number of classes of tasks \['b'\]"):
        loss_weights(mixture("log_classes"), {"a": 1, "b": 1}, {"a": 2})
    with pytest.raises(ConfigError, match="task 'a': number of classes must be positive"):
        loss_weights(mixture("log_classes"), {"a": 1}, {"a": 0})


def test_explicit_weights_must_name_the_mixture_tasks() -> None:
    with pytest.raises(ConfigError, match=r"missing \['b'\]"):
        loss_weights(mixture({"name": "explicit", "weights": {"a": 1}}), {"a": 1, "b": 1})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("inverse_loss", "unknown loss scaling 'inverse_loss'; choose one of: explicit, log_classes, power"),
        ({"name": "power"}, r"loss scaling 'power' needs \['alpha'\]"),
        ({"name": "log_classes", "n": 2}, "loss scaling 'log_classes' takes no parameters"),
        ({"alpha": 1}, "name"),
    ],
)
def test_bad_scaling_specs_are_rejected(spec: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        mixture(spec)
