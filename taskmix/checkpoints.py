"""A run's `checkpoint.pt`: the encoder family's record, the sequence length, the heads and all weights.

`taskmix run` writes one per stage group (`run_outputs.GroupWriter`); `taskmix evaluate` and
the `checkpoint` encoder family read them back, tensors and plain data only.
"""

from __future__ import annotations

from pathlib import Path

from taskmix.errors import CheckpointError, ConfigError
from taskmix.rundir import load_torch

CHECKPOINT_KEYS = ("encoder", "max_length", "heads", "state_dict")
ENCODER_PREFIX = "encoder."


def read_checkpoint(path: Path) -> dict:
    """A run's checkpoint, loaded without unpickling anything but tensors and plain data."""
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint not found")
    saved = load_torch(path)
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint written by `taskmix run` (no {', '.join(missing)})")
    return saved


def encoder_weights(saved: dict) -> dict:
    """The encoder's part of a checkpoint's weights, keyed as the encoder names them."""
    return {k[len(ENCODER_PREFIX):]: v for k, v in saved["state_dict"].items() if k.startswith(ENCODER_PREFIX)}
