"""`taskmix tasks` and AX diagnostic scoring through the CLI."""

from __future__ import annotations

import json

import yaml

from taskmix.cli import main


def test_tasks_lists_every_task_with_real_sizes(data_dir, capsys):
    assert main(["tasks", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ") and "---" not in line}
    assert "train (2490)" in rows["rte"] and "dev (277)" in rows["rte"]
    assert "dev_matched (absent)" in rows["mnli"]
    assert "dev (9842)" in rows["snli"]
    assert {"cola", "sst-2", "mrpc", "qqp", "sts-b", "mnli", "qnli", "rte", "wnli", "ax"} <= set(rows)


def test_ax_diagnostic_from_an_nli_target(tmp_path, data_dir, tiny_encoder, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({
        "encoder": str(tiny_encoder),
        "diagnostic": True,
        "stages": [{"name": "target", "tasks": [{"name": "snli", "train_splits": ["dev"], "dev_split": "test"}],
                    "max_steps": 2, "batch_size": 8, "max_train_examples": 32, "max_dev_examples": 32,
                    "predict_test": False}],
    }))
    out = tmp_path / "run"
    assert main(["run", str(exp), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"]) == 0
    (target,) = json.loads((out / "results.json").read_text())["targets"]
    diagnostic = target["diagnostic"]
    assert diagnostic["overall"]["rows"] == 1104
    assert set(diagnostic["by_category"]) == {"Lexical Semantics", "Predicate-Argument Structure", "Logic",
                                              "Knowledge"}
    assert -1.0 <= diagnostic["overall"]["r3"] <= 1.0
    capsys.readouterr()
    checkpoint = out / "pretrained" / "target" / "checkpoint.pt"
    assert main(["evaluate", str(checkpoint), "--tasks", "ax", "--data-dir", str(data_dir)]) == 0
    printed = capsys.readouterr().out
    assert "AX diagnostic" in printed and "Knowledge" in printed
