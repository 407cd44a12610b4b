"""Submission files: byte-exact GLUE TSV and SuperGLUE JSONL, atomic writes, clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from taskmix.cli import main
from taskmix.errors import ConfigError
from taskmix.kinds.base import TaskKind
from taskmix.kinds.classification import CLASSIFICATION
from taskmix.kinds.regression import REGRESSION
from taskmix.submission import write_submission
from taskmix.tasks import get_task, load_split
from taskmix.tasks.base import Task


def task(
    name: str,
    labels: tuple[str, ...],
    files: dict[str, str],
    kind: TaskKind = CLASSIFICATION,
) -> Task:
    metrics = ("accuracy",)
    return Task(name, kind, metrics, splits={}, labels=labels, submission_files=files)


RTE = task("rte", ("entailment", "not_entailment"), {"test": "RTE.tsv"})
MRPC = task("mrpc", ("0", "1"), {"test": "MRPC.tsv"})
STSB = task("sts-b", (), {"test": "STS-B.tsv"}, REGRESSION)
MNLI = task(
    "mnli",
    ("entailment", "neutral", "contradiction"),
    {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv", "diagnostic": "AX.tsv"},
)
CB = task("cb", ("entailment", "contradiction", "neutral"), {"test": "CB.jsonl"})
BOOLQ = task("boolq", ("False", "True"), {"test": "BoolQ.jsonl"})
COPA = task("copa", ("0", "1"), {"test": "COPA.jsonl"})


@pytest.mark.parametrize(
    ("t", "split", "predictions", "name", "content"),
    [
        (RTE, "test", [0, 1, 0], "RTE.tsv",
         b"index\tprediction\n0\tentailment\n1\tnot_entailment\n2\tentailment\n"),
        (MRPC, "test", [1, 0, 1], "MRPC.tsv", b"index\tprediction\n0\t1\n1\t0\n2\t1\n"),
        (STSB, "test", [-0.2, 2.34567, 5.7], "STS-B.tsv",
         b"index\tprediction\n0\t0.000\n1\t2.346\n2\t5.000\n"),
        (MNLI, "test_mismatched", [2, 1, 0], "MNLI-mm.tsv",
         b"index\tprediction\n0\tcontradiction\n1\tneutral\n2\tentailment\n"),
        (MNLI, "diagnostic", [1, 1, 2], "AX.tsv",
         b"index\tprediction\n0\tneutral\n1\tneutral\n2\tcontradiction\n"),
        (CB, "test", [2, 0, 1], "CB.jsonl",
         b'{"idx": 0, "label": "neutral"}\n{"idx": 1, "label": "entailment"}\n'
         b'{"idx": 2, "label": "contradiction"}\n'),
        (BOOLQ, "test", [1, 0, 1], "BoolQ.jsonl",
         b'{"idx": 0, "label": true}\n{"idx": 1, "label": false}\n{"idx": 2, "label": true}\n'),
        (COPA, "test", [0, 1, 1], "COPA.jsonl",
         b'{"idx": 0, "label": 0}\n{"idx": 1, "label": 1}\n{"idx": 2, "label": 1}\n'),
    ],
)
def test_files_are_byte_exact(
    tmp_path: Path, t: Task, split: str, predictions: list[float], name: str, content: bytes
) -> None:
    path = write_submission(t, split, ["0", "1", "2"], predictions, tmp_path / "out")
    assert path == tmp_path / "out" / name
    assert path.read_bytes() == content
    assert os.listdir(path.parent) == [name]  # no temporary file left behind


def test_overwrite_replaces_the_file(tmp_path: Path) -> None:
    write_submission(RTE, "test", ["0", "1"], [0, 0], tmp_path)
    path = write_submission(RTE, "test", ["0"], [1], tmp_path)
    assert path.read_bytes() == b"index\tprediction\n0\tnot_entailment\n"
    assert os.listdir(tmp_path) == ["RTE.tsv"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_submission(RTE, "test", ["0"], [0], tmp_path)

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_submission(RTE, "test", ["0"], [1], tmp_path)
    assert path.read_bytes() == b"index\tprediction\n0\tentailment\n"
    assert os.listdir(tmp_path) == ["RTE.tsv"]


def test_errors_name_the_task(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'rte'.*'validation'"):
        write_submission(RTE, "validation", ["0"], [0], tmp_path)
    with pytest.raises(ConfigError, match="'odd'.*'ODD.csv'"):
        write_submission(task("odd", ("a",), {"test": "ODD.csv"}), "test", ["0"], [0], tmp_path)
    with pytest.raises(ValueError, match="'rte'"):
        write_submission(RTE, "test", ["0", "1"], [0], tmp_path)
    with pytest.raises(ValueError, match="'rte'.*index 2"):
        write_submission(RTE, "test", ["0"], [2], tmp_path)
    with pytest.raises(ValueError, match="'sts-b'.*non-finite"):
        write_submission(STSB, "test", ["0"], [float("nan")], tmp_path)
    with pytest.raises(ValueError, match="'cb'.*'a7'"):
        write_submission(CB, "test", ["a7"], [0], tmp_path)
    assert os.listdir(tmp_path) == []


def test_a_run_writes_glue_files_with_the_wnli_majority_and_ax_from_the_nli_head(
        tiny_encoder: Path, data_dir: Path, tmp_path: Path) -> None:
    """WNLI falls back to its majority class in the submission as on dev; the NLI target also writes AX.tsv."""
    experiment = {
        "name": "glue-files", "encoder": str(tiny_encoder), "seed": 1, "max_length": 48, "tensorboard": False,
        "stages": [{"name": "target", "separate": True, "max_steps": 2, "batch_size": 8, "lr": 1e-9,
                    "tasks": ["wnli", {"name": "snli", "train_splits": ["dev"], "dev_split": "test",
                                       "max_train_examples": 32, "max_dev_examples": 64}]}],
    }
    config = tmp_path / "glue.yaml"
    config.write_text(yaml.safe_dump(experiment))
    out = tmp_path / "run"
    assert main(["run", str(config), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"]) == 0

    wnli = next(t for t in json.loads((out / "results.json").read_text())["targets"] if t["task"] == "wnli")
    assert wnli["majority_rule_applied"]
    rows = (out / "pretrained" / "target" / "wnli" / "submission" / "WNLI.tsv").read_text().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 1 + 146
    train = [e.label for e in load_split(get_task("wnli"), "train", data_dir)]
    majority = str(max((0, 1), key=train.count))
    assert {r.split("\t")[1] for r in rows[1:]} == {majority}

    ax_rows = (out / "pretrained" / "target" / "snli" / "submission" / "AX.tsv").read_text().splitlines()
    assert ax_rows[0] == "index\tprediction" and len(ax_rows) == 1 + 1104
    assert [r.split("\t")[0] for r in ax_rows[1:]] == [str(i) for i in range(1104)]
    assert {r.split("\t")[1] for r in ax_rows[1:]} <= {"entailment", "neutral", "contradiction"}
    assert not (out / "pretrained" / "target" / "wnli" / "submission" / "AX.tsv").exists()
