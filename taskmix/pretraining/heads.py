"""Heads of the self-supervised pretraining tasks (seed 003): token-level, vocabulary and in-batch.

Every head here also has `metric_sums(logits, batch) -> (total, count)`, the numbers its
task's dev metric is computed from (see `taskmix.pretraining.metrics`).  Heads predicting
over the vocabulary share the encoder's input embedding table: the engine must call
`head.tie_to(encoder)` once after building the head and before training.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from taskmix.errors import ConfigError
from taskmix.models.encoder import Encoder, EncoderOutput
from taskmix.models.heads import IGNORE, Head, register_head
from taskmix.pretraining.mlm import pretrained_mlm_weights



def neighbours(tokens: torch.Tensor, offsets: tuple[int, ...]) -> torch.Tensor:
    """Concatenate, at each position t, the vectors at t + offset (zeros past either end)."""
    length = tokens.shape[1]
    parts = []
    for offset in offsets:
        shifted = torch.zeros_like(tokens)
        if offset >= 0:
            shifted[:, : length - offset] = tokens[:, offset:]
        else:
            shifted[:, -offset:] = tokens[:, : length + offset]
        parts.append(shifted)
    return torch.cat(parts, dim=-1)


@register_head("token_classification")
class TokenClassificationHead(Head):
    """Per-token classifier (TCP, Cap); label -100 marks positions without a target."""

    offsets: tuple[int, ...] = (0,)

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__(hidden_size, num_outputs, dropout)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size * len(self.offsets), num_outputs)

    def forward(self, encoded: EncoderOutput, batch):
        return self.out(self.dropout(neighbours(encoded.tokens, self.offsets)))

    def loss(self, logits, batch):
        return F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].long().flatten(), ignore_index=IGNORE)

    def predict(self, logits, batch):
        return logits.argmax(dim=-1)

    def metric_sums(self, logits, batch) -> tuple[float, int]:
        labels = batch["labels"]
        scored = labels != IGNORE
        return float((self.predict(logits, batch) == labels)[scored].sum()), int(scored.sum())


@register_head("trigram_order")
class TrigramOrderHead(TokenClassificationHead):
    """TGS: the order class of the trigram starting at a position, read from its three tokens."""

    offsets = (0, 1, 2)


@register_head("token_regression")
class TokenRegressionHead(Head):
    """Per-token scalar regression with squared error (TF, TF-IDF, TLP)."""

    def __init__(self, hidden_size: int, num_outputs: int = 1, dropout: float = 0.1):
        super().__init__(hidden_size, 1, dropout)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, encoded, batch):
        return self.out(self.dropout(encoded.tokens)).squeeze(-1)

    def loss(self, logits, batch):
        labels = batch["labels"].float()
        scored = labels != IGNORE
        return F.mse_loss(logits.float()[scored], labels[scored])

    def predict(self, logits, batch):
        return logits.float()

    def metric_sums(self, logits, batch) -> tuple[float, int]:
        labels = batch["labels"].float()
        scored = labels != IGNORE
        return float(((logits.float() - labels)[scored] ** 2).sum()), int(scored.sum())


class TiedVocabularyHead(Head):
    """Predicts a vocabulary id from token vectors: BERT's transform then the tied embedding matrix.

    The decoder matrix is the encoder's input embedding table, held by reference and not
    registered as a parameter of the head, so optimisers and state dicts see it only once
    (as part of the encoder).  Only positions with a label are decoded, which keeps the
    [positions x vocabulary] logits small.
    """

    offsets: tuple[int, ...] = (0,)
    label_key = "labels"

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__(hidden_size, num_outputs, dropout)
        self.transform = nn.Sequential(
            nn.Linear(hidden_size * len(self.offsets), hidden_size), nn.GELU(), nn.LayerNorm(hidden_size, eps=1e-12)
        )
        self.bias = nn.Parameter(torch.zeros(num_outputs))
        self._embedding: list[nn.Embedding] = []  # a list keeps the table out of this module's parameters

    def tie_to(self, encoder: Encoder) -> None:
        """Use the encoder's input embeddings as the output matrix."""
        embedding = encoder.input_embeddings()
        if embedding.num_embeddings != self.num_outputs:
            raise ValueError(f"vocabulary head has {self.num_outputs} outputs but the embedding table has "
                             f"{embedding.num_embeddings} rows")
        self._embedding[:] = [embedding]

    @property
    def decoder_weight(self) -> torch.Tensor:
        if not self._embedding:
            raise RuntimeError(f"{type(self).__name__}: call tie_to(encoder) before using the head")
        return self._embedding[0].weight

    def forward(self, encoded, batch):
        scored = batch[self.label_key] != IGNORE
        features = neighbours(encoded.tokens, self.offsets)[scored]
        return F.linear(self.transform(features), self.decoder_weight, self.bias)

    def loss(self, logits, batch):
        labels = batch[self.label_key]
        return F.cross_entropy(logits.float(), labels[labels != IGNORE].long())

    def predict(self, logits, batch):
        return logits.argmax(dim=-1)

    def metric_sums(self, logits, batch) -> tuple[float, int]:
        """Summed negative log-likelihood and token count (perplexity = exp(total / count))."""
        labels = batch[self.label_key]
        targets = labels[labels != IGNORE].long()
        return float(F.cross_entropy(logits.float(), targets, reduction="sum")), int(targets.numel())


@register_head("masked_lm")
class MaskedLMHead(TiedVocabularyHead):
    """MLM: predict each masked token from its own vector; reads `mlm_labels`.

    `tie_to` also loads the checkpoint's trained MLM transform and bias when it has them
    (BERT checkpoints do; the bundled MiniLM does not, which is logged once).
    """

    label_key = "mlm_labels"

    def tie_to(self, encoder: Encoder) -> None:
        super().tie_to(encoder)
        weights = pretrained_mlm_weights(encoder.name)
        if weights is not None:
            self.load_state_dict(weights, strict=False)


@register_head("span_boundary")
class SpanBoundaryHead(TiedVocabularyHead):
    """SBO: predict a masked token from the vectors of its left and right neighbours only."""

    offsets = (-1, 1)


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of `a` with every row of `b`."""
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


@register_head("quick_thoughts")
class QuickThoughtsHead(Head):
    """QT: rows 0..n-1 of a batch pick their continuation among rows n..2n-1.

    The energy of a pair is the negative cosine of the two [CLS] vectors, so the candidate
    logits are the cosines; `labels[i]` (i < n) is the index of row i's continuation within
    the second half.  The head has no parameters of its own.
    """

    def forward(self, encoded, batch):
        half = encoded.pooled.shape[0] // 2
        return cosine_matrix(encoded.pooled[:half], encoded.pooled[half:])

    def loss(self, logits, batch):
        return F.cross_entropy(logits, batch["labels"][: logits.shape[0]].long())

    def predict(self, logits, batch):
        return logits.argmax(dim=-1)

    def metric_sums(self, logits, batch) -> tuple[float, int]:
        targets = batch["labels"][: logits.shape[0]]
        return float((self.predict(logits, batch) == targets).sum()), int(targets.numel())


@register_head("fastsent")
class FastSentHead(Head):
    """FS: each half's [CLS] vector should point like every token vector of its partner row.

    Row i and row i + n are partners.  The logits are cos([CLS] of the partner, token t);
    the loss is the cross-entropy against target 1.0 with the cosine read as a probability
    through p = (1 + cos) / 2 (the paper does not say how a cosine in [-1, 1] becomes one).
    `labels` is 1.0 at scored tokens and -100 elsewhere.  No parameters of its own.
    """

    def forward(self, encoded, batch):
        half = encoded.pooled.shape[0] // 2
        partner = torch.roll(encoded.pooled, shifts=half, dims=0)
        return F.cosine_similarity(encoded.tokens.float(), partner.float()[:, None, :], dim=-1)

    def _losses(self, logits, batch) -> torch.Tensor:
        scored = batch["labels"] != IGNORE
        probability = ((1 + logits[scored]) / 2).clamp(1e-6, 1.0)
        return F.binary_cross_entropy(probability, batch["labels"][scored].float(), reduction="none")

    def loss(self, logits, batch):
        return self._losses(logits, batch).mean()

    def predict(self, logits, batch):
        return logits

    def metric_sums(self, logits, batch) -> tuple[float, int]:
        losses = self._losses(logits, batch)
        return float(losses.sum()), int(losses.numel())


@register_head("bidirectional_lm")
class BidirectionalLMHead(Head):
    """BiLM (seed 001, §5: language modelling as ELMo does it): the forward direction's state at
    t predicts token t+1, the backward direction's state at t predicts token t-1, through one
    shared softmax over the task's LM classes (`lm_ids`: the corpus's most frequent ids, the
    rest in one class; `taskmix.pretraining.tasks.LM_VOCAB`); padding is never a target.

    It reads `EncoderOutput.directions`, so each prediction sees only the tokens on its own
    side.  Encoders without separate directions (transformers: every state sees both sides)
    are refused when the head is attached (`tie_to`), before training: next-word prediction
    from such states would read the answer, which is why seed 001 trains LMs only on the
    BiLSTM.  Logits are stacked by direction: (directions, B, T, V).  The loss and the
    perplexity pool the target tokens of both directions (perplexity = exp of their mean NLL).
    """

    directions = (0, 1)  # which of (forward, backward) are trained

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__(hidden_size, num_outputs, dropout)
        self.dropout = nn.Dropout(dropout)
        self.out: nn.Linear | None = None

    def tie_to(self, encoder: Encoder) -> None:
        """Size the softmax to the encoder's direction width; refuse encoders without directions."""
        size = getattr(encoder, "direction_size", None)
        if size is None:
            raise ConfigError(
                f"language modelling needs an encoder whose states keep the left-to-right and right-to-left "
                f"directions apart (EncoderOutput.directions, e.g. a one-layer BiLSTM: "
                f"`{{family: bilstm, layers: 1}}`); encoder "
                f"'{encoder.name}' sees both sides of every token, so it would read the word it predicts. "
                f"Use mlm for such encoders")
        self.out = nn.Linear(int(size), self.num_outputs)

    def forward(self, encoded, batch):
        if encoded.directions is None or self.out is None:
            raise ConfigError("language modelling needs EncoderOutput.directions (a BiLSTM-style encoder)")
        return torch.stack([self.out(self.dropout(encoded.directions[d])) for d in self.directions])

    def targets(self, batch) -> torch.Tensor:
        """Per direction and position, the class it predicts (of the next or previous real token) or -100."""
        ids, real = batch["lm_ids"], batch["attention_mask"].bool()
        following = torch.full_like(ids, IGNORE)
        following[:, :-1] = torch.where(real[:, 1:], ids[:, 1:], IGNORE)
        preceding = torch.full_like(ids, IGNORE)
        preceding[:, 1:] = torch.where(real[:, :-1] & real[:, 1:], ids[:, :-1], IGNORE)
        following[~real] = IGNORE
        return torch.stack([following, preceding])[list(self.directions)]

    def _nll(self, logits, batch) -> tuple[torch.Tensor, torch.Tensor]:
        targets = self.targets(batch)
        scored = targets != IGNORE
        return F.cross_entropy(logits.float()[scored], targets[scored], reduction="sum"), scored.sum()

    def loss(self, logits, batch):
        total, count = self._nll(logits, batch)
        return total / count.clamp(min=1)

    def predict(self, logits, batch):
        return logits.argmax(dim=-1)

    def metric_sums(self, logits, batch) -> tuple[float, int]:
        total, count = self._nll(logits, batch)
        return float(total), int(count)


@register_head("forward_lm")
class ForwardLMHead(BidirectionalLMHead):
    """Left-to-right LM: only the forward direction, predicting each next token."""

    directions = (0,)
