"""Frozen encoders (seed 001 §3, pretraining and intermediate-ELMo paradigms): a stage trains heads on
top of an encoder whose weights stay fixed.

Freezing is decided per stage, on an encoder object that later stages may train again, so
every stage sets `requires_grad` explicitly: a frozen stage turns it off, any other stage
restores the flags the encoder was built with (an encoder may keep parts of itself fixed in
every stage, e.g. a random baseline or the transformer under a layer mix).  Frozen parameters get no gradients, hence no
optimizer state (the optimizer is built from parameters that require gradients); only
the encoder's `trainable_when_frozen` parameters (ELMo-style scalar-mix weights) stay
trainable.  The frozen encoder also runs in eval mode, so no dropout fires inside it:
its outputs for a text are fixed, which is what lets them be cached
(`taskmix.training.frozen_features`).  Dropout on those outputs belongs to the heads.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from torch import nn

from taskmix.models.model import MultiTaskModel

# Encoder -> the `requires_grad` flags it was built with, by parameter name (taken before any stage changes them).
_BUILT_FLAGS: "weakref.WeakKeyDictionary[nn.Module, dict[str, bool]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ParameterCounts:
    trainable: int
    frozen: int


def apply_freezing(model: MultiTaskModel, frozen: bool) -> ParameterCounts:
    """Mark the encoder's parameters trainable or not for one stage; returns the model's counts."""
    encoder = model.encoder
    if encoder not in _BUILT_FLAGS:
        _BUILT_FLAGS[encoder] = {name: p.requires_grad for name, p in encoder.named_parameters()}
    built = _BUILT_FLAGS[encoder]
    for name, param in encoder.named_parameters():
        param.requires_grad_(built[name] and not frozen)
    if frozen:
        for param in model.encoder.trainable_when_frozen():
            param.requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    fixed = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return ParameterCounts(trainable, fixed)


def set_training_mode(model: MultiTaskModel, frozen: bool) -> None:
    """Training mode for heads (and a trained encoder); a frozen encoder stays in eval mode."""
    model.train()
    if frozen:
        model.encoder.eval()


def encoder_is_fixed(model: MultiTaskModel, frozen: bool) -> bool:
    """Whether the encoder's outputs cannot change during the stage: frozen with nothing left trainable,
    and no task embedding added to its inputs."""
    return (frozen and model.task_embedding is None
            and not any(p.requires_grad for p in model.encoder.parameters()))
