"""Shared fixtures: the real data directory (never downloaded) and the bundled encoder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    return Path(os.environ.get("TASKMIX_DATA") or REPO_ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not (path / "glue").is_dir():
        pytest.fail(f"real data not found at {path}; set TASKMIX_DATA to the shared data directory")
    return path
