"""Bad input through the real command: one clear message naming what and where, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from taskmix.cli import main


def experiment(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def custom_task_experiment(tmp_path: Path, train_rows: list[str], dev_rows: list[str]) -> Path:
    header = "id\tsentence\tlabel"
    (tmp_path / "train.tsv").write_text("\n".join([header, *train_rows]) + "\n")
    (tmp_path / "dev.tsv").write_text("\n".join([header, *dev_rows]) + "\n")
    return experiment(tmp_path, {
        "custom_tasks": [{
            "name": "toy", "kind": "single_classification", "labels": ["neg", "pos"],
            "splits": {"train": "train.tsv", "dev": "dev.tsv"},
            "columns": {"text_a": "sentence", "label": "label", "uid": "id"},
        }],
        "stages": [{"name": "target", "tasks": ["toy"], "max_steps": 1, "batch_size": 2}],
    })


def run_cli(capsys, path: Path, data_dir: Path, out: Path) -> tuple[int, str]:
    code = main(["run", str(path), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"])
    return code, capsys.readouterr().err


def test_unknown_task(tmp_path, data_dir, capsys):
    path = experiment(tmp_path, {"stages": [{"name": "t", "tasks": ["rtee"]}]})
    code, err = run_cli(capsys, path, data_dir, tmp_path / "out")
    assert code == 2
    assert "unknown task 'rtee'" in err


def test_unknown_config_key(tmp_path, data_dir, capsys):
    path = experiment(tmp_path, {"stages": [{"name": "t", "tasks": ["rte"], "max_epoch": 2}]})
    code, err = run_cli(capsys, path, data_dir, tmp_path / "out")
    assert code == 2
    assert "unknown key 'stages.0.max_epoch'" in err and str(path) in err


def test_unknown_override_key(tmp_path, data_dir, capsys):
    path = experiment(tmp_path, {"stages": [{"name": "t", "tasks": ["rte"]}]})
    code = main(["run", str(path), "--data-dir", str(data_dir), "--set", "stages.t.learning_rate=1"])
    assert code == 2
    assert "unknown key 'stages.0.learning_rate'" in capsys.readouterr().err


def test_missing_experiment_file(tmp_path, data_dir, capsys):
    code, err = run_cli(capsys, tmp_path / "nope.yaml", data_dir, tmp_path / "out")
    assert code == 2 and "nope.yaml: file not found" in err


def test_missing_data_directory(tmp_path, capsys):
    path = experiment(tmp_path, {"stages": [{"name": "t", "tasks": ["rte"], "max_steps": 1}]})
    code, err = run_cli(capsys, path, tmp_path / "no-such-dir", tmp_path / "out")
    assert code == 2
    assert "no-such-dir" in err and "data directory does not exist" in err


def test_missing_data_file(tmp_path, data_dir, capsys):
    path = experiment(tmp_path, {"stages": [{"name": "t", "tasks": ["qnli"], "max_steps": 1}]})
    code, err = run_cli(capsys, path, data_dir, tmp_path / "out")
    assert code == 2
    assert "qnli/train.tsv" in err and "not found" in err and "'qnli'" in err


def test_malformed_tsv_row(tmp_path, data_dir, capsys):
    path = custom_task_experiment(tmp_path, ["1\tgood film\tpos", "2\tbad film"], ["3\tok\tpos"])
    code, err = run_cli(capsys, path, data_dir, tmp_path / "out")
    assert code == 2
    assert "train.tsv:3" in err


def test_label_outside_label_set(tmp_path, data_dir, capsys):
    path = custom_task_experiment(tmp_path, ["1\tgood film\tpos", "2\tbad film\tneutral"], ["3\tok\tpos"])
    code, err = run_cli(capsys, path, data_dir, tmp_path / "out")
    assert code == 2
    assert "train.tsv:3" in err and "neutral" in err


def test_empty_split(tmp_path, data_dir, capsys):
    path = custom_task_experiment(tmp_path, ["1\tgood film\tpos"], [])
    code, err = run_cli(capsys, path, data_dir, tmp_path / "out")
    assert code == 2
    assert "no examples" in err and "'toy'" in err and "dev" in err


def test_failure_keeps_what_was_already_written(tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.md").write_text("earlier results\n")
    path = custom_task_experiment(tmp_path, ["1\tgood film\tpos", "2\tbad film"], ["3\tok\tpos"])
    code, _ = run_cli(capsys, path, data_dir, out)
    assert code == 2
    assert (out / "results.md").read_text() == "earlier results\n"


def test_exit_code_from_a_real_process(tmp_path, data_dir):
    path = experiment(tmp_path, {"stages": [{"name": "t", "tasks": ["nosuchtask"]}]})
    proc = subprocess.run([sys.executable, "-m", "taskmix", "run", str(path), "--data-dir", str(data_dir)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("taskmix: error: unknown task 'nosuchtask'")


def test_unreachable_hub_is_a_clear_error(tmp_path):
    """No data directory and no network: one error line naming the task and the way out, not a traceback."""
    path = experiment(tmp_path, {"stages": [{"name": "t", "tasks": ["rte"], "max_steps": 1}]})
    env = {k: v for k, v in os.environ.items() if k != "TASKMIX_DATA"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-m", "taskmix", "run", str(path), "--output-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("taskmix: error: task 'rte': could not load nyu-mll/glue") and "TASKMIX_DATA" in last


def tiny_run(capsys, experiment: Path, *extra: str) -> tuple[int, str]:
    code = main(["run", str(experiment), "--output-dir", str(experiment.parent / "out"), "--no-progress", *extra])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("interval", [0, -1])
def test_validation_interval_must_be_positive(tiny_experiment, capsys, interval):
    code, err = tiny_run(capsys, tiny_experiment({"validate_every": interval}))
    assert code == 2 and err.count("\n") == 0
    assert err.endswith(f"stages.0.validate_every: Value error, must be a positive number of steps or 'epoch', "
                        f"got {interval}")


def test_negative_seed(tiny_experiment, capsys):
    code, err = tiny_run(capsys, tiny_experiment(seed=-1))
    assert code == 2 and err.endswith("seed: Input should be greater than or equal to 0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda(tiny_experiment, capsys):
    code, err = tiny_run(capsys, tiny_experiment(device="cuda"))
    assert code == 2
    assert err == "taskmix: error: device: 'cuda' requested but no CUDA device is available; use auto or cpu"


def test_override_value_that_is_not_yaml(tiny_experiment, capsys):
    code, err = tiny_run(capsys, tiny_experiment(), "--set", "stages.target.lr=[1")
    assert code == 2
    assert err.startswith("taskmix: error: --set stages.target.lr: value '[1' is not valid YAML (")
    assert err.count("\n") == 0


def test_a_huge_header_line_is_not_echoed_whole(tmp_path, tiny_experiment, capsys):
    experiment = tiny_experiment()
    (tmp_path / "train.tsv").write_text("x" * 10_000_000 + "\n1\tgood film\tpos\n")
    code, err = tiny_run(capsys, experiment)
    assert code == 2
    assert str(tmp_path / "train.tsv") in err and "more characters)" in err
    assert len(err) < 1000
