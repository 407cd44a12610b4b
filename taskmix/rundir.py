"""Atomic writes for everything a run directory holds: a reader never sees half a file.

Each write goes to a hidden temp file beside its target (`.NAME.XXXX.tmp`) and is renamed
over it once complete, with SIGINT/SIGTERM held until then.  A write that fails (disk
full, no permission) raises an OSError naming the target, not the temp file; a process
killed mid-write leaves its temp file behind, and `remove_stale_temps` deletes those when
the next run takes the directory.  `load_torch` reads back only tensors and plain data.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from taskmix.errors import CheckpointError, clip
from taskmix.interrupts import deferred_signals

TEMP_SUFFIX = ".tmp"


def _atomic(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with deferred_signals():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            cause = _os_error(exc)
            if cause is None:
                raise
            raise OSError(cause.errno, cause.strerror, str(path)) from exc
    return path


def _os_error(exc: BaseException) -> OSError | None:
    """The OS error behind a failed write; torch.save reports one as a RuntimeError chained to it."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def write_bytes(path: Path, data: bytes) -> Path:
    return _atomic(path, lambda h: h.write(data))


def write_text(path: Path, text: str) -> Path:
    return _atomic(path, lambda h: h.write(text.encode("utf-8")))


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")


def save_torch(path: Path, obj: Any) -> Path:
    return _atomic(path, lambda h: torch.save(obj, h))


def remove_stale_temps(root: Path) -> list[Path]:
    """Delete temp files that killed writers left under `root`; call only while holding its lock."""
    stale = [p for p in Path(root).rglob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def load_torch(path: Path) -> Any:
    """A file written by `save_torch`, refusing anything but tensors and plain data.

    Unpickling arbitrary objects can run code, so a file naming any other class or function
    is an error, as is a truncated or corrupt file: neither is ever loaded silently.
    """
    path = Path(path)
    with open(path, "rb") as handle:  # a missing or unreadable file stays an OSError naming it
        try:
            return torch.load(handle, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise _refusal(path, exc) from None
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({_first_line(exc) or 'empty file'})") \
                from None


def _refusal(path: Path, exc: pickle.UnpicklingError) -> CheckpointError:
    """Name what a refused pickle wanted to call; anything else unpicklable is simply not ours."""
    match = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    if match:
        return CheckpointError(f"{path}: refusing to load: it names {match.group(1)}, which is not a tensor "
                               "or plain data, and unpickling it could run code")
    return CheckpointError(f"{path}: not a checkpoint written by taskmix, or corrupt")


def _first_line(exc: BaseException) -> str:
    return clip(str(exc).strip().split("\n")[0], 120)
