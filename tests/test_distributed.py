"""torchrun with two CPU processes (gloo) on the tiny random encoder: ranks stay identical, outputs written once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes(tmp_path: Path, data_dir: Path, tiny_encoder: Path):
    config = {
        "name": "ddp", "encoder": str(tiny_encoder), "seed": 3, "max_length": 64, "threads": 1,
        "cache_dir": str(tmp_path / "cache"),
        "stages": [{
            "name": "mtl", "tasks": ["rte", "mrpc"], "batch_size": 8, "max_steps": 6, "validate_every": 2,
            "max_train_examples": 96, "max_dev_examples": 32, "lr": 1e-4, "predict_test": False,
            "mixture": {"sampling": "uniform"},
        }],
    }
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
         "-m", "taskmix", "run", str(path), "--data-dir", str(data_dir), "--output-dir", str(run_dir),
         "--no-progress"],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    metrics = json.loads((run_dir / "pretrained" / "mtl" / "metrics.json").read_text())
    digests = metrics["restarts"][0]["rank_digests"]  # each rank's weights after its last step
    assert len(digests) == 2 and digests[0] == digests[1]
    assert metrics["restarts"][0]["steps"] == 6

    # Written once, by rank 0: one results table, one log header, one TensorBoard run, one cached group.
    assert proc.stdout.count("| rte") == 1
    log = (run_dir / "log.txt").read_text()
    assert log.count("experiment 'ddp'") == 1 and "2 process(es)" in log
    assert len(list((run_dir / "pretrained" / "mtl" / "tensorboard").glob("restart-*/events.*"))) == 1
    assert len(list((run_dir / "stages").glob("*/result.json"))) == 1
    assert json.loads((run_dir / "results.json").read_text())["targets"][0]["task"] == "rte"

