"""Divergence guard of the stage trainer: skip non-finite steps, give up on persistent ones.

A learning rate far too high (or no gradient clipping) turns the loss into NaN within a
few steps; every later update then writes NaN into the weights, and a model full of NaN
scores like a constant predictor.  Like a loss scaler, the guard skips the optimizer step
when the loss or the gradients are not finite, and ends the restart once too many steps
in a row had to be skipped.  It also warns once when the loss, still finite, explodes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from taskmix.errors import TaskmixError

log = logging.getLogger(__name__)

# Consecutive non-finite steps tolerated before the restart is declared diverged.  A single
# bad batch (or a few while a warm-up settles) is survivable: its update is skipped and the
# weights stay as they were.  Several in a row mean the weights or the learning rate are
# the problem, and skipping more would only burn the step budget.
MAX_CONSECUTIVE_SKIPS = 5

# A finite loss this many times its first value is reported as exploding: training from a
# pretrained encoder starts at the loss of a near-uniform prediction, and four orders of
# magnitude above it no learning rate schedule recovers in practice.
LOSS_EXPLOSION_FACTOR = 1e4


class TrainingDiverged(TaskmixError):
    """A restart whose loss or gradients stayed non-finite; `step` is the first bad step of the run."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step

    @property
    def reason(self) -> str:
        """The short form recorded in a restart's result."""
        return f"diverged at step {self.step}"


@dataclass(frozen=True)
class DivergenceState:
    """What the guard remembers across steps (saved with the training checkpoint)."""

    first_loss: float | None = None
    consecutive_skips: int = 0
    first_bad_step: int | None = None
    skipped_steps: int = 0
    warned_explosion: bool = False


def observe(state: DivergenceState, step: int, loss: float, finite: bool, stage: str, lr: float,
            max_grad_norm: float | None) -> tuple[DivergenceState, bool]:
    """The state after `step` (1-based) and whether its optimizer update must be skipped.

    `finite` says whether the loss and the gradients of the step were finite on every
    process.  Raises `TrainingDiverged` after `MAX_CONSECUTIVE_SKIPS` bad steps in a row.
    """
    if not finite:
        first_bad = state.first_bad_step if state.consecutive_skips else step
        state = replace(state, consecutive_skips=state.consecutive_skips + 1, first_bad_step=first_bad,
                        skipped_steps=state.skipped_steps + 1)
        log.warning("stage '%s' step %d: loss or gradients not finite; update skipped (%d in a row)",
                    stage, step, state.consecutive_skips)
        if state.consecutive_skips >= MAX_CONSECUTIVE_SKIPS:
            raise TrainingDiverged(
                f"stage '{stage}': training diverged at step {first_bad}: loss or gradients not finite for "
                f"{state.consecutive_skips} steps in a row; the learning rate (lr: {lr:g}) is likely too high"
                + ("" if max_grad_norm else ", and gradients are not clipped (max_grad_norm is unset)"),
                first_bad,
            )
        return state, True
    state = replace(state, consecutive_skips=0)
    if state.first_loss is None:
        return replace(state, first_loss=loss), False
    if not state.warned_explosion and state.first_loss > 0 and loss > LOSS_EXPLOSION_FACTOR * state.first_loss:
        log.warning("stage '%s' step %d: loss %.3g is over %g times its first value (%.3g); the learning rate "
                    "(lr: %g) may be too high%s", stage, step, loss, LOSS_EXPLOSION_FACTOR, state.first_loss, lr,
                    "" if max_grad_norm else " or gradients need clipping (max_grad_norm)")
        state = replace(state, warned_explosion=True)
    return state, False
