"""Inference over a tokenised split: length-sorted batches under `inference_mode`."""

from __future__ import annotations

import numpy as np
import torch

from taskmix.kinds.base import Features
from taskmix.metrics import NonFinitePredictions
from taskmix.models.model import MultiTaskModel
from taskmix.training.batching import sorted_batches, to_device
from taskmix.training.device import autocast


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
    """The head's predictions (class indices, scores, ...) for every row, in the split's original order."""
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
        values = head.predict(logits).cpu().numpy()
        if out is None:
            out = np.empty(len(split), dtype=values.dtype)
        out[indices] = values
    model.train(was_training)
    return out if out is not None else np.empty(0)
