"""Exclusive locks on run directories and stage-cache entries, held for as long as a process lives.

`fcntl.flock` locks belong to the open file, so the kernel drops them when the holder exits
or is killed: a crashed run never leaves a stale lock behind.  The lock file also records
the holder's PID, which the refusal names.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Iterator

from taskmix.errors import RunDirLocked, TaskmixError
from taskmix.rundir import remove_stale_temps

log = logging.getLogger(__name__)

LOCK_FILE = "taskmix.lock"


def _holder(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"


@contextlib.contextmanager
def locked(directory: Path, what: str, wait: bool = False) -> Iterator[None]:
    """Hold `directory`'s lock for the block; if another process holds it, fail (or with `wait`, wait)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise RunDirLocked(f"{directory}: {what} is in use by another taskmix process (PID {_holder(fd)}); "
                                   "wait for it to finish or choose another directory") from None
            log.info("%s %s is being written by PID %s; waiting", what, directory, _holder(fd))
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


@contextlib.contextmanager
def claim_run_dir(directory: Path, what: str = "run directory") -> Iterator[None]:
    """Own `directory` for a whole run: lock it, then delete temp files that killed runs left there."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise TaskmixError(f"{directory}: output directory exists and is not a directory")
    with locked(directory, what):
        stale = remove_stale_temps(directory)
        if stale:
            log.info("removed %d unfinished write(s) left by an interrupted run in %s", len(stale), directory)
        yield
