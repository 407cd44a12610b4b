"""Task heads: small modules on top of the encoder that return logits, a loss and predictions.

A head is registered under a kind name; `build_head` creates one from the encoder width,
so adding a head kind is one class plus one `@register_head` line.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from taskmix.errors import ConfigError
from taskmix.models.encoder import EncoderOutput

HEADS: dict[str, type["Head"]] = {}

# Label of positions and rows without a target: PyTorch's cross-entropy skips it by default.
IGNORE = -100


def register_head(kind: str) -> Callable[[type["Head"]], type["Head"]]:
    def add(cls: type["Head"]) -> type["Head"]:
        HEADS[kind] = cls
        return cls

    return add


class Head(nn.Module):
    """Interface: `forward` maps encoder output to logits; `loss` and `predict` interpret them."""

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.num_outputs = num_outputs

    def forward(self, encoded: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor | list:
        """One prediction per example of the batch: a tensor with a row per example, or a list of
        per-example values (tag sequences, answer spans) for heads whose outputs vary in shape;
        `batch` lets such heads map outputs back to examples (windows, first sub-tokens)."""
        raise NotImplementedError

    def distribution_logits(self, logits: torch.Tensor) -> torch.Tensor | None:
        """Logits of a categorical distribution (for R3F's symmetric KL), or None if not categorical."""
        return None


@register_head("classification")
class ClassificationHead(Head):
    """BERT-style classifier on the pooled vector: dropout then one linear layer."""

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__(hidden_size, num_outputs, dropout)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_outputs)

    def forward(self, encoded, batch):
        return self.out(self.dropout(encoded.pooled))

    def loss(self, logits, batch):
        return F.cross_entropy(logits.float(), batch["labels"].long())

    def predict(self, logits, batch):
        return logits.argmax(dim=-1)

    def distribution_logits(self, logits):
        return logits


@register_head("regression")
class RegressionHead(Head):
    """Scalar regressor on the pooled vector, trained with mean squared error (STS-B)."""

    def __init__(self, hidden_size: int, num_outputs: int = 1, dropout: float = 0.1):
        super().__init__(hidden_size, 1, dropout)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, encoded, batch):
        return self.out(self.dropout(encoded.pooled)).squeeze(-1)

    def loss(self, logits, batch):
        return F.mse_loss(logits.float(), batch["labels"].float())

    def predict(self, logits, batch):
        return logits.float()


def build_head(kind: str, hidden_size: int, num_outputs: int, dropout: float = 0.1) -> Head:
    """Create a head of a registered kind sized to the encoder width."""
    try:
        cls = HEADS[kind]
    except KeyError:
        raise ConfigError(f"unknown head kind '{kind}'; known: {', '.join(sorted(HEADS))}") from None
    return cls(hidden_size, num_outputs, dropout)
