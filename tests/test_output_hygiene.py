"""What a run leaves in logs and tables: progress as plain lines off a terminal, short encoder row names."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import yaml

from taskmix.cli import main
from taskmix.config import parse_experiment
from taskmix.models.encoder import encoder_label
from taskmix.training.progress import StepProgress

STAGE = {"name": "target", "tasks": ["rte"], "max_steps": 3, "batch_size": 8, "max_train_examples": 32,
         "max_dev_examples": 16, "predict_test": False}


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Clock:
    """A settable clock for the progress reporter."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "taskmix.training.progress"]


def test_off_a_terminal_progress_is_a_plain_line_every_interval_and_at_the_end(caplog):
    stream, clock = io.StringIO(), Clock()
    progress = StepProgress(10, 0, "rte+mrpc", True, stream=stream, interval=30.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="taskmix.training.progress"):
        for step in range(10):
            clock.now = 10.0 * (step + 1)  # one step every 10 s: a line every third step, and the last
            progress.update(0.5)
        progress.close()
    assert progress_lines(caplog) == [
        "rte+mrpc: step 3/10 (30%), loss 0.5000, 0.10 steps/s",
        "rte+mrpc: step 6/10 (60%), loss 0.5000, 0.10 steps/s",
        "rte+mrpc: step 9/10 (90%), loss 0.5000, 0.10 steps/s",
        "rte+mrpc: step 10/10 (100%), loss 0.5000, 0.10 steps/s",
    ]
    assert stream.getvalue() == ""  # no bar frames


def test_on_a_terminal_progress_is_a_live_bar(caplog):
    terminal = Terminal()
    progress = StepProgress(4, 1, "rte", True, stream=terminal, interval=0.0)
    with caplog.at_level(logging.INFO, logger="taskmix.training.progress"):
        for _ in range(3):
            progress.update(0.25)
        progress.close()
    assert "\r" in terminal.getvalue() and "rte" in terminal.getvalue()
    assert progress_lines(caplog) == []


@pytest.mark.parametrize("stream", [io.StringIO(), Terminal()], ids=["file", "terminal"])
def test_disabled_progress_writes_nothing(caplog, stream):
    progress = StepProgress(2, 0, "rte", False, stream=stream, interval=0.0)
    with caplog.at_level(logging.INFO, logger="taskmix.training.progress"):
        progress.update(1.0)
        progress.update(1.0)
        progress.close()
    assert stream.getvalue() == "" and progress_lines(caplog) == []


def run(tmp_path: Path, data_dir: Path, encoder: object, *flags: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({"encoder": encoder, "stages": [STAGE]}))
    out = tmp_path / "run"
    assert main(["run", str(exp), "--data-dir", str(data_dir), "--output-dir", str(out), *flags]) == 0
    return out


def test_a_run_logged_to_a_file_has_progress_lines_and_no_carriage_returns(tmp_path, data_dir, tiny_encoder,
                                                                           capsys):
    """Progress is on (no --no-progress) while stderr is captured, as under CI or nohup."""
    out = run(tmp_path, data_dir, str(tiny_encoder))
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "rte: step 3/3 (100%)" in err
    assert "rte: step 3/3 (100%)" in (out / "log.txt").read_text()


def test_encoder_labels(tiny_encoder):
    assert encoder_label("minilm") == "minilm"  # bundled: its short name, not the package path
    assert encoder_label("google/bert_uncased_L-2_H-128_A-2") == "google/bert_uncased_L-2_H-128_A-2"  # a hub id
    assert encoder_label(str(tiny_encoder)) == "tiny-bert"  # a local path: its directory name
    assert encoder_label(f"{tiny_encoder}/") == "tiny-bert"
    assert encoder_label(str(tiny_encoder), "small") == "small"


def test_a_local_encoder_path_names_rows_by_its_directory_or_its_label(tmp_path, data_dir, tiny_encoder):
    out = run(tmp_path / "plain", data_dir, str(tiny_encoder), "--no-progress")
    assert [t["pipeline"] for t in json.loads((out / "results.json").read_text())["targets"]] == ["tiny-bert"]
    out = run(tmp_path / "labelled", data_dir, {"name": str(tiny_encoder), "label": "random-16"}, "--no-progress")
    assert [t["pipeline"] for t in json.loads((out / "results.json").read_text())["targets"]] == ["random-16"]
    assert "| random-16 |" in (out / "results.md").read_text()


def test_the_label_names_rows_but_neither_builds_the_encoder_nor_keys_cached_stages():
    """Relabelling a pipeline must not retrain its stages."""
    stages = [{"name": "t", "tasks": ["rte"]}]
    plain = parse_experiment({"stages": stages}).encoder
    labelled = parse_experiment({"encoder": {"name": "minilm", "label": "m"}, "stages": stages}).encoder
    assert labelled.label == "m" and labelled.model_dump()["label"] == "m"
    assert labelled.build_settings() == plain.build_settings() == {
        "family": "hf", "name": "minilm", "gradient_checkpointing": False}
