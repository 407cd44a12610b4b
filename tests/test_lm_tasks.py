"""Language-model pretraining tasks: each direction predicts a word it has not read; transformers are refused."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from taskmix.cli import main
from taskmix.errors import ConfigError
from taskmix.models.encoder import Encoder, EncoderOutput, encoder_family, load_tokenizer
from taskmix.models.heads import IGNORE, build_head
from taskmix.pretraining import build_pretraining_task, evaluate_batch


class TinyBiLSTM(Encoder):
    """A test double of a BiLSTM encoder: embeddings, one bidirectional LSTM, directions kept apart."""

    def __init__(self, vocab: int, width: int = 8):
        super().__init__()
        self.name, self.hidden_size, self.direction_size = "tiny-bilstm", 2 * width, width
        self.embed = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, batch_first=True, bidirectional=True)

    def input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward(self, input_ids, attention_mask, token_type_ids=None, inputs_embeds=None) -> EncoderOutput:
        states, _ = self.lstm(self.embed(input_ids) if inputs_embeds is None else inputs_embeds)
        width = self.direction_size
        return EncoderOutput(states, states.max(dim=1).values, attention_mask,
                             (states[..., :width], states[..., width:]))


SENTENCES = ["The river runs past the old mill near the town square.",
             "Farmers bring their grain to the mill every autumn morning.",
             "The miller grinds it into flour for the local bakers.",
             "Bread from this town is sold in many nearby villages."]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lm") / "mill.txt"
    path.write_text("\n\n".join(" ".join(SENTENCES[k:] + SENTENCES[:k]) for k in range(4)) + "\n")
    return path


def test_targets_are_the_next_and_previous_real_tokens() -> None:
    head = build_head("bidirectional_lm", 16, 50)
    batch = {"lm_ids": torch.tensor([[1, 7, 8, 2, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0]])}
    forward, backward = head.targets(batch).tolist()
    assert forward == [[7, 8, 2, IGNORE, IGNORE]] and backward == [[IGNORE, 1, 7, 8, IGNORE]]
    assert build_head("forward_lm", 16, 50).targets(batch).tolist() == [forward]


def test_no_direction_sees_the_token_it_predicts(tokenizer) -> None:
    """Perturb input token k: the logits that predict k (forward at k-1, backward at k+1) do not move."""
    torch.manual_seed(0)
    encoder = TinyBiLSTM(len(tokenizer))
    head = build_head("bidirectional_lm", encoder.hidden_size, len(tokenizer), dropout=0.0)
    head.tie_to(encoder)
    ids = torch.tensor([[101, 1996, 2314, 3216, 2627, 1996, 2214, 102]])
    mask = torch.ones_like(ids)
    base = head(encoder(ids, mask), {"input_ids": ids, "attention_mask": mask})
    for k in range(1, 7):
        changed = ids.clone()
        changed[0, k] = 4937
        logits = head(encoder(changed, mask), {"input_ids": changed, "attention_mask": mask})
        assert torch.allclose(logits[0, :, :k], base[0, :, :k])          # forward states up to k-1
        assert torch.allclose(logits[1, :, k + 1:], base[1, :, k + 1:])  # backward states from k+1
        assert not torch.allclose(logits[0, :, k], base[0, :, k])        # the token itself is read after it


def test_lm_task_trains_on_a_directional_encoder(corpus, tokenizer, tmp_path) -> None:
    task = build_pretraining_task("lm", corpus, tokenizer, max_len=32, dev_path=corpus, cache_dir=tmp_path)
    distinct = len(set(tokenizer(" ".join(SENTENCES), add_special_tokens=False)["input_ids"]))
    assert task.head_kind == "bidirectional_lm" and task.num_outputs == distinct + 3  # + [CLS], [SEP], other
    torch.manual_seed(0)
    encoder = TinyBiLSTM(len(tokenizer))
    head = build_head(task.head_kind, encoder.hidden_size, task.num_outputs)
    head.tie_to(encoder)
    batch = next(task.train_batches(2, seed=0))
    logits = head(encoder(batch["input_ids"], batch["attention_mask"]), batch)
    loss = head.loss(logits, batch)
    loss.backward()
    assert encoder.embed.weight.grad.abs().sum() > 0
    sums = evaluate_batch(head, logits.detach(), batch)
    real = int(batch["attention_mask"].sum())
    assert sums.count == 2 * (real - len(batch["input_ids"]))  # every real token but one per row, per direction
    assert task.metric.value(sums) == pytest.approx(math.exp(loss.item()), rel=1e-5)
    assert task.metric.value(sums) == pytest.approx(task.num_outputs, rel=0.2)  # untrained: about uniform


def test_lm_softmax_keeps_the_most_frequent_ids_and_pools_the_rest(corpus, tokenizer, tmp_path) -> None:
    task = build_pretraining_task("lm", corpus, tokenizer, max_len=32, dev_path=corpus, cache_dir=tmp_path,
                                  lm_vocab=5)
    classes = task.context.lm_classes
    the, period, mill = tokenizer.convert_tokens_to_ids(["the", ".", "mill"])
    assert task.num_outputs == 5 and classes[tokenizer.cls_token_id] < 4 and classes[tokenizer.sep_token_id] < 4
    assert classes[the] < 4 and classes[period] < 4  # the two most frequent pieces: "the" (24x) and "." (16x)
    assert classes[mill] == 4 and classes[tokenizer.pad_token_id] == 4  # "mill" (8x) falls in the shared class
    batch = next(task.train_batches(2, seed=0))
    assert torch.equal(batch["lm_ids"], torch.from_numpy(classes)[batch["input_ids"]])
    with pytest.raises(ConfigError, match="lm_vocab must be a whole number of at least 2, got 1"):
        build_pretraining_task("lm", corpus, tokenizer, max_len=32, dev_path=corpus, cache_dir=tmp_path,
                               lm_vocab=1).num_outputs


def test_a_transformer_encoder_is_refused_before_training(tiny_encoder, tmp_path, corpus) -> None:
    with pytest.raises(ConfigError, match="keep the left-to-right and right-to-left directions apart.*mlm"):
        build_head("bidirectional_lm", 16, 30522).tie_to(encoder_family(str(tiny_encoder)).build())
    experiment = {"name": "lm", "encoder": str(tiny_encoder), "tensorboard": False,
                  "stages": [{"name": "lm", "tasks": [{"name": "lm", "corpus": str(corpus)}], "max_steps": 2}]}
    config = tmp_path / "lm.yaml"
    config.write_text(yaml.safe_dump(experiment))
    code = main(["run", str(config), "--output-dir", str(tmp_path / "run"), "--no-progress"])
    assert code != 0 and not (tmp_path / "run" / "results.json").exists()
