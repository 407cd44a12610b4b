"""Task heads: small modules on top of the encoder that return logits, a loss and predictions.

A head is registered under a kind name; `build_head` creates one from the encoder width,
so adding a head kind is one class plus one `@register_head` line.  A head model
(`register_head_model`, e.g. seed 001's sesame heads in `taskmix.models.sesame`) wraps the
kind's head: it computes the pooled vector the kind's head reads, which keeps the kind's
loss and prediction logic in one place.

Heads that take settings (a decoder's attention and beam size, a QA head's longest answer)
declare them as keyword-only arguments of `__init__` with their defaults; a task gives its
own values (`Task.head_settings`), a stage entry may override them (`head_settings:` in
YAML), and `build_head` checks the names, so a misspelt setting is a config error, never
a silently ignored key.  Checkpoints record the settings a head was built with.
"""

from __future__ import annotations

import inspect
from types import MappingProxyType
from typing import Any, Callable, Mapping

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
    settings: Mapping[str, Any] = MappingProxyType({})  # what `build_head` built it with

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


def positive_int(name: str, value: Any) -> int:
    """A head setting that must be a positive integer (YAML may give a string or a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def head_settings(kind: str) -> dict[str, Any]:
    """The settings a head kind takes, with their defaults (its keyword-only `__init__` arguments)."""
    parameters = inspect.signature(head_class(kind).__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_head_settings(kind: str, settings: Mapping[str, Any], where: str) -> None:
    """Raise a ConfigError naming `where` if `settings` has a name the head kind does not take."""
    known = head_settings(kind)
    unknown = sorted(set(settings) - set(known))
    if unknown:
        offer = ", ".join(f"{k} (default {v!r})" for k, v in known.items()) or "none"
        raise ConfigError(f"{where}: '{kind}' heads have no setting {', '.join(map(repr, unknown))}; "
                          f"their settings: {offer}")


def head_class(kind: str) -> type["Head"]:
    try:
        return HEADS[kind]
    except KeyError:
        raise ConfigError(f"unknown head kind '{kind}'; known: {', '.join(sorted(HEADS))}") from None


def build_head(kind: str, hidden_size: int, num_outputs: int, dropout: float = 0.1,
               model: dict | None = None, settings: Mapping[str, Any] | None = None) -> Head:
    """Create a head of a registered kind sized to the encoder width, wrapped in a head model if `model`
    (a `Head.model_spec` record: its `model` key names the head model) is given; `settings` are
    the head's own (see the module docstring)."""
    cls = head_class(kind)
    settings = dict(settings or {})
    check_head_settings(kind, settings, "head settings")

    def make(width: int, p: float) -> Head:
        try:
            return cls(width, num_outputs, p, **settings)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"'{kind}' head settings {settings}: {err}") from err

    if model is None:
        head = make(hidden_size, dropout)
    elif model.get("model") not in HEAD_MODELS:
        raise ConfigError(f"unknown head model {model.get('model')!r}; known: {', '.join(sorted(HEAD_MODELS))}")
    elif not cls.reads_pooled:
        raise ConfigError(f"head model {model['model']!r} supplies a pooled vector, but '{kind}' heads do not "
                          f"read one; use head_model: pooled for this task")
    else:
        head = HEAD_MODELS[model["model"]](make, hidden_size, dropout, model)
    head.settings = settings
    return head
