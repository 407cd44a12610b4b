"""Encoder vectors of a task's inputs, one row per encoder input, for the predictors.

Kinds batch their features themselves; most give one encoder row per example, while
multiple choice gives one row per (context, choice) pair and says so in the batch
(`choice_example`, `choice_position`).  Both come back here as rows tagged with their
example and choice position, so a predictor needs no kind-specific batching.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from taskmix.kinds.base import Features
from taskmix.models.model import MultiTaskModel
from taskmix.runtime import Runtime
from taskmix.training.batching import sorted_batches, to_device
from taskmix.training.device import autocast


@dataclass
class EncodedRows:
    """pooled: the vector heads read ([CLS]); token_mean: the mean of the token vectors (padding left out)."""

    pooled: np.ndarray
    token_mean: np.ndarray
    example: np.ndarray
    position: np.ndarray


@torch.inference_mode()
def encode_rows(model: MultiTaskModel, split: Features, rt: Runtime) -> EncodedRows:
    """Run the encoder over every example of `split` in length-sorted batches."""
    was_training = model.training
    model.eval()
    pooled, token_mean, example, position = [], [], [], []
    for indices in sorted_batches(split.lengths, rt.eval_batch_size):
        batch = split.collate(indices, rt.pad_id)
        if "choice_example" in batch:
            example.append(indices[batch["choice_example"].numpy()])
            position.append(batch["choice_position"].numpy())
        else:
            example.append(indices)
            position.append(np.zeros(len(indices), dtype=np.int64))
        batch = to_device(batch, rt.device)
        with autocast(rt.device, rt.precision):
            out = model.encode(batch)
        mask = out.mask.unsqueeze(-1).to(out.tokens.dtype)
        pooled.append(out.pooled.float().cpu().numpy())
        token_mean.append(((out.tokens * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu().numpy())
    model.train(was_training)
    if not pooled:
        raise ValueError("no examples to encode")
    return EncodedRows(np.concatenate(pooled), np.concatenate(token_mean), np.concatenate(example),
                       np.concatenate(position))
