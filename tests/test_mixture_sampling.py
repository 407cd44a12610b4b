"""Task sampling: the formulas of seed 000 App. C / seed 004 §3.4, and that draws follow them."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from pydantic import ValidationError

from taskmix.errors import ConfigError
from taskmix.mixture import MixtureConfig, build_schedule, sampling_probabilities
from taskmix.mixture.sampling import SAMPLING_POLICIES

SIZES = {"a": 100, "b": 400, "c": 1600}

# One spec per registered policy, with p_i computed by hand from SIZES.
EXPECTED = {
    "uniform": ("uniform", {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),
    "proportional": ("proportional", {"a": 1 / 21, "b": 4 / 21, "c": 16 / 21}),
    "log_proportional": (
        "log_proportional",
        {t: math.log(n) / (math.log(100) + math.log(400) + math.log(1600)) for t, n in SIZES.items()},
    ),
    # N^0.5 = 10, 20, 40
    "power": ({"name": "power", "alpha": 0.5}, {"a": 1 / 7, "b": 2 / 7, "c": 4 / 7}),
    # capped sizes 100, 400, 900; ^(1/2) = 10, 20, 30
    "temperature": ({"name": "temperature", "temperature": 2, "cap": 900}, {"a": 1 / 6, "b": 2 / 6, "c": 3 / 6}),
    "explicit": ({"name": "explicit", "weights": {"a": 1, "b": 0, "c": 3}}, {"a": 0.25, "b": 0.0, "c": 0.75}),
    "natural": ("natural", {"a": 1 / 21, "b": 4 / 21, "c": 16 / 21}),
}


def mixture(sampling: object, **fields: object) -> MixtureConfig:
    return MixtureConfig.model_validate({"sampling": sampling, **fields})


def test_every_registered_policy_is_tested() -> None:
    assert set(EXPECTED) == set(SAMPLING_POLICIES)


@pytest.mark.parametrize("policy", sorted(EXPECTED))
def test_probabilities_match_hand_computed(policy: str) -> None:
    spec, expected = EXPECTED[policy]
    probs = sampling_probabilities(mixture(spec), SIZES)
    assert list(probs) == list(SIZES)
    assert probs == pytest.approx(expected, abs=1e-12)


def test_temperature_without_cap_and_at_one_is_proportional() -> None:
    probs = sampling_probabilities(mixture({"name": "temperature", "temperature": 1}), SIZES)
    assert probs == pytest.approx(EXPECTED["proportional"][1])


def test_log_proportional_never_draws_a_single_example_task() -> None:
    assert sampling_probabilities(mixture("log_proportional"), {"x": 1, "y": 10}) == {"x": 0.0, "y": 1.0}


@pytest.mark.parametrize("policy", sorted(EXPECTED))
def test_empirical_frequencies_match_probabilities(policy: str) -> None:
    spec, expected = EXPECTED[policy]
    draws_per_step, steps = 10, 10_000
    cfg = mixture(spec, batching="heterogeneous", tasks_per_step=draws_per_step)
    schedule = build_schedule(cfg, SIZES, seed=7)
    counts = Counter(name for _ in range(steps) for name in schedule.next_step())
    n = draws_per_step * steps
    assert sum(counts.values()) == n
    for task, p in expected.items():
        std_err = math.sqrt(p * (1 - p) / n)
        assert abs(counts[task] / n - p) <= 4 * std_err + 1e-12, (task, counts[task] / n, p)


def test_natural_visits_every_batch_once_per_pass_and_reshuffles() -> None:
    schedule = build_schedule(mixture("natural"), {"a": 10, "b": 25, "c": 61}, seed=3, batch_size=4)
    counts = {"a": 3, "b": 7, "c": 16}  # ceil(N / 4)
    passes = [[schedule.next_step()[0] for _ in range(26)] for _ in range(3)]
    for one_pass in passes:
        assert Counter(one_pass) == counts
    assert passes[0] != passes[1] != passes[2]


def test_draws_are_deterministic_given_the_seed() -> None:
    def run(seed: int) -> list[list[str]]:
        schedule = build_schedule(mixture("uniform"), SIZES, seed=seed)
        return [schedule.next_step() for _ in range(50)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_single_task_stage_always_draws_it() -> None:
    schedule = build_schedule(MixtureConfig(), {"rte": 2490}, seed=0)
    assert [schedule.next_step() for _ in range(5)] == [["rte"]] * 5
    assert schedule.reduction == "mean" and not schedule.finished


def test_shorthand_and_full_spec_are_equal() -> None:
    assert mixture("uniform") == mixture({"name": "uniform"})
    assert MixtureConfig().sampling.name == "proportional"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("softmax", "unknown sampling policy 'softmax'; choose one of: explicit, log_proportional, natural"),
        ({"name": "power"}, r"sampling policy 'power' needs \['alpha'\]"),
        ({"name": "power", "alpha": 0.5, "beta": 1}, r"sampling policy 'power' takes only \['alpha'\]; got \['beta'\]"),
        ({"name": "uniform", "alpha": 0.5}, "sampling policy 'uniform' takes no parameters"),
        ({"name": "temperature", "temperature": 0}, "temperature: Input should be greater than 0"),
        ({"name": "temperature", "temperature": 2, "cap": -5}, "cap: Input should be greater than 0"),
        ({"name": "power", "alpha": "high"}, "alpha: Input should be a valid number"),
        ({"name": "explicit", "weights": {"a": -1}}, "weights: Input should be greater than or equal to 0"),
    ],
)
def test_bad_sampling_specs_are_rejected(spec: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        mixture(spec)


def test_explicit_weights_must_name_the_mixture_tasks() -> None:
    with pytest.raises(ConfigError, match=r"missing \['c'\], not in the mixture \['z'\]"):
        sampling_probabilities(mixture({"name": "explicit", "weights": {"a": 1, "b": 1, "z": 1}}), SIZES)
    with pytest.raises(ConfigError, match="every task weight 0"):
        sampling_probabilities(mixture({"name": "explicit", "weights": {"a": 0}}), {"a": 5})


def test_empty_or_sizeless_tasks_are_rejected() -> None:
    with pytest.raises(ConfigError, match="task 'b': training-set size must be a positive integer"):
        sampling_probabilities(MixtureConfig(), {"a": 5, "b": 0})
    with pytest.raises(ConfigError, match="at least one task"):
        sampling_probabilities(MixtureConfig(), {})
