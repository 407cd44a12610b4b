"""Content hashes (sha256) of data and weight files, remembered by path, size and mtime.

A reused stage must have read the same bytes, so its cache key hashes file contents; a copy
of the data with identical contents hashes the same.  Hashing a multi-gigabyte corpus on
every run would cost more than the stage it saves, so each digest is kept in a small JSON
file next to the stage cache and reused while the file's (path, size, mtime_ns) is unchanged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from taskmix.cache import file_digest
from taskmix.rundir import write_json

log = logging.getLogger(__name__)


class FileDigests:
    """sha256 of files, computed once per (path, size, mtime_ns) and kept in `store` (a JSON file)."""

    def __init__(self, store: Path | None):
        self.store = store
        self._known: dict[str, str] = self._read()
        self._dirty = False

    def _read(self) -> dict[str, str]:
        if self.store is None or not self.store.is_file():
            return {}
        try:
            known = json.loads(self.store.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # a damaged cache only costs hashing again
            log.warning("%s: ignoring unreadable digest cache (%s)", self.store, exc)
            return {}
        return known if isinstance(known, dict) else {}

    def digest(self, path: Path) -> str:
        """The sha256 of `path`'s contents (the file must exist)."""
        path = Path(path).resolve()
        stat = path.stat()
        key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in self._known:
            self._known[key] = file_digest(path)
            self._dirty = True
        return self._known[key]

    def save(self) -> None:
        """Write new digests to the store (a no-op when nothing was hashed)."""
        if self.store is not None and self._dirty:
            write_json(self.store, self._known)
            self._dirty = False
