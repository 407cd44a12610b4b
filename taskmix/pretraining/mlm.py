"""Masked language modelling: dynamic masking and the checkpoint's own MLM head, if it has one.

Masks are drawn when a batch is made, never stored, so every pass over the corpus sees new
masks (the RoBERTa-style dynamic masking the paper's MLM baseline uses).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from taskmix.models.encoder import resolve_model_path
from taskmix.models.heads import IGNORE

log = logging.getLogger(__name__)

MASK_RATE = 0.15
# Of the chosen tokens: 80% become [MASK], 10% a random token, 10% stay as they are.
REPLACE_WITH_MASK = 0.8
REPLACE_WITH_RANDOM = 0.1


def mask_tokens(input_ids: torch.Tensor, maskable: torch.Tensor, mask_id: int, vocab: torch.Tensor,
                generator: torch.Generator, rate: float = MASK_RATE) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose round(rate * n) of each row's n maskable tokens (at least one) and corrupt them.

    Returns the new input ids and the labels: the original id where a token was chosen,
    IGNORE elsewhere.  `vocab` holds the ids random replacements are drawn from.
    """
    counts = (maskable.sum(dim=1).float() * rate).round().clamp(min=1) * maskable.any(dim=1)
    scores = torch.rand(input_ids.shape, generator=generator).masked_fill(~maskable, 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    chosen = (ranks < counts[:, None]) & maskable
    labels = input_ids.masked_fill(~chosen, IGNORE)
    action = torch.rand(input_ids.shape, generator=generator)
    to_mask = chosen & (action < REPLACE_WITH_MASK)
    to_random = chosen & (action >= REPLACE_WITH_MASK) & (action < REPLACE_WITH_MASK + REPLACE_WITH_RANDOM)
    random_ids = vocab[torch.randint(len(vocab), input_ids.shape, generator=generator)]
    masked = input_ids.masked_fill(to_mask, mask_id)
    masked = torch.where(to_random, random_ids, masked)
    return masked, labels


# BERT checkpoints keep the MLM head under these names; our head's parameters on the right.
BERT_MLM_KEYS = {
    "cls.predictions.transform.dense.weight": "transform.0.weight",
    "cls.predictions.transform.dense.bias": "transform.0.bias",
    "cls.predictions.transform.LayerNorm.weight": "transform.2.weight",
    "cls.predictions.transform.LayerNorm.bias": "transform.2.bias",
    "cls.predictions.bias": "bias",
}
_reported: set[str] = set()


def pretrained_mlm_weights(encoder_name: str) -> dict[str, torch.Tensor] | None:
    """The MLM head stored with a local BERT-style checkpoint, or None (logged once per encoder)."""
    weights = None
    file = Path(resolve_model_path(encoder_name)) / "model.safetensors"
    if file.is_file():
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as stored:
            names = set(stored.keys())
            if set(BERT_MLM_KEYS) <= names:
                weights = {ours: stored.get_tensor(theirs) for theirs, ours in BERT_MLM_KEYS.items()}
    if weights is None and encoder_name not in _reported:
        _reported.add(encoder_name)
        log.info("encoder '%s' has no MLM head in its checkpoint; the MLM head starts fresh", encoder_name)
    return weights
