"""Shared pieces of the throughput benchmark: timing, batch accounting, data and child processes.

Every configuration is timed the same way: a global optimizer post-step hook stamps the
clock after each optimizer step, so the training window (end of the warm-up step to end of
the last step) is measured identically for taskmix, the Trainer and the bare loop, without
touching any of their code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from taskmix.training.device import default_eval_batch_size

THREADS = 2
BATCH_SIZE = 32
MAX_LENGTH = 128
# Inference batch rows for every contender: taskmix's CPU default, which was also the Trainer's
# fastest (Trainer.evaluate on MRPC: 150 ex/s at 32 rows against 110 at 128).
EVAL_BATCH_SIZE = default_eval_batch_size(torch.device("cpu"))
WARMUP_STEPS = 1
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def setup_process() -> None:
    """Same thread count and offline settings in every process that trains or evaluates."""
    os.environ.update(OFFLINE_ENV)
    torch.set_num_threads(THREADS)


class StepClock:
    """Timestamps after every optimizer step of any optimizer (a global post-step hook)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._handle = register_optimizer_step_post_hook(self._record)

    def _record(self, optimizer, args, kwargs) -> None:
        self.times.append(time.perf_counter())

    def close(self) -> None:
        self._handle.remove()

    def window(self, warmup: int = WARMUP_STEPS) -> tuple[int, float]:
        """Timed steps and their seconds: from the end of the warm-up steps to the last step."""
        if len(self.times) <= warmup:
            raise RuntimeError(f"only {len(self.times)} optimizer steps ran; need more than {warmup}")
        return len(self.times) - warmup, self.times[-1] - self.times[warmup - 1]


@dataclass
class BatchLog:
    """Rows and padded width of every training batch, in the order the batches were built."""

    rows: list[int] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def add(self, rows: int, width: int, name: str = "") -> None:
        self.rows.append(rows)
        self.widths.append(width)
        self.names.append(name)

    def timed(self, steps: int, warmup: int = WARMUP_STEPS) -> tuple[int, int]:
        """Examples and padded tokens of the timed steps (one batch per optimizer step)."""
        rows = self.rows[warmup : warmup + steps]
        widths = self.widths[warmup : warmup + steps]
        return sum(rows), sum(r * w for r, w in zip(rows, widths))


def train_result(clock: StepClock, log: BatchLog) -> dict[str, float]:
    """Training throughput from the clock's timed window and the batches it covered."""
    steps, seconds = clock.window()
    examples, tokens = log.timed(steps)
    return {"steps": steps, "train_seconds": seconds, "train_examples": examples,
            "train_ex_s": examples / seconds, "train_tok_s": tokens / seconds}


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    """Call once untimed (warm-up: kernel selection, caches), then return the timed second call."""
    fn(*args, **kwargs)
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def load_examples(task_name: str, split: str, data_dir: Path) -> list:
    """Rows through taskmix's own readers, so every contender trains on the same examples."""
    from taskmix.tasks import get_task, load_split

    return load_split(get_task(task_name), split, data_dir)


def labelled(examples: list) -> list:
    return [e for e in examples if e.label is not None]


def model_path() -> str:
    from taskmix.models.encoder import resolve_model_path

    return resolve_model_path("minilm")


@dataclass
class ChildRun:
    """What a child process reported, with its wall time and its own peak resident set."""

    result: dict[str, Any]
    wall_seconds: float
    peak_rss_mib: float
    returncode: int


def run_child(argv: list[str], env: dict[str, str] | None = None, log_path: Path | None = None) -> ChildRun:
    """Run a command to completion; `os.wait4` gives that child's own peak RSS (not the max of all)."""
    full_env = {**os.environ, **OFFLINE_ENV, **(env or {})}
    log_file = open(log_path, "w") if log_path else subprocess.DEVNULL
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, env=full_env, stdout=log_file, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if log_path:
            log_file.close()
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun({}, wall, usage.ru_maxrss / 1024, proc.returncode)


def run_worker(script: Path, kind: str, spec: dict[str, Any], log_dir: Path) -> ChildRun:
    """Run one measured configuration in a fresh Python process and read back its JSON result."""
    out = Path(tempfile.mkstemp(dir=log_dir, prefix=f"{kind}-", suffix=".json")[1])
    argv = [sys.executable, str(script), "--worker", kind, "--spec", json.dumps(spec), "--result", str(out)]
    child = run_child(argv, log_path=log_dir / f"{kind}.log")
    if child.returncode != 0:
        raise RuntimeError(f"worker '{kind}' failed (exit {child.returncode}); see {log_dir / f'{kind}.log'}")
    child.result = json.loads(out.read_text())
    return child
