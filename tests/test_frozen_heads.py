"""Frozen encoders and seed 001's target-task heads (App. B Table 5), and the frozen-feature cache.

Runs on the tiny random encoder; the end-to-end run uses real GLUE data with tiny limits.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from taskmix.cli import main
from taskmix.config import parse_experiment
from taskmix.errors import ConfigError
from taskmix.evaluate import model_from_checkpoint, read_checkpoint
from taskmix.experiment import ExperimentRunner, pipeline_label
from taskmix.models.encoder import EncoderOutput
from taskmix.models.heads import ClassificationHead, RegressionHead, build_head
from taskmix.models.sesame import SesameHead, pair_features, resolve_size, split_pair
from taskmix.models.encoder import encoder_family
from taskmix.runtime import Runtime
from taskmix.study.grid import expand, load_study
from taskmix.tasks import get_task
from taskmix.training import frozen_features
from taskmix.training.freezing import apply_freezing
from taskmix.training.stage import StageTrainer

CPU = torch.device("cpu")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMALL = {"max_train_examples": 32, "max_dev_examples": 24, "batch_size": 8, "predict_test": False}


def runner(tmp_path: Path, data_dir: Path, tiny_encoder: Path, stage: dict[str, Any]) -> ExperimentRunner:
    cfg = parse_experiment({"encoder": str(tiny_encoder), "precision": "fp32", "tensorboard": False,
                            "cache_dir": str(tmp_path / "cache"), "stages": [{"name": "s", **SMALL, **stage}]})
    return ExperimentRunner(cfg, data_dir, tmp_path / "run", tmp_path)


def trainer_for(tmp_path: Path, data_dir: Path, tiny_encoder: Path, stage: dict[str, Any]):
    exp = runner(tmp_path, data_dir, tiny_encoder, stage)
    cfg = exp.cfg.stages[0]
    tasks = exp.assembly.stage_tasks(cfg.tasks, cfg, np.random.default_rng(0))
    model = exp.assembly.fresh_model(None)
    torch.manual_seed(0)
    exp.assembly.add_heads(model, cfg.tasks, {}, cfg)
    trainer = StageTrainer(model, cfg, tasks, device=CPU, precision="fp32", seed=0, pad_id=exp.rt.pad_id,
                           progress=False, feature_cache=exp.rt.feature_cache)
    return exp, model, trainer


# -- frozen: true ------------------------------------------------------------------------------

def test_frozen_encoder_is_bit_identical_and_has_no_optimizer_state(tmp_path, data_dir, tiny_encoder, caplog):
    exp, model, trainer = trainer_for(tmp_path, data_dir, tiny_encoder, {
        "tasks": ["rte"], "frozen": True, "head_model": "sesame", "max_steps": 4, "validate_every": 2})
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    heads_before = {k: v.clone() for k, v in model.heads.state_dict().items()}
    checkpoint = tmp_path / "stage.pt"
    with caplog.at_level(logging.INFO, logger="taskmix.training.stage"):
        trainer.train(checkpoint=checkpoint)
    after = model.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(heads_before[k], v) for k, v in model.heads.state_dict().items())
    head_params = [p for p in model.heads.parameters()]
    optimizer = torch.load(checkpoint, weights_only=False)["optimizer"]  # saved at the step-2 validation
    indexed = [i for group in optimizer["param_groups"] for i in group["params"]]
    assert len(indexed) == len(head_params) and len(optimizer["state"]) == len(head_params)
    encoder_count = sum(p.numel() for p in model.encoder.parameters())
    head_count = sum(p.numel() for p in head_params)
    assert f"{head_count} trainable parameters, {encoder_count} frozen (encoder frozen)" in caplog.text


def test_frozen_encoder_runs_in_eval_mode_while_heads_train(tmp_path, data_dir, tiny_encoder):
    _, model, trainer = trainer_for(tmp_path, data_dir, tiny_encoder, {
        "tasks": ["rte"], "frozen": True, "cache_features": False, "max_steps": 3, "dropout": 0.3})
    modes: list[tuple[bool, bool]] = []
    model.encoder.register_forward_pre_hook(lambda module, args: modes.append(
        (module.training, next(iter(model.heads.values())).training)))
    trainer.train()
    training_calls = [m for m in modes if m[1]]
    assert len(training_calls) == 3 and not any(encoder for encoder, _ in training_calls)


def test_trainable_when_frozen_parameters_are_the_only_encoder_parameters_trained(tmp_path, data_dir,
                                                                                  tiny_encoder, monkeypatch):
    exp, model, trainer = trainer_for(tmp_path, data_dir, tiny_encoder, {
        "tasks": ["rte"], "frozen": True, "max_steps": 3})
    kept = model.encoder.model.embeddings.LayerNorm.weight
    monkeypatch.setattr(type(model.encoder), "trainable_when_frozen", lambda self: [kept])
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    trainer.train()
    changed = {k for k, v in model.encoder.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == {"model.embeddings.LayerNorm.weight"}
    assert not (tmp_path / "cache" / "frozen_features").exists()  # a trainable encoder is never cached


@pytest.mark.parametrize("stage, message", [
    ({"frozen": True, "r3f": {}}, "drop r3f or set frozen: false"),
    ({"head_size": "small"}, "head_size apply only with head_model: sesame"),
    ({"cache_features": False}, "cache_features applies only with frozen: true"),
])
def test_meaningless_stage_combinations_are_config_errors(stage, message):
    with pytest.raises(ConfigError, match=message):
        parse_experiment({"stages": [{"name": "s", "tasks": ["rte"], **stage}]})


def test_gradient_checkpointing_with_every_stage_frozen_is_a_cli_error(tmp_path, data_dir, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"encoder": {"name": "minilm", "gradient_checkpointing": True},
                                    "stages": [{"name": "s", "tasks": ["rte"], "frozen": True}]}))
    code = main(["run", str(path), "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "o"), "--no-progress"])
    assert code == 2
    assert "gradient_checkpointing has no effect when every stage has frozen: true" in capsys.readouterr().err


# -- Table 5 heads -----------------------------------------------------------------------------

def shapes(head: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in head.named_parameters()}


@pytest.mark.parametrize("size, proj, hidden, dropout", [("small", 128, 128, 0.4), ("medium", 256, 256, 0.2),
                                                         ("large", 512, 512, 0.2)])
def test_single_sentence_sizes_follow_table_5(size, proj, hidden, dropout):
    head = build_head("classification", 16, 3, 0.2, {"model": "sesame", "size": size, "pair": False,
                                                      "attention_width": 512})
    assert isinstance(head.out, ClassificationHead)
    assert shapes(head) == {"projection.weight": (proj, 16), "projection.bias": (proj,),
                            "mlp.1.weight": (hidden, proj), "mlp.1.bias": (hidden,),
                            "mlp.3.weight": (hidden,), "mlp.3.bias": (hidden,),
                            "out.out.weight": (3, hidden), "out.out.bias": (3,)}
    assert head.mlp[0].p == dropout and head.out.dropout.p == dropout and head.token_dropout.p == 0.2
    assert head.validation_steps == (1000 if size == "large" else 100)


def test_pair_sizes_and_the_large_cross_sentence_attention():
    medium = build_head("regression", 16, 1, 0.2, {"model": "sesame", "size": "medium", "pair": True,
                                                    "attention_width": 512})
    assert isinstance(medium.out, RegressionHead) and medium.attention is None
    assert shapes(medium)["mlp.1.weight"] == (256, 4 * 256)
    large = build_head("classification", 16, 2, 0.2, {"model": "sesame", "size": "large", "pair": True,
                                                       "attention_width": 512})
    got = shapes(large)
    assert large.projection is None
    assert got["attention.lstm.weight_ih_l0"] == (4 * 512, 2 * 16)  # BiLSTM over [s; attended s'], 512 per direction
    assert got["attention.lstm.weight_hh_l0_reverse"] == (4 * 512, 512)
    assert got["mlp.1.weight"] == (512, 4 * 2 * 512) and got["out.out.weight"] == (2, 512)
    narrow = build_head("classification", 16, 2, 0.2, {"model": "sesame", "size": "large", "pair": True,
                                                        "attention_width": 32})
    assert shapes(narrow)["attention.lstm.weight_ih_l0"] == (4 * 32, 32)


def test_auto_size_follows_table_5_groups_then_training_rows():
    groups = {"rte": "small", "wnli": "small", "cola": "medium", "sst-2": "medium", "mrpc": "medium",
              "sts-b": "large", "qqp": "large", "mnli": "large", "qnli": "large"}
    for task, group in groups.items():
        assert resolve_size("auto", task, 50) == group
    assert [resolve_size("auto", "boolq", n) for n in (2999, 3000, 99_999, 100_000)] == \
        ["small", "medium", "medium", "large"]
    assert resolve_size("small", "qnli", 10**6) == "small"


def test_assembly_resolves_auto_sizes_and_pairs_from_the_task(tmp_path, data_dir, tiny_encoder):
    exp = runner(tmp_path, data_dir, tiny_encoder, {"tasks": ["rte", "cola"], "head_model": "sesame"})
    stage = exp.cfg.stages[0]
    rte, cola = (exp.assembly.head_model(ref, stage) for ref in stage.tasks)
    assert rte == {"model": "sesame", "size": "small", "pair": True, "attention_width": 512}
    assert cola == {"model": "sesame", "size": "medium", "pair": False, "attention_width": 512}


def test_sesame_heads_set_the_validation_interval_unless_the_stage_does(tmp_path, data_dir, tiny_encoder):
    _, _, implicit = trainer_for(tmp_path, data_dir, tiny_encoder, {"tasks": ["rte", "cola"], "head_model": "sesame"})
    assert implicit.validation_interval(7) == 100 * 2
    _, _, explicit = trainer_for(tmp_path, data_dir, tiny_encoder, {"tasks": ["rte"], "head_model": "sesame",
                                                                    "validate_every": "epoch"})
    assert explicit.validation_interval(7) == 7


def pair_batch() -> tuple[EncoderOutput, dict[str, torch.Tensor]]:
    """Two rows of width 6: [a a | b b b] + pad and [a | b] + pads; padded states are huge."""
    torch.manual_seed(1)
    tokens = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0]])
    types = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 0, 0, 0, 0]])
    tokens[mask == 0] = 1e6
    return EncoderOutput(tokens=tokens, pooled=tokens[:, 0], mask=mask), {"token_type_ids": types}


def test_pair_heuristic_features_equal_a_hand_computation():
    encoded, batch = pair_batch()
    head = build_head("classification", 4, 2, 0.0, {"model": "sesame", "size": "small", "pair": True,
                                                     "attention_width": 8}).eval()
    weight = head.projection.weight.detach().numpy()
    bias = head.projection.bias.detach().numpy()
    x = encoded.tokens.numpy()
    segments = [([0, 1], [2, 3, 4]), ([0], [1])]
    expected = []
    for row, (first, second) in enumerate(segments):
        h1 = (x[row, first] @ weight.T + bias).max(axis=0)
        h2 = (x[row, second] @ weight.T + bias).max(axis=0)
        expected.append(np.concatenate([h1, h2, h1 * h2, h1 - h2]))
    got = head.features(encoded, batch).detach().numpy()
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-5, atol=1e-5)
    assert torch.equal(pair_features(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 5.0]])),
                       torch.tensor([[1.0, 2.0, 3.0, 5.0, 3.0, 10.0, -2.0, -3.0]]))


def test_split_pair_left_aligns_each_sentence_and_attention_ignores_padding():
    encoded, batch = pair_batch()
    s1, len1, s2, len2 = split_pair(encoded.tokens, encoded.mask, batch["token_type_ids"])
    assert len1.tolist() == [2, 1] and len2.tolist() == [3, 1]
    assert torch.equal(s1[0], encoded.tokens[0, :2]) and torch.equal(s1[1, :1], encoded.tokens[1, :1])
    assert torch.equal(s2[0], encoded.tokens[0, 2:5]) and torch.equal(s2[1, :1], encoded.tokens[1, 1:2])
    head = build_head("classification", 4, 2, 0.0, {"model": "sesame", "size": "large", "pair": True,
                                                     "attention_width": 8}).eval()
    reference = head(encoded, batch)
    assert torch.isfinite(reference).all()
    other = encoded.tokens.clone()
    other[encoded.mask == 0] = -3.0
    assert torch.allclose(head(EncoderOutput(other, other[:, 0], encoded.mask), batch), reference, atol=1e-6)


@pytest.mark.parametrize("kind", ["masked_lm", "span_pair"])
def test_sesame_needs_a_head_that_reads_the_pooled_vector(kind):
    with pytest.raises(ConfigError, match="do not read one"):
        build_head(kind, 16, 10, 0.1, {"model": "sesame", "size": "small", "pair": False, "attention_width": 8})


# -- cached frozen features --------------------------------------------------------------------

def run_experiment(tmp_path: Path, data_dir: Path, tiny_encoder: Path, stage: dict[str, Any], name: str):
    exp = runner(tmp_path / name, data_dir, tiny_encoder, stage)
    exp.run()
    return json.loads((tmp_path / name / "run" / "pretrained" / "s" / "metrics.json").read_text())


def test_cached_and_uncached_features_give_identical_metrics(tmp_path, data_dir, tiny_encoder, monkeypatch):
    encodes: list[int] = []
    original = frozen_features.FrozenFeatureCache._encode
    monkeypatch.setattr(frozen_features.FrozenFeatureCache, "_encode",
                        staticmethod(lambda model, split, *a: (encodes.append(len(split)), original(model, split, *a))))
    stage = {"tasks": ["rte"], "frozen": True, "head_model": "sesame", "max_steps": 12, "validate_every": 4,
             "restarts": 2, "dropout": 0.2, "max_train_examples": None}
    cached = run_experiment(tmp_path, data_dir, tiny_encoder, stage, "cached")
    uncached = run_experiment(tmp_path, data_dir, tiny_encoder, {**stage, "cache_features": False}, "uncached")
    assert cached["restarts"][0]["metrics"] and len(cached["restarts"]) == 2
    for a, b in zip(cached["restarts"], uncached["restarts"]):
        assert a["metrics"] == b["metrics"] and a["score"] == b["score"]
    assert encodes == [2490, 24]  # train and dev encoded once, reused by the second restart
    entries = list((tmp_path / "cached" / "cache" / "frozen_features").iterdir())
    assert len(entries) == 2 and all((e / "tokens.npy").exists() for e in entries)


# -- end to end ------------------------------------------------------------------------------------

def test_cli_frozen_tiny_encoder_with_sesame_heads_on_glue(tmp_path, data_dir, tiny_encoder, capsys):
    data = {"encoder": str(tiny_encoder), "precision": "fp32", "tensorboard": False, "threads": 1,
            "cache_dir": str(tmp_path / "cache"),
            "stages": [{"name": "target", "tasks": ["mrpc", "sts-b"], "separate": True, "frozen": True,
                        "head_model": "sesame", "head_size": "large", "head_attention_width": 8,
                        "max_steps": 4, "optimizer": "amsgrad", "lr": 3e-4, **SMALL}]}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    code = main(["run", str(path), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "| tiny-bert | " in capsys.readouterr().out
    for task in ("mrpc", "sts-b"):
        folder = out / "pretrained" / "target" / task
        saved = read_checkpoint(folder / "checkpoint.pt")
        head = saved["heads"][task]
        assert head["model"] == {"model": "sesame", "size": "large", "pair": True, "attention_width": 8}
        rt = Runtime(encoder_family(saved["encoder"]), data_dir, saved["max_length"], device="cpu", precision="fp32")
        model = model_from_checkpoint(saved, rt.device)
        assert isinstance(model.heads[task], SesameHead)
        task_obj = get_task(task)
        preds = rt.predict(model, task, task_obj, "dev")
        by_uid = dict(zip(rt.splits(task_obj).get("dev").uids, preds))
        rows = (folder / "predictions" / f"{task}-dev.tsv").read_text().splitlines()[1:]
        kind = task_obj.kind
        assert len(rows) == SMALL["max_dev_examples"]
        for row in rows:
            uid, prediction, _ = row.split("\t")
            assert kind.format_prediction(task_obj, by_uid[uid]) == prediction


def test_a_later_unfrozen_stage_restores_the_flags_the_encoder_was_built_with(tmp_path, data_dir, tiny_encoder):
    exp = runner(tmp_path, data_dir, tiny_encoder, {"tasks": ["rte"]})
    model = exp.assembly.fresh_model(None)
    model.encoder.model.embeddings.requires_grad_(False)  # a part the encoder keeps fixed in every stage
    assert apply_freezing(model, True).trainable == 0
    apply_freezing(model, False)
    flags = {name: p.requires_grad for name, p in model.encoder.named_parameters()}
    assert not any(v for n, v in flags.items() if n.startswith("model.embeddings."))
    assert all(v for n, v in flags.items() if not n.startswith("model.embeddings."))


def test_the_sesame_example_study_freezes_every_target_under_sesame_heads():
    spec = load_study(EXAMPLES / "sesame_pretraining.yaml")
    cells = expand(spec, validate=lambda e: parse_experiment(dict(e, name=spec.name)))
    configs = [parse_experiment(dict(c.experiment, name=spec.name)) for c in cells]
    labels = {pipeline_label(cfg.encoder, cfg.stages) for cfg in configs}
    pretraining = ("cola", "sst-2", "mrpc", "sts-b", "qnli", "snli", "lm", "multi30k-en-de", "skipthought", "dissent")
    assert labels == {"random", "random-1layer", "minilm-mix", "minilm-mix → snli",
                      *(f"bilstm → {t}" for t in pretraining)}
    for cfg in configs:
        target = cfg.stages[-1]
        assert target.frozen and target.head_model == "sesame"
        assert [t.name for t in target.tasks] == ["cola", "sst-2", "mrpc", "sts-b", "rte", "wnli"]
