"""Whole `taskmix run` commands in child processes: STILTs end to end, start-up time, mixture memory."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from common import BATCH_SIZE, MAX_LENGTH, THREADS, ChildRun, run_child

STAMPED_RUN = Path(__file__).resolve().parent / "stamped_run.py"

TEN_TASKS: list[dict[str, Any]] = [
    {"name": "rte"}, {"name": "mrpc"}, {"name": "sts-b"}, {"name": "cola"}, {"name": "sst-2"}, {"name": "wnli"},
    {"name": "snli", "train_splits": ["dev", "test"], "dev_split": "train_0.01"},
    {"name": "qnli", "train_splits": ["dev"], "dev_holdout": 500},
    {"name": "boolq", "train_splits": ["dev"], "dev_holdout": 300},
    {"name": "cb"},
]


def experiment(name: str, stages: list[dict[str, Any]], pipelines: list[list[str]] | None = None) -> dict[str, Any]:
    """An experiment file with the benchmark's shared settings (precision `auto`, as users run it)."""
    data: dict[str, Any] = {"name": name, "encoder": "minilm", "seed": 1, "max_length": MAX_LENGTH,
                            "threads": THREADS, "stages": stages}
    if pipelines:
        data["pipelines"] = pipelines
    return data


def stilts_experiment(sizes: dict[str, int]) -> dict[str, Any]:
    """minilm → SNLI → RTE on subsets, evaluating and checkpointing every epoch."""
    intermediate = {"name": "intermediate", "max_epochs": 1, "lr": 5.0e-5, "batch_size": BATCH_SIZE,
                    "predict_test": False,
                    "tasks": [{"name": "snli", "train_splits": ["dev", "test"], "dev_split": "train_0.01",
                               "max_train_examples": sizes["snli_train"], "max_dev_examples": sizes["snli_dev"]}]}
    target = {"name": "target", "tasks": ["rte"], "max_epochs": sizes["rte_epochs"], "lr": 1.0e-4,
              "batch_size": BATCH_SIZE, "max_train_examples": sizes["rte_train"], "predict_test": False}
    return experiment("bench_stilts", [intermediate, target], [["intermediate", "target"]])


def first_step_experiment() -> dict[str, Any]:
    """The smallest real run: one RTE step, eight dev rows, no test predictions."""
    stage = {"name": "rte", "tasks": ["rte"], "max_steps": 1, "max_dev_examples": 8, "predict_test": False}
    return experiment("bench_first_step", [stage])


def ten_task_experiment(steps: int) -> dict[str, Any]:
    """Ten tasks on their full training data in one mixture, for the memory ceiling."""
    stage = {"name": "mixture", "tasks": TEN_TASKS, "max_steps": steps, "max_dev_examples": 64,
             "predict_test": False, "batch_size": BATCH_SIZE}
    return experiment("bench_ten_tasks", [stage])


def taskmix_run(config: dict[str, Any], work: Path, label: str, data_dir: Path, token_cache: Path) -> ChildRun:
    """`taskmix run` on a written experiment file, with its own run directory and token cache; the
    result holds the seconds from process start to the end of the first optimizer step."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{label}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    out = work / f"{label}-run"
    shutil.rmtree(out, ignore_errors=True)
    stamp = work / f"{label}.first-step"
    stamp.unlink(missing_ok=True)
    argv = [sys.executable, str(STAMPED_RUN), "run", str(path), "--output-dir", str(out), "--data-dir", str(data_dir),
            "--no-progress"]
    child = run_child(argv, env={"TASKMIX_CACHE": str(token_cache), "TASKMIX_BENCH_STAMP": str(stamp)},
                      log_path=work / f"{label}.log")
    if child.returncode != 0:
        raise RuntimeError(f"taskmix run for '{label}' failed (exit {child.returncode}); see {work / label}.log")
    child.result = {"first_step_seconds": float(stamp.read_text())}
    return child
