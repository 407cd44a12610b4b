"""Task sampling: which task's batch an optimizer step trains on.

A policy gives each task an unnormalised weight f(N_i) from its training-set size N_i and
p_i = f(N_i) / sum_j f(N_j) (seed 000, Appendix C; seed 004, section 3.4).  Adding a policy
is one entry in `SAMPLING_POLICIES`: its keyword-only parameters are what a config may set
for it, validated from the annotations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Callable, Mapping, Protocol

import numpy as np
from pydantic import Field

from taskmix.errors import ConfigError

if TYPE_CHECKING:
    from taskmix.mixture.config import MixtureConfig

Sizes = Mapping[str, int]


def check_sizes(sizes: Sizes) -> None:
    """Fail early on an empty mixture or an empty task: every policy divides by sizes or logs them."""
    if not sizes:
        raise ConfigError("a mixture needs at least one task")
    for task, n in sizes.items():
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"task {task!r}: training-set size must be a positive integer, got {n!r}")


def uniform(sizes: Sizes) -> dict[str, float]:
    """f(N) = 1."""
    return {task: 1.0 for task in sizes}


def proportional(sizes: Sizes) -> dict[str, float]:
    """f(N) = N."""
    return {task: float(n) for task, n in sizes.items()}


def log_proportional(sizes: Sizes) -> dict[str, float]:
    """f(N) = log N (natural log; the base cancels in p). A task with N = 1 is never drawn."""
    return {task: math.log(n) for task, n in sizes.items()}


def power(sizes: Sizes, *, alpha: Annotated[float, Field(allow_inf_nan=False)]) -> dict[str, float]:
    """f(N) = N^alpha: alpha = 1 is proportional, alpha = 0 uniform (seed 000 uses 0.5-0.75)."""
    return {task: float(n) ** alpha for task, n in sizes.items()}


def temperature(
    sizes: Sizes,
    *,
    temperature: Annotated[float, Field(gt=0, allow_inf_nan=False)],
    cap: Annotated[int, Field(gt=0)] | None = None,
) -> dict[str, float]:
    """f(N) = min(N, cap)^(1/T): T5-style, sizes capped first so one huge corpus cannot dominate."""
    return {task: float(min(n, cap) if cap is not None else n) ** (1.0 / temperature) for task, n in sizes.items()}


def explicit(sizes: Sizes, *, weights: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]]) -> dict[str, float]:
    """f = the user's weight per task; every task of the mixture needs one, and no others."""
    missing = [task for task in sizes if task not in weights]
    extra = [task for task in weights if task not in sizes]
    if missing or extra:
        raise ConfigError(
            f"explicit weights must name exactly the mixture's tasks {list(sizes)}; "
            f"missing {missing}, not in the mixture {extra}"
        )
    return {task: float(weights[task]) for task in sizes}


@dataclass(frozen=True)
class SamplingPolicy:
    """A size-weight function f, and whether draws come from shuffled passes instead of i.i.d."""

    weights: Callable[..., dict[str, float]]
    shuffled_passes: bool = False


SAMPLING_POLICIES: dict[str, SamplingPolicy] = {
    "uniform": SamplingPolicy(uniform),
    "proportional": SamplingPolicy(proportional),
    "log_proportional": SamplingPolicy(log_proportional),
    "power": SamplingPolicy(power),
    "temperature": SamplingPolicy(temperature),
    "explicit": SamplingPolicy(explicit),
    # Muppet's natural dataset sizes: proportional in expectation, but each pass over the
    # data visits every batch of every task exactly once, in shuffled order.
    "natural": SamplingPolicy(proportional, shuffled_passes=True),
}


def normalised(weights: Mapping[str, float], total: float, what: str) -> dict[str, float]:
    """Divide by `total` (the sum for probabilities, the max for loss weights), refusing all-zero weights."""
    if not total > 0:
        raise ConfigError(f"{what} gives every task weight 0: {dict(weights)}")
    return {task: w / total for task, w in weights.items()}


def policy_weights(name: str, params: Mapping[str, Any], sizes: Sizes) -> dict[str, float]:
    """The unnormalised f(N_i) of a registered sampling policy."""
    check_sizes(sizes)
    return SAMPLING_POLICIES[name].weights(sizes, **params)


def sampling_probabilities(mixture: MixtureConfig, task_sizes: Sizes) -> dict[str, float]:
    """p_i = f(N_i) / sum_j f(N_j) for the mixture's sampling policy."""
    spec = mixture.sampling
    weights = policy_weights(spec.name, spec.params, task_sizes)
    return normalised(weights, sum(weights.values()), f"sampling policy {spec.name!r}")


class TaskSampler(Protocol):
    """Draws task names; its state can be saved and restored so a resumed run draws the same tasks."""

    def draw(self, k: int) -> list[str]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class IidSampler:
    """Independent draws with fixed probabilities (sampling with replacement)."""

    def __init__(self, probabilities: Mapping[str, float], seed: int):
        self._names = list(probabilities)
        self._p = np.array([probabilities[t] for t in self._names], dtype=float)
        self._rng = np.random.default_rng(seed)

    def draw(self, k: int) -> list[str]:
        return [self._names[i] for i in self._rng.choice(len(self._names), size=k, p=self._p)]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng"]


class PassSampler:
    """Concatenate-and-shuffle: one entry per batch of each task, reshuffled at every pass.

    The state keeps the generator state from just before the current pass was shuffled,
    so a restored sampler rebuilds the same permutation instead of storing it.
    """

    def __init__(self, counts: Mapping[str, int], seed: int):
        self._names = list(counts)
        self._entries = np.repeat(np.arange(len(self._names)), [counts[t] for t in self._names])
        self._rng = np.random.default_rng(seed)
        self._shuffle()

    def _shuffle(self) -> None:
        self._pass_rng_state = self._rng.bit_generator.state
        self._order = self._rng.permutation(self._entries)
        self._position = 0

    def draw(self, k: int) -> list[str]:
        names = []
        for _ in range(k):
            if self._position == len(self._order):
                self._shuffle()
            names.append(self._names[self._order[self._position]])
            self._position += 1
        return names

    def state_dict(self) -> dict[str, Any]:
        return {"pass_rng": self._pass_rng_state, "position": self._position}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._rng.bit_generator.state = state["pass_rng"]
        self._shuffle()
        self._position = int(state["position"])


def build_sampler(mixture: MixtureConfig, task_sizes: Sizes, seed: int, batch_size: int = 1) -> TaskSampler:
    """The sampler for the mixture's policy; `batch_size` turns example counts into batch counts for passes."""
    if SAMPLING_POLICIES[mixture.sampling.name].shuffled_passes:
        check_sizes(task_sizes)
        return PassSampler({task: math.ceil(n / batch_size) for task, n in task_sizes.items()}, seed)
    return IidSampler(sampling_probabilities(mixture, task_sizes), seed)
