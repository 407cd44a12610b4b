"""Inference over a tokenised split: length-sorted batches under `inference_mode`."""

from __future__ import annotations

import numpy as np
import torch

from taskmix.kinds.base import Features
from taskmix.errors import NonFinitePredictions
from taskmix.models.model import MultiTaskModel
from taskmix.training.batching import sorted_batches, to_device
from taskmix.training.device import autocast
from taskmix.training.ragged import object_rows


@torch.inference_mode()
def predict(
    model: MultiTaskModel,
    head_name: str,
    split: Features,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    precision: str,
) -> np.ndarray:
    """The head's predictions (class indices, scores, tag sequences, ...) for every row, in the split's original order."""
    was_training = model.training
    model.eval()
    head = model.heads[head_name]
    out: np.ndarray | None = None
    for indices in sorted_batches(split.lengths, batch_size):
        batch = to_device(split.collate(indices, pad_id), device)
        with autocast(device, precision):
            logits = model(head_name, batch).float()
        if not bool(torch.isfinite(logits).all()):  # argmax of NaN logits would still look like a class
            raise NonFinitePredictions(f"head {head_name!r}: non-finite outputs; the model diverged")
        values = as_rows(head.predict(logits, batch))
        if out is None:
            out = np.empty(len(split), dtype=values.dtype)
        out[indices] = values
    model.train(was_training)
    return out if out is not None else np.empty(0)


def as_rows(values: torch.Tensor | list) -> np.ndarray:
    """A head's predictions as one numpy value per example: scalars stay a typed 1-d array,
    anything else (a tag sequence, a span) becomes an object array of per-example values."""
    if isinstance(values, torch.Tensor):
        values = values.cpu().numpy()
        if values.ndim == 1:
            return values
    return object_rows([v.cpu().numpy() if isinstance(v, torch.Tensor) else v for v in values])
