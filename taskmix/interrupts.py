"""SIGINT and SIGTERM as one exception, and writes that a signal cannot cut in half.

A signal that lands inside `torch.save` surfaces as a RuntimeError chained to a
KeyboardInterrupt (two tracebacks, a half-written temp file); deferring it to the end of
the write lets the interrupt take effect at a clean point instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT or SIGTERM (`signum`), which the CLI reports in one line."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _restore(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: set outside Python


@contextlib.contextmanager
def signals_raise_interrupted() -> Iterator[None]:
    """Within the block SIGINT and SIGTERM raise `Interrupted`; the previous handlers come back after."""
    if not _in_main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_interrupted) for signum in HANDLED}
    try:
        yield
    finally:
        _restore(previous)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first one received."""
    if not _in_main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda n, _frame: received.append(n)) for signum in HANDLED}
    try:
        yield
    finally:
        _restore(previous)
        if received:
            _deliver(received[0], previous[received[0]])


def _deliver(signum: int, handler: object) -> None:
    """Run a held signal's handler now, in this frame, so its exception surfaces here.

    `signal.raise_signal` would only schedule the handler for the next bytecode, which may
    belong to a finalizer the garbage collector happens to run, where exceptions are dropped.
    """
    if callable(handler):
        handler(signum, None)
    else:
        signal.raise_signal(signum)  # SIG_DFL terminates, SIG_IGN ignores, as they would have
