"""Loss scaling: a static weight per task that multiplies its loss at every update.

Size-based weights follow seed 000, Appendix C: w_i = f(N_i) / max_j f(N_j), with the same
f as task sampling, so the largest task keeps weight 1.  `log_classes` is Muppet's
L / log n(i) (seed 004, eq. 1): a task predicting uniformly over its n outputs then has
loss 1, whatever n is.  Adding a policy is one entry in `SCALING_POLICIES`; its
keyword-only parameters are what a config may set for it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Mapping

from pydantic import Field

from taskmix.errors import ConfigError
from taskmix.mixture import sampling
from taskmix.mixture.sampling import Sizes, check_sizes, normalised

if TYPE_CHECKING:
    from taskmix.mixture.config import MixtureConfig

# Number of outputs the loss ranges over: classes, answer choices, or the vocabulary size
# for masked-LM / generation heads (which average their loss per token, as Muppet's do).
# None means the head has no class count (regression).
ClassCounts = Mapping[str, int | None]

# A head with no class count (regression, n = 1 output) is scaled like a binary task:
# log 1 = 0 would divide by zero, and two outputs is the smallest n for which L / log n is defined.
NO_CLASS_COUNT = 2


def uniform(sizes: Sizes, num_classes: ClassCounts) -> dict[str, float]:
    """w = 1."""
    return sampling.uniform(sizes)


def proportional(sizes: Sizes, num_classes: ClassCounts) -> dict[str, float]:
    """w_i = N_i / max_j N_j."""
    return _relative_to_largest(sampling.proportional(sizes), "proportional")


def power(sizes: Sizes, num_classes: ClassCounts, *, alpha: Annotated[float, Field(allow_inf_nan=False)]) -> dict[str, float]:
    """w_i = N_i^alpha / max_j N_j^alpha."""
    return _relative_to_largest(sampling.power(sizes, alpha=alpha), "power")


def log_classes(sizes: Sizes, num_classes: ClassCounts) -> dict[str, float]:
    """w_i = 1 / log n(i); heads without a class count use n = NO_CLASS_COUNT."""
    missing = [task for task in sizes if task not in num_classes]
    if missing:
        raise ConfigError(f"loss scaling 'log_classes' needs the number of classes of tasks {missing}")
    weights = {}
    for task in sizes:
        n = num_classes[task]
        if n is None or n == 1:
            n = NO_CLASS_COUNT
        if n < 1:
            raise ConfigError(f"task {task!r}: number of classes must be positive, got {n}")
        weights[task] = 1.0 / math.log(n)
    return weights


def explicit(
    sizes: Sizes, num_classes: ClassCounts, *, weights: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]]
) -> dict[str, float]:
    """The user's weights, used as given (not normalised)."""
    return sampling.explicit(sizes, weights=weights)


def _relative_to_largest(weights: dict[str, float], name: str) -> dict[str, float]:
    return normalised(weights, max(weights.values()), f"loss scaling {name!r}")


SCALING_POLICIES = {
    "uniform": uniform,
    "proportional": proportional,
    "power": power,
    "log_classes": log_classes,
    "explicit": explicit,
}


def loss_weights(
    mixture: MixtureConfig, task_sizes: Sizes, num_classes: ClassCounts | None = None
) -> dict[str, float]:
    """The loss multiplier of every task of the mixture."""
    check_sizes(task_sizes)
    spec = mixture.loss_scaling
    return SCALING_POLICIES[spec.name](task_sizes, num_classes or {}, **spec.params)
