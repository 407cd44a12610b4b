"""Finished stage groups on disk, keyed by everything that determines their result.

An intermediate stage shared by many pipelines or study cells is trained once: the key
hashes the encoder and its weights, seed, sequence length, precision, the stages before it,
the stage itself, its tasks and the contents of every file those stages read, so any change
to those trains afresh.  The state file is written
before the result file, and both atomically, so a present result always has its weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from taskmix.rundir import save_torch, write_json


PARTIAL = "partial.pt"
DIGESTS_FILE = "file-digests.json"  # content hashes of the files read, for the keys (see file_digests)


def cache_key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


class StageCache:
    """Encoder and head weights plus restart results of finished stage groups."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def load(self, key: str) -> tuple[dict, dict, list[dict], int] | None:
        folder = self.root / key
        if not (folder / "result.json").exists():
            return None
        result = json.loads((folder / "result.json").read_text())
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
        return state["encoder"], state["heads"], result["restarts"], result["selected"]

    def store(self, key: str, encoder_state: dict, head_states: dict, restarts: list[dict], selected: int) -> None:
        """Record a finished group and drop its in-progress files."""
        folder = self.root / key
        save_torch(folder / "state.pt", {"encoder": encoder_state, "heads": head_states})
        write_json(folder / "result.json", {"restarts": restarts, "selected": selected})
        for leftover in [folder / PARTIAL, *folder.glob("restart-*.pt")]:
            leftover.unlink(missing_ok=True)

    def training_checkpoint(self, key: str, restart: int) -> Path:
        """Where the running restart of a group keeps its resumable training state."""
        return self.root / key / f"restart-{restart}.pt"

    def partial(self, key: str) -> dict | None:
        """Finished restarts of an unfinished group, with the best one's weights."""
        path = self.root / key / PARTIAL
        return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None

    def save_partial(self, key: str, restarts: list[dict], best: tuple) -> None:
        folder = self.root / key
        save_torch(folder / PARTIAL, {"restarts": restarts, "best": best})
        for finished in range(len(restarts)):
            self.training_checkpoint(key, finished).unlink(missing_ok=True)
