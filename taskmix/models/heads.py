"""Task heads: small modules on top of the encoder that return logits, a loss and predictions.

A head is registered under a kind name; `build_head` creates one from the encoder width,
so adding a head kind is one class plus one `@register_head` line.  A head model
(`register_head_model`, e.g. seed 001's sesame heads in `taskmix.models.sesame`) wraps the
kind's head: it computes the pooled vector the kind's head reads, which keeps the kind's
loss and prediction logic in one place.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from taskmix.errors import ConfigError
from taskmix.models.encoder import EncoderOutput

HEADS: dict[str, type["Head"]] = {}
# Head model name -> builder(make_inner, hidden_size, dropout, spec); make_inner(width, dropout) builds the
# kind's head on the head model's pooled vector.
HEAD_MODELS: dict[str, Callable[..., "Head"]] = {}

# Label of positions and rows without a target: PyTorch's cross-entropy skips it by default.
IGNORE = -100


def register_head(kind: str) -> Callable[[type["Head"]], type["Head"]]:
    def add(cls: type["Head"]) -> type["Head"]:
        HEADS[kind] = cls
        return cls

    return add


def register_head_model(name: str) -> Callable[[Callable[..., "Head"]], Callable[..., "Head"]]:
    def add(builder: Callable[..., "Head"]) -> Callable[..., "Head"]:
        HEAD_MODELS[name] = builder
        return builder

    return add


class Head(nn.Module):
    """Interface: `forward` maps encoder output to logits; `loss` and `predict` interpret them.

    `reads_pooled`: the head reads only `EncoderOutput.pooled`, so a head model may supply
    that vector.  `validation_steps`: the validation interval the head's recipe asks for
    when the stage sets none (None: the stage's default).
    """

    reads_pooled: bool = False
    validation_steps: int | None = None

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

    def model_spec(self) -> dict | None:
        """The head model that rebuilds this head (checkpoints record it); None for the kind's own head."""
        return None


@register_head("classification")
class ClassificationHead(Head):
    """BERT-style classifier on the pooled vector: dropout then one linear layer."""

    reads_pooled = True

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

    reads_pooled = True

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


def build_head(kind: str, hidden_size: int, num_outputs: int, dropout: float = 0.1,
               model: dict | None = None) -> Head:
    """Create a head of a registered kind sized to the encoder width, wrapped in a head model if `model`
    (a `Head.model_spec` record: its `model` key names the head model) is given."""
    try:
        cls = HEADS[kind]
    except KeyError:
        raise ConfigError(f"unknown head kind '{kind}'; known: {', '.join(sorted(HEADS))}") from None
    if model is None:
        return cls(hidden_size, num_outputs, dropout)
    if model.get("model") not in HEAD_MODELS:
        raise ConfigError(f"unknown head model {model.get('model')!r}; known: {', '.join(sorted(HEAD_MODELS))}")
    if not cls.reads_pooled:
        raise ConfigError(f"head model {model['model']!r} supplies a pooled vector, but '{kind}' heads do not "
                          f"read one; use head_model: pooled for this task")
    return HEAD_MODELS[model["model"]](lambda width, p: cls(width, num_outputs, p), hidden_size, dropout, model)
