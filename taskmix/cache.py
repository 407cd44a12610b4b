"""What every on-disk cache shares: where caches live, how keys are hashed, how entries are written.

Token caches, the corpus cache and the stage cache all key an entry by a digest of what
determines it, and write it as a directory that appears in one rename, so a reader never
sees half an entry and two processes building the same entry never corrupt each other.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CACHE_ENV = "TASKMIX_CACHE"


def cache_root(section: str) -> Path:
    """`$TASKMIX_CACHE/<section>`, else `$XDG_CACHE_HOME/taskmix/<section>`, else `~/.cache/taskmix/<section>`."""
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "taskmix"
    return Path(root) / section


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal values hash equally (non-JSON values as str)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(value: Any, length: int | None = None) -> str:
    """SHA-256 (hex) of a value's canonical JSON, cut to `length` characters if given."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging directory beside `target` and rename it to `target` when the block ends.

    If another process created `target` first, its entry is kept and the staging copy is
    dropped; if the block fails, the staging directory is removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        yield staging
        os.replace(staging, target)
    except OSError:
        if not target.exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
