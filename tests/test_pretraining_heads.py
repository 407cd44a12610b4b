"""Pretraining heads on the tiny random encoder: tying, one forward/backward per task, metrics."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from taskmix.models.encoder import encoder_family, load_tokenizer
from taskmix.models.heads import build_head
from taskmix.pretraining import TASKS, TaskIdEmbedding, build_pretraining_task, evaluate_batch
from taskmix.pretraining.metrics import MetricSums

SENTENCES = [
    "The river runs past the old mill near the town square.",
    "Farmers bring their grain to the mill every autumn morning.",
    "The miller grinds it into flour for the local bakers.",
    "Bread from this town is sold in many nearby villages.",
    "Visitors often photograph the wheel turning in the water.",
    "A small museum now explains how the machinery once worked.",
]


@pytest.fixture(scope="module")
def encoder(tiny_encoder):
    return encoder_family(str(tiny_encoder)).build()


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "mill.txt"
    documents = [" ".join(SENTENCES[k:] + SENTENCES[:k]) for k in range(6)]
    path.write_text("\n\n".join(documents) + "\n")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


def test_mlm_head_is_tied_to_the_input_embeddings(encoder, caplog):
    head = build_head("masked_lm", encoder.hidden_size, encoder.input_embeddings().num_embeddings)
    with caplog.at_level(logging.INFO, logger="taskmix.pretraining.mlm"):
        head.tie_to(encoder)
        build_head("masked_lm", encoder.hidden_size, encoder.input_embeddings().num_embeddings).tie_to(encoder)
    assert head.decoder_weight.data_ptr() == encoder.input_embeddings().weight.data_ptr()
    assert all(p is not encoder.input_embeddings().weight for p in head.parameters())  # counted once, in the encoder
    fresh = [r for r in caplog.records if "no MLM head" in r.getMessage()]
    assert len(fresh) <= 1  # logged once per encoder (possibly earlier in the test run)


@pytest.mark.parametrize("name", [n for n in TASKS if TASKS[n].head_kind not in ("bidirectional_lm", "forward_lm")])
def test_forward_backward_each_task(name, encoder, corpus_file, tokenizer, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "cache"
    task = build_pretraining_task(name, corpus_file, tokenizer, max_len=32, cache_dir=cache, with_mlm=name == "tf")
    head = build_head(task.head_kind, encoder.hidden_size, task.num_outputs)
    if hasattr(head, "tie_to"):
        head.tie_to(encoder)
    batch = next(task.train_batches(4, seed=0))
    encoder.zero_grad()
    encoded = encoder(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    logits = head(encoded, batch)
    loss = head.loss(logits, batch)
    assert torch.isfinite(loss)
    loss.backward()
    grad = encoder.input_embeddings().weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    sums = evaluate_batch(head, logits.detach(), batch)
    assert sums.count > 0 and math.isfinite(task.metric.value(sums))
    if name == "tf":
        assert "mlm_labels" in batch and (batch["mlm_labels"] != -100).any()


def test_metric_values():
    perplexity = TASKS["mlm"].metric
    assert perplexity.value(MetricSums(2 * math.log(5), 2)) == pytest.approx(5)
    accuracy = TASKS["asp"].metric
    assert accuracy.value(MetricSums(3, 4) + MetricSums(1, 4)) == 0.5


def test_task_id_embeddings(encoder):
    ids = torch.tensor([[101, 7592, 102]])
    module = TaskIdEmbedding(encoder.hidden_size)
    plain = encoder.input_embeddings()(ids)
    assert torch.equal(module.embed(encoder, ids, 3), plain)  # starts at zero
    with torch.no_grad():
        module.table.weight[3] = 1.0
    assert torch.allclose(module.embed(encoder, ids, 3), plain + 1.0)
    module.enabled = False
    assert torch.equal(module.embed(encoder, ids, 3), plain)
    out = encoder(ids, torch.ones_like(ids), inputs_embeds=module.embed(encoder, ids, 3))
    assert out.tokens.shape == (1, 3, encoder.hidden_size)
