"""The `bilstm` encoder family: seed 001's encoder pretrained from scratch, and its random baseline.

Frozen pretrained word vectors (GloVe 6B 50d, standing in for ELMo's character CNN, which is
not available offline) feed a 2-layer BiLSTM; task models see the top layer's states
concatenated with the input vectors (the skip connection, `SkipBiLSTM`), and the pooled
vector is their max over time.  Words outside the vocabulary share one trained [UNK]
vector; the boundary tokens ([CLS], [SEP]) have trained vectors too.

`random: true` is seed 001's "Random" row: the same network with random weights, frozen in
every stage (its parameters never take gradients) and kept in eval mode, so it is a fixed
function of the experiment's seed, which draws the weights (`Assembly.fresh_model`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from taskmix.models.encoder import Encoder, EncoderFamily, EncoderOutput, register_encoder_family
from taskmix.models.recurrent import SkipBiLSTM, max_pool
from taskmix.models.word_tokenizer import SPECIAL_TOKENS, word_tokenizer
from taskmix.models.word_vectors import load_vectors, vector_files


class WordVectorInput(nn.Module):
    """Ids -> vectors: ids below the special-token count are trained vectors, the rest rows of the frozen table.

    The table is a non-persistent buffer: it is read from its package at build time and kept out of
    state dicts, so checkpoints and cached stages hold only the trained rows.
    """

    def __init__(self, table: np.ndarray, specials: int):
        super().__init__()
        self.register_buffer("table", torch.tensor(table), persistent=False)
        self.special = nn.Parameter(torch.randn(specials, table.shape[1]) * float(table.std()))
        self.embedding_dim = table.shape[1]
        self.num_embeddings = specials + table.shape[0]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        count = len(self.special)
        is_special = (ids < count)[..., None]
        words = self.table[(ids - count).clamp(min=0)]
        return torch.where(is_special, self.special[ids.clamp(max=count - 1)].to(words.dtype), words)

    @property
    def weight(self) -> torch.Tensor:
        """The whole table in id order (tied vocabulary heads decode with it)."""
        return torch.cat([self.special, self.table.to(self.special.dtype)])


class BiLSTMEncoder(Encoder):
    def __init__(self, table: np.ndarray, hidden: int, layers: int, dropout: float, random: bool):
        super().__init__()
        self.name = "bilstm"
        self.embeddings = WordVectorInput(table, len(SPECIAL_TOKENS))
        self.lstm = SkipBiLSTM(self.embeddings.embedding_dim, hidden, layers, dropout)
        self.hidden_size = self.lstm.output_size
        # Each reading direction's width, for the BiLM heads.  Only a one-layer stack keeps the
        # directions apart: in a stacked bidirectional LSTM the second layer's forward cell reads
        # the first layer's backward states, which have seen the words to the right.
        self.direction_size = hidden if layers == 1 else None
        self.random = random
        if random:
            self.requires_grad_(False)
            self.eval()

    def forward(self, input_ids, attention_mask, token_type_ids=None, inputs_embeds=None) -> EncoderOutput:
        vectors = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        tokens = self.lstm(vectors, attention_mask, token_type_ids)
        width = self.direction_size  # tokens are [forward; backward; input vectors]
        directions = None if width is None else (tokens[..., :width], tokens[..., width:2 * width])
        return EncoderOutput(tokens=tokens, pooled=max_pool(tokens, attention_mask), mask=attention_mask,
                             directions=directions)

    def train(self, mode: bool = True) -> "BiLSTMEncoder":
        """The random encoder is a fixed function: always in eval mode (no dropout)."""
        return super().train(mode and not self.random)

    def input_embeddings(self) -> WordVectorInput:
        return self.embeddings


@register_encoder_family
class BiLSTMFamily(EncoderFamily):
    """Settings: `hidden` (per direction), `layers`, `dropout`, `max_words`, `vectors`, `random`."""

    family = "bilstm"

    def check(self) -> None:
        vector_files(self.settings["vectors"])

    def tokenizer(self):
        return word_tokenizer(self.settings["vectors"], self.settings["max_words"])

    def build(self) -> BiLSTMEncoder:
        table = load_vectors(self.settings["vectors"]).matrix
        return BiLSTMEncoder(table, self.settings["hidden"], self.settings["layers"], self.settings["dropout"],
                             self.settings["random"])

    def weight_source(self) -> str:
        return str(Path(vector_files(self.settings["vectors"])[0]).parent)

    def row_label(self) -> str:
        return "random bilstm" if self.settings["random"] else "bilstm"
