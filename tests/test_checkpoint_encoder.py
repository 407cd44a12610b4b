"""An earlier run's checkpoint as the encoder (`encoder: {checkpoint: ...}`): pretrain once, evaluate later.

The encoder rebuilt from a checkpoint, with the run's own head put back on, predicts the dev
set exactly as the run did, for the BiLSTM and for a layer-mixed Hugging Face encoder; the
stage cache follows the checkpoint's contents.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml

from taskmix.checkpoints import encoder_weights, read_checkpoint
from taskmix.cli import main
from taskmix.config import parse_experiment
from taskmix.evaluate import model_from_checkpoint
from taskmix.experiment import ExperimentRunner
from taskmix.models.encoder import encoder_family
from taskmix.models.heads import build_head
from taskmix.models.model import MultiTaskModel
from taskmix.rundir import save_torch
from taskmix.runtime import Runtime
from taskmix.tasks import get_task

STAGE = {"name": "pre", "tasks": ["sts-b"], "max_steps": 4, "batch_size": 8, "validate_every": 2,
         "max_train_examples": 32, "max_dev_examples": 24, "predict_test": False}


def run_cli(folder: Path, data_dir: Path, data: dict) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump({"threads": 1, "precision": "fp32", "tensorboard": False, **data}))
    out = folder / "run"
    assert main(["run", str(path), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"]) == 0
    return out


def through_checkpoint_encoder(checkpoint: Path, data_dir: Path) -> tuple[dict[str, float], np.ndarray]:
    """Dev predictions of the `checkpoint` family's encoder carrying the run's head, by uid, and those of the
    model `taskmix evaluate` rebuilds, in split order."""
    saved = read_checkpoint(checkpoint)
    family = encoder_family({"family": "checkpoint", "checkpoint": str(checkpoint)})
    model = MultiTaskModel(family.build())
    (head, info), = saved["heads"].items()
    model.heads[head] = build_head(info["kind"], model.encoder.hidden_size, info["num_outputs"])
    prefix = f"heads.{head}."
    model.heads[head].load_state_dict({k[len(prefix):]: v for k, v in saved["state_dict"].items()
                                       if k.startswith(prefix)})
    rt = Runtime(family, data_dir, saved["max_length"], precision="fp32")  # as the runs below
    task = get_task(info["task"])
    predictions = rt.predict(model, head, task, "dev")
    reference = rt.predict(model_from_checkpoint(saved, rt.device), head, task, "dev")
    assert np.array_equal(predictions, reference)
    return dict(zip(rt.splits(task).get("dev").uids, predictions)), predictions


def assert_same_dev_predictions(out: Path, data_dir: Path) -> None:
    by_uid, _ = through_checkpoint_encoder(out / "pretrained" / "pre" / "checkpoint.pt", data_dir)
    rows = (out / "pretrained" / "pre" / "predictions" / "sts-b-dev.tsv").read_text().splitlines()[1:]
    assert len(rows) == 24
    for row in rows:
        uid, prediction, _ = row.split("\t")
        assert f"{by_uid[uid]:.4f}" == prediction


def test_bilstm_checkpoint_round_trip_and_reuse_as_encoder(tmp_path, data_dir):
    encoder = {"family": "bilstm", "hidden": 16}
    out = run_cli(tmp_path / "pretrain", data_dir,
                  {"encoder": encoder, "stages": [{**STAGE, "recipe": "sesame_pretrain", "validate_every": 2}]})
    assert_same_dev_predictions(out, data_dir)
    checkpoint = out / "pretrained" / "pre" / "checkpoint.pt"
    target = {**STAGE, "name": "target", "tasks": ["rte"], "max_steps": 2}
    later = run_cli(tmp_path / "later", data_dir, {"encoder": {"checkpoint": str(checkpoint)}, "stages": [target]})
    results = json.loads((later / "results.json").read_text())
    assert [t["pipeline"] for t in results["targets"]] == ["pre"]  # the checkpoint's stage names the row
    saved = read_checkpoint(later / "pretrained" / "target" / "checkpoint.pt")
    assert saved["encoder"] == {"family": "bilstm", **parse_experiment(
        {"encoder": encoder, "stages": [STAGE]}).encoder.build_settings()}  # self-contained: no link to the file


def test_layer_mixed_hf_checkpoint_round_trip_keeps_the_transformer_frozen(tmp_path, data_dir, tiny_encoder):
    encoder = {"name": str(tiny_encoder), "layer_mix": True, "bilstm_on_top": {"hidden": 4, "layers": 1}}
    out = run_cli(tmp_path, data_dir, {"encoder": encoder, "stages": [{**STAGE, "lr": 0.01}]})
    assert_same_dev_predictions(out, data_dir)
    weights = encoder_weights(read_checkpoint(out / "pretrained" / "pre" / "checkpoint.pt"))
    initial = encoder_family(parse_experiment({"encoder": encoder, "stages": [STAGE]}).encoder.build_settings())
    initial = initial.build().state_dict()
    transformer = [k for k in weights if k.startswith("model.")]
    assert transformer and all(torch.equal(weights[k], initial[k]) for k in transformer)
    assert not torch.equal(weights["mix.weights"], initial["mix.weights"])  # the mix and the BiLSTM trained
    assert not torch.equal(weights["top.lstm.weight_ih_l0"], initial["top.lstm.weight_ih_l0"])


def test_stage_cache_key_follows_the_checkpoint_contents(tmp_path, data_dir, tiny_encoder):
    model = MultiTaskModel(encoder_family(str(tiny_encoder)).build())
    checkpoint = tmp_path / "checkpoint.pt"
    record = {"encoder": {"family": "hf", "name": str(tiny_encoder)}, "max_length": 64, "heads": {},
              "state_dict": model.state_dict()}
    save_torch(checkpoint, record)

    def key() -> str:
        cfg = parse_experiment({"encoder": {"checkpoint": str(checkpoint)}, "stages": [STAGE]})
        runner = ExperimentRunner(cfg, data_dir, tmp_path / "out", tmp_path, progress=False)
        return runner.group_key([], cfg.stages[0], cfg.stages[0].tasks)

    first = key()
    changed = dict(record["state_dict"])
    changed["encoder.model.pooler.dense.bias"] = changed["encoder.model.pooler.dense.bias"] + 1
    save_torch(checkpoint, {**record, "state_dict": changed})
    assert key() != first
    save_torch(checkpoint, record)
    assert key() == first
