"""Training progress: a live bar on a terminal, plain periodic log lines everywhere else.

A tqdm bar redraws itself with carriage returns; written to a file (CI, `nohup`, a study
log) every redraw becomes a frame of garbage in the log. So the bar is used only when
stderr is a terminal, and otherwise one plain line is logged every `interval` seconds.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable, TextIO

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 30.0


class StepProgress:
    """Counts optimizer steps of one stage and reports them in the form that suits the output."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool, *, stream: TextIO | None = None,
                 interval: float = LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        stream = stream if stream is not None else sys.stderr
        self.total = total
        self.step = initial
        self.desc = desc
        self.interval = interval
        self.clock = clock
        self.bar = tqdm(total=total, initial=initial, desc=desc, file=stream, leave=False, mininterval=1.0) \
            if enabled and stream.isatty() else None
        self.lines = enabled and self.bar is None
        self.initial = initial
        self.started = self.last = clock()

    def update(self, loss: float) -> None:
        """One more step, with the smoothed training loss."""
        self.step += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            return
        now = self.clock()
        if self.lines and (now - self.last >= self.interval or self.step == self.total):
            self.last = now
            rate = (self.step - self.initial) / max(now - self.started, 1e-9)
            log.info("%s: step %d/%d (%.0f%%), loss %.4f, %.2f steps/s", self.desc, self.step, self.total,
                     100 * self.step / self.total, loss, rate)

    def close(self) -> None:
        """Remove the bar: a finished stage leaves its log lines, not a stale bar."""
        if self.bar is not None:
            self.bar.close()
