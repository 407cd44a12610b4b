"""The auxiliary-pretraining example end to end through the CLI, shrunk to a few steps per stage.

It runs on the tiny random encoder: the checks are the pipelines, heads and outputs, not learning.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from taskmix.cli import main
from taskmix.evaluate import model_from_checkpoint, read_checkpoint

REPO = Path(__file__).resolve().parents[1]
PRETRAINING_STAGES = ("mlm", "mlm_qt", "mlm_so", "mlm_tf_idf", "cmtl_plus")
# Pipeline rows after the encoder's name.
ROW_STAGES = ("", " → mlm", " → {mlm, qt}", " → {mlm, so}", " → {mlm, tf_idf}", " → {mlm, qt, so, tf_idf}")


def tiny_overrides() -> list[str]:
    """Short inputs, 2-3 steps per stage, token budgets of a few batches and one small target task."""
    out = ["max_length=32", "stages.target.tasks=[rte]", "stages.target.max_steps=2", "stages.target.batch_size=8",
           "stages.target.max_train_examples=16", "stages.target.max_dev_examples=16"]
    for stage in PRETRAINING_STAGES:
        out += [f"stages.{stage}.max_steps=3", f"stages.{stage}.batch_size=4",
                f"stages.{stage}.max_dev_examples=8", f"stages.{stage}.mixture.budget=300"]
    return [arg for item in out for arg in ("--set", item)]


def test_aux_pretraining_example_tiny(tmp_path, data_dir, tiny_encoder, capsys):
    out = tmp_path / "run"
    code = main(["run", str(REPO / "examples" / "aux_pretraining.yaml"), "--data-dir", str(data_dir),
                 "--output-dir", str(out), "--no-progress", "--set", f"encoder={tiny_encoder}", *tiny_overrides()])
    assert code == 0
    printed = capsys.readouterr().out
    rows = {tiny_encoder.name + stages for stages in ROW_STAGES}
    for row in rows:
        assert f"| {row} |" in printed
    results = json.loads((out / "results.json").read_text())
    assert {(t["pipeline"], t["task"]) for t in results["targets"]} == {(row, "rte") for row in rows}

    mlm = json.loads((out / "pretrained" / "mlm" / "metrics.json").read_text())["restarts"][0]
    perplexity = mlm["metrics"]["mlm"]["perplexity"]
    assert math.isfinite(perplexity) and perplexity > 1.0
    assert 1 <= mlm["steps"] <= 3

    cmtl = json.loads((out / "pretrained" / "cmtl_plus" / "metrics.json").read_text())["restarts"][0]["metrics"]
    assert set(cmtl) == {"mlm", "qt", "so", "tf_idf"}
    assert 0.0 <= cmtl["qt"]["accuracy"] <= 1.0 and 0.0 <= cmtl["so"]["accuracy"] <= 1.0
    assert cmtl["tf_idf"]["mse"] >= 0.0

    # The pretraining checkpoint rebuilds its heads, the MLM head tied to the encoder's embeddings.
    saved = read_checkpoint(out / "pretrained" / "cmtl_plus" / "checkpoint.pt")
    assert saved["heads"]["mlm"]["kind"] == "masked_lm"
    model = model_from_checkpoint(saved, torch.device("cpu"))
    assert model.heads["mlm"].decoder_weight is model.encoder.input_embeddings().weight
    assert (out / "mlm" / "target" / "rte" / "predictions" / "rte-dev.tsv").exists()
