"""Seed 001's target-task models for frozen encoders (§5 "Task-Specific Components"; App. A; App. B Table 5).

Single sentence: a linear projection of the encoder's token states, max-pooled over time,
into an MLP.  Sentence pair: the same projection and pooling on each sentence, then the
heuristic features [h1; h2; h1·h2; h1−h2] (Mou et al. 2016) into the MLP.  The large size
replaces the projection of a pair by App. A's cross-sentence attention: attention between
all pairs of word representations of the two sentences, then a BiLSTM (512 per direction,
"512D×2") over each sentence's states and their attended summaries, max-pooled (BiDAF-style).

The MLP's output goes to the kind's own head (`build_head`), which keeps the loss and
prediction logic of classification and regression in one place; its dropout is the size's
classifier dropout.  Dropout on the encoder's token states (seed 001: 0.2 after ELMo) is
the stage's `dropout`, applied here, so it still acts on cached frozen features.

Choices where the papers are silent: the MLP is dropout → linear → tanh → layer norm, as
jiant's classifier module is built, before the kind's dropout → linear output; pair rows
are split by token type (first segment: token type 0, including [CLS] and the first
separator); the attention scores are plain dot products; a single-sentence task in the
large group gets no attention (there is no second sentence), only the larger sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from taskmix.errors import ConfigError
from taskmix.models.encoder import EncoderOutput
from taskmix.models.heads import Head, register_head_model
from taskmix.models.recurrent import max_pool


@dataclass(frozen=True)
class Table5Size:
    """One column of App. B Table 5."""

    projection: int  # max-pool projection dim
    hidden: int  # classifier hidden dim
    dropout: float  # classifier dropout rate
    attention: bool  # cross-sentence attention (pair tasks)
    validation_steps: int  # steps between validations


SIZES = {
    "small": Table5Size(128, 128, 0.4, False, 100),
    "medium": Table5Size(256, 256, 0.2, False, 100),
    "large": Table5Size(512, 512, 0.2, True, 1000),
}
# Table 5's grouping of the GLUE tasks (registered task names).
TASK_GROUPS = {"rte": "small", "wnli": "small", "cola": "medium", "sst-2": "medium", "mrpc": "medium",
               "sts-b": "large", "qqp": "large", "mnli": "large", "qnli": "large"}
# Other tasks by their training rows: the grouped GLUE tasks have at most 2.5k rows when small (RTE,
# WNLI), 3.7k-67k when medium and 105k-393k when large (STS-B, 7k, "patterns with the larger tasks").
SMALL_BELOW = 3_000
LARGE_FROM = 100_000


def resolve_size(size: str, task_name: str, train_rows: int) -> str:
    """A size group: the given one, or for `auto` Table 5's group of a GLUE task, else by training rows."""
    if size != "auto":
        return size
    if task_name in TASK_GROUPS:
        return TASK_GROUPS[task_name]
    return "small" if train_rows < SMALL_BELOW else "large" if train_rows >= LARGE_FROM else "medium"


def pair_features(h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
    """[h1; h2; h1·h2; h1−h2] (seed 001 §5, after Mou et al. 2016)."""
    return torch.cat([h1, h2, h1 * h2, h1 - h2], dim=-1)


def segment_masks(mask: torch.Tensor, token_types: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The positions of the first and the second sentence of each row."""
    real = mask.bool()
    return real & (token_types == 0), real & (token_types == 1)


def split_pair(tokens: torch.Tensor, mask: torch.Tensor, token_types: torch.Tensor):
    """Each sentence of a pair as its own left-aligned padded batch: (s1, len1, s2, len2).

    The first segment is a prefix of each row (collate assigns token type 1 from the second
    segment's start to the row's end), so the second starts at the first's length.
    """
    first, second = segment_masks(mask, token_types)
    len1, len2 = first.sum(dim=1), second.sum(dim=1)
    width1, width2 = max(1, int(len1.max())), max(1, int(len2.max()))
    positions = torch.arange(width2, device=tokens.device)
    index = (len1.unsqueeze(1) + positions).clamp(max=tokens.shape[1] - 1)
    s2 = tokens.gather(1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
    return tokens[:, :width1], len1, s2, len2


def length_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


class CrossAttention(nn.Module):
    """App. A: attention between all pairs of words of the two sentences, then a BiLSTM, max-pooled."""

    def __init__(self, input_size: int, width: int):
        super().__init__()
        self.lstm = nn.LSTM(2 * input_size, width, batch_first=True, bidirectional=True)
        self.output_size = 2 * width

    def forward(self, s1, len1, s2, len2) -> tuple[torch.Tensor, torch.Tensor]:
        m1, m2 = length_mask(len1, s1.shape[1]), length_mask(len2, s2.shape[1])
        scores = torch.bmm(s1, s2.transpose(1, 2))  # (batch, words of s1, words of s2)
        to_s2 = scores.masked_fill(~m2.unsqueeze(1), float("-inf")).softmax(dim=2).nan_to_num(0.0)
        to_s1 = scores.transpose(1, 2).masked_fill(~m1.unsqueeze(1), float("-inf")).softmax(dim=2).nan_to_num(0.0)
        x1 = torch.cat([s1, torch.bmm(to_s2, s2)], dim=-1)
        x2 = torch.cat([s2, torch.bmm(to_s1, s1)], dim=-1)
        return max_pool(self._run(x1, len1), m1), max_pool(self._run(x2, len2), m2)

    def _run(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


class SesameHead(Head):
    """Pooling and MLP of one Table-5 size in front of the kind's head (see the module docstring)."""

    def __init__(self, inner: Head, hidden_size: int, dropout: float, size: str, pair: bool, attention_width: int):
        super().__init__(hidden_size, inner.num_outputs, dropout)
        dims = SIZES[size]
        self.size, self.pair, self.attention_width = size, pair, attention_width
        self.validation_steps = dims.validation_steps
        self.token_dropout = nn.Dropout(dropout)
        self.attention = CrossAttention(hidden_size, attention_width) if pair and dims.attention else None
        self.projection = None if self.attention is not None else nn.Linear(hidden_size, dims.projection)
        pooled = self.attention.output_size if self.attention is not None else dims.projection
        self.mlp = nn.Sequential(nn.Dropout(dims.dropout), nn.Linear(4 * pooled if pair else pooled, dims.hidden),
                                 nn.Tanh(), nn.LayerNorm(dims.hidden))
        self.out = inner

    def features(self, encoded: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The MLP's input: the pooled sentence vector, or a pair's heuristic feature vector."""
        tokens = self.token_dropout(encoded.tokens)
        if not self.pair:
            return max_pool(self.projection(tokens), encoded.mask)
        types = batch["token_type_ids"]
        if self.attention is not None:
            return pair_features(*self.attention(*split_pair(tokens, encoded.mask, types)))
        projected = self.projection(tokens)
        first, second = segment_masks(encoded.mask, types)
        return pair_features(max_pool(projected, first), max_pool(projected, second))

    def forward(self, encoded, batch):
        pooled = self.mlp(self.features(encoded, batch))
        return self.out(EncoderOutput(tokens=encoded.tokens, pooled=pooled, mask=encoded.mask), batch)

    def loss(self, logits, batch):
        return self.out.loss(logits, batch)

    def predict(self, logits, batch):
        return self.out.predict(logits, batch)

    def distribution_logits(self, logits):
        return self.out.distribution_logits(logits)

    def model_spec(self) -> dict:
        return {"model": "sesame", "size": self.size, "pair": self.pair, "attention_width": self.attention_width}


@register_head_model("sesame")
def build_sesame_head(make_inner: Callable[[int, float], Head], hidden_size: int, dropout: float,
                      spec: dict) -> SesameHead:
    """A sesame head from its spec (size already resolved from `auto`)."""
    if spec.get("size") not in SIZES:
        raise ConfigError(f"sesame head: size must be one of {', '.join(SIZES)}, got {spec.get('size')!r}")
    dims = SIZES[spec["size"]]
    return SesameHead(make_inner(dims.hidden, dims.dropout), hidden_size, dropout, spec["size"], bool(spec["pair"]),
                      int(spec["attention_width"]))
