"""A frozen Hugging Face encoder with ELMo's scalar mix (`layer_mix`), optionally with a BiLSTM on top."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from taskmix.models.bilstm import BiLSTMEncoder
from taskmix.models.encoder import HFEncoder


@pytest.fixture
def batch(minilm_tokenizer):
    encoded = minilm_tokenizer(["a good film", "the plot is awful and long"], ["great", "bad"], padding=True,
                               return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"]


def test_mix_is_the_softmax_weighted_sum_of_every_hidden_layer_times_gamma(tiny_encoder, batch):
    encoder = HFEncoder(str(tiny_encoder), layer_mix=True)
    with torch.no_grad():
        encoder.mix.weights.copy_(torch.tensor([0.3, -0.7]))
        encoder.mix.gamma.fill_(1.5)
    ids, mask, types = batch
    out = encoder(ids, mask, types)
    embeddings, layer = encoder.model(input_ids=ids, attention_mask=mask, token_type_ids=types,
                                      output_hidden_states=True).hidden_states  # 1 layer: 2 hidden states
    first = math.exp(0.3) / (math.exp(0.3) + math.exp(-0.7))
    assert torch.allclose(out.tokens, 1.5 * (first * embeddings + (1 - first) * layer), atol=1e-6)
    assert torch.equal(out.pooled[1], out.tokens[1][mask[1].bool()].max(dim=0).values)  # max-pooled


def test_only_the_mix_weights_train_when_the_encoder_is_frozen(tiny_encoder):
    encoder = HFEncoder(str(tiny_encoder), layer_mix=True, bilstm_on_top={"hidden": 4, "layers": 2})
    kept = encoder.trainable_when_frozen()
    assert len(kept) == 2 and kept[0] is encoder.mix.weights and kept[1] is encoder.mix.gamma
    assert not any(p.requires_grad for p in encoder.model.parameters())  # the transformer never trains
    assert all(p.requires_grad for p in encoder.top.parameters())  # the BiLSTM trains unless a stage freezes it
    assert HFEncoder(str(tiny_encoder)).trainable_when_frozen() == []
    table = np.zeros((3, 2), dtype=np.float32)
    assert BiLSTMEncoder(table, hidden=2, layers=1, dropout=0.0, random=False).trainable_when_frozen() == []


def test_bilstm_on_top_sees_the_mixed_layers_through_the_skip_connection(tiny_encoder, batch):
    encoder = HFEncoder(str(tiny_encoder), layer_mix=True, bilstm_on_top={"hidden": 4, "layers": 2})
    mixed_only = HFEncoder(str(tiny_encoder), layer_mix=True)
    encoder.train()
    assert not encoder.model.training and encoder.top.training  # the frozen transformer runs without dropout
    encoder.eval()
    ids, mask, types = batch
    out = encoder(ids, mask, types)
    assert encoder.hidden_size == 2 * 4 + 16 and out.tokens.shape[-1] == 24
    valid = mask.bool()
    assert torch.allclose(out.tokens[..., 8:][valid], mixed_only(ids, mask, types).tokens[valid], atol=1e-6)
