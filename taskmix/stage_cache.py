"""Finished stage groups on disk, keyed by everything that determines their result.

An intermediate stage shared by many pipelines or study cells is trained once: the key
hashes the encoder and its weights, seed, sequence length, precision, the stages before it,
the stage itself, its tasks and the contents of every file those stages read, so any change
to those trains afresh.  The state file is written before the result file, and both
atomically, so a present result always has its weights; each entry is locked while it is
written, since study cells share the cache.  Files are read back with `load_torch`:
tensors and plain data only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from taskmix.cache import digest
from taskmix.errors import CheckpointError
from taskmix.rundir import load_torch, save_torch, write_json
from taskmix.runlock import locked
from taskmix.tensor_state import Predictions, predictions_from_plain, to_plain


PARTIAL = "partial.pt"
DIGESTS_FILE = "file-digests.json"  # content hashes of the files read, for the keys (see file_digests)


def cache_key(payload: dict[str, Any]) -> str:
    return digest(payload, 20)


class StageCache:
    """Encoder and head weights plus restart results of finished stage groups."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def load(self, key: str) -> tuple[dict, dict, list[dict], int] | None:
        folder = self.root / key
        if not (folder / "result.json").exists():
            return None
        try:
            result = json.loads((folder / "result.json").read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{folder / 'result.json'}: corrupt ({exc}); delete {folder} to retrain the stage") \
                from None
        state = load_torch(folder / "state.pt")
        return state["encoder"], state["heads"], result["restarts"], result["selected"]

    def store(self, key: str, encoder_state: dict, head_states: dict, restarts: list[dict], selected: int) -> None:
        """Record a finished group and drop its in-progress files."""
        folder = self.root / key
        with locked(folder, "stage-cache entry", wait=True):
            save_torch(folder / "state.pt", {"encoder": encoder_state, "heads": head_states})
            write_json(folder / "result.json", {"restarts": restarts, "selected": selected})
            for leftover in [folder / PARTIAL, *folder.glob("restart-*.pt")]:
                leftover.unlink(missing_ok=True)

    def training_checkpoint(self, key: str, restart: int) -> Path:
        """Where the running restart of a group keeps its resumable training state."""
        return self.root / key / f"restart-{restart}.pt"

    def partial(self, key: str) -> tuple[list[dict], "BestRestart | None"] | None:
        """Finished restarts of an unfinished group, with the best one's weights (None while every
        finished restart failed)."""
        path = self.root / key / PARTIAL
        if not path.exists():
            return None
        saved = load_torch(path)
        try:
            best = saved["best"]
            return saved["restarts"], None if best is None else BestRestart.from_state(best)
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: not a partial stage result written by this version of taskmix "
                                  f"(missing {exc}); delete it to rerun the stage's restarts") from None

    def save_partial(self, key: str, restarts: list[dict], best: "BestRestart | None") -> None:
        folder = self.root / key
        with locked(folder, "stage-cache entry", wait=True):
            save_torch(folder / PARTIAL, {"restarts": to_plain(restarts), "best": None if best is None else best.state()})
            for finished in range(len(restarts)):
                self.training_checkpoint(key, finished).unlink(missing_ok=True)


@dataclass
class BestRestart:
    """The best restart of a group so far: its validation score, weights and dev predictions."""

    score: float
    encoder_state: dict[str, torch.Tensor]
    head_states: dict[str, dict[str, torch.Tensor]]
    predictions: Predictions | None = None

    def state(self) -> dict[str, Any]:
        """Tensors and plain data only, so the file loads with `weights_only`."""
        return {"score": float(self.score), "encoder_state": self.encoder_state, "head_states": self.head_states,
                "predictions": to_plain(self.predictions)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "BestRestart":
        return cls(state["score"], state["encoder_state"], state["head_states"],
                   predictions_from_plain(state["predictions"]))

