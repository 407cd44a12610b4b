"""State for files that load with `weights_only`: tensors, Python scalars, strings, lists and dicts.

Metrics computed with numpy are numpy scalars and predictions are numpy arrays; pickled
as they are, they need numpy's reconstructors, which a `weights_only` load refuses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from taskmix.training.ragged import object_rows

Predictions = dict[str, dict[str, np.ndarray]]


def to_plain(value: Any) -> Any:
    """`value` with numpy scalars as Python scalars and numpy arrays as tensors, recursively.

    Containers come back as plain dicts, lists and tuples, so module state dicts (whose
    OrderedDict carries version metadata) are best saved as they are, not through this.
    """
    if isinstance(value, np.ndarray):
        if value.dtype == object:  # per-example structured predictions: a list of their plain forms
            return [to_plain(v) for v in value]
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(to_plain(v) for v in value)
    return value


def predictions_from_plain(saved: dict[str, dict[str, torch.Tensor]] | None) -> Predictions | None:
    """Per-task, per-split predictions back as numpy arrays (the inverse of `to_plain`); a list
    (structured predictions) becomes an object array of per-example values."""
    if saved is None:
        return None
    return {task: {split: _array(t) for split, t in splits.items()} for task, splits in saved.items()}


def _array(saved: torch.Tensor | list) -> np.ndarray:
    if isinstance(saved, torch.Tensor):
        return saved.numpy()
    return object_rows([v.numpy() if isinstance(v, torch.Tensor) else v for v in saved])
