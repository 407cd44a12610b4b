"""Faults injected into a real run on the tiny encoder: SIGKILL at chosen points of a stage,
SIGTERM/SIGINT, a file-size limit, a concurrent second run, and damaged checkpoint files.

A killed run is rerun with the same command and must end with the metrics and weights of
an uninterrupted run; every other fault must end in one `taskmix: error:` (or interrupt)
line with the earlier outputs intact.  The faulty run is a subprocess that signals itself
at the n-th call of a chosen function, or just before the n-th atomic rename of a chosen
file (so its temp file is complete but not yet in place).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from taskmix.cli import main
from taskmix.rundir import TEMP_SUFFIX
from taskmix.runlock import LOCK_FILE

REPO = Path(__file__).resolve().parents[1]

FAULTY_RUN = r'''
import fnmatch, importlib, os, signal, sys
from pathlib import Path

action, target, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls = 0

def fire():
    global calls
    calls += 1
    if calls == nth:
        os.kill(os.getpid(), getattr(signal, action))

if target.startswith("write:"):
    pattern, real_fsync = target[len("write:"):], os.fsync
    def fsync(fd):
        real_fsync(fd)
        if fnmatch.fnmatch(Path(os.readlink(f"/proc/self/fd/{fd}")).name, f".{pattern}.*"):
            fire()
    os.fsync = fsync
else:
    module, attr = target.split(":")
    owner = importlib.import_module(module)
    *parents, name = attr.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    real = getattr(owner, name)
    def wrapped(*args, **kwargs):
        fire()
        return real(*args, **kwargs)
    setattr(owner, name, wrapped)

from taskmix.cli import main
sys.exit(main(sys.argv[4:]))
'''

STEP = "taskmix.training.stage:StageTrainer._step_losses"
VALIDATE = "taskmix.training.stage:StageTrainer._validate"
STAGE = {"restarts": 2}


def command(experiment: Path, out: Path) -> list[str]:
    return ["run", str(experiment), "--output-dir", str(out), "--no-progress"]


def faulty_run(experiment: Path, out: Path, action: str, target: str, nth: int, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", FAULTY_RUN, action, target, str(nth), *command(experiment, out)],
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stderr=subprocess.PIPE, text=True,
                            **popen)


def outcome(out: Path) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """The targets of results.json and the final checkpoint's weights: what an interruption must not change."""
    targets = json.loads((out / "results.json").read_text())["targets"]
    weights = torch.load(out / "pretrained" / "target" / "checkpoint.pt", weights_only=True)["state_dict"]
    return targets, weights


def assert_same(actual: tuple, expected: tuple) -> None:
    assert actual[0] == expected[0]
    assert actual[1].keys() == expected[1].keys()
    assert all(torch.equal(actual[1][k], expected[1][k]) for k in expected[1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_experiment_in) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """An uninterrupted run of the experiment every test here interrupts."""
    folder = tmp_path_factory.mktemp("reference")
    assert main(command(tiny_experiment_in(folder, STAGE), folder / "run")) == 0
    return outcome(folder / "run")


@pytest.mark.parametrize("target, nth, left_behind", [
    (STEP, 1, None),                                # first step of the first restart: nothing saved yet
    (STEP, 5, "stages/*/restart-0.pt"),             # between validations, after the first checkpoint
    (VALIDATE, 3, "stages/*/restart-0.pt"),         # while validating
    ("write:restart-*.pt", 2, f"stages/*/.restart-0.pt.*{TEMP_SUFFIX}"),  # mid checkpoint write
    ("write:partial.pt", 1, f"stages/*/.partial.pt.*{TEMP_SUFFIX}"),      # recording the finished first restart
    ("write:result.json", 1, "stages/*/state.pt"),  # storing the finished stage: weights saved, result not yet
    ("write:checkpoint.pt", 1, f"pretrained/target/.checkpoint.pt.*{TEMP_SUFFIX}"),  # writing run outputs
])
def test_sigkill_then_rerun_ends_like_an_uninterrupted_run(tmp_path, tiny_experiment, reference, target, nth,
                                                           left_behind):
    experiment, out = tiny_experiment(STAGE), tmp_path / "run"
    killed = faulty_run(experiment, out, "SIGKILL", target, nth)
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    if left_behind:
        assert list(out.glob(left_behind)), f"not killed where intended: no {left_behind}"
    assert main(command(experiment, out)) == 0
    assert_same(outcome(out), reference)
    assert not list(out.rglob(".*"))  # the rerun removed the killed writer's temp file


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_with_one_line_and_the_run_resumes(tmp_path, tiny_experiment, reference, signum,
                                                                   capsys):
    experiment, out = tiny_experiment(STAGE), tmp_path / "run"
    stopped = faulty_run(experiment, out, signal.Signals(signum).name, STEP, 8)
    _, err = stopped.communicate(timeout=300)
    assert stopped.returncode == 128 + signum
    line = f"taskmix: interrupted by {signal.Signals(signum).name}; rerun the same command to resume"
    assert err.strip().splitlines()[-1] == line and "Traceback" not in err
    assert line in (out / "log.txt").read_text()
    assert main(command(experiment, out)) == 0
    assert "resuming stage at step 6" in capsys.readouterr().err
    assert_same(outcome(out), reference)


def test_file_size_limit_gives_one_error_and_keeps_earlier_outputs(tmp_path, tiny_experiment):
    experiment, out = tiny_experiment(), tmp_path / "run"
    assert main(command(experiment, out)) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name not in ("log.txt", LOCK_FILE)}

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))

    proc = subprocess.run([sys.executable, "-m", "taskmix", *command(experiment, out)], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), preexec_fn=limit_file_size)
    assert proc.returncode == 1
    checkpoint = out / "pretrained" / "target" / "checkpoint.pt"
    assert proc.stderr.strip().splitlines()[-1] == f"taskmix: error: {checkpoint}: File too large (EFBIG)"
    assert {p: p.read_bytes() for p in before} == before
    assert not list(out.rglob(".*"))  # no temp file left behind


def test_concurrent_second_run_is_refused_naming_the_first(tmp_path, tiny_experiment, reference, capsys):
    experiment, out = tiny_experiment(STAGE), tmp_path / "run"
    first = faulty_run(experiment, out, "SIGSTOP", STEP, 5)  # paused mid-stage, holding the run directory
    try:
        os.waitpid(first.pid, os.WUNTRACED)
        assert main(command(experiment, out)) == 2
        assert (f"taskmix: error: {out}: run directory is in use by another taskmix process (PID {first.pid})"
                in capsys.readouterr().err)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert_same(outcome(out), reference)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damaged", ["stages/*/restart-0.pt", "stages/*/state.pt"])
def test_damaged_checkpoint_is_an_error_never_a_silent_load(tmp_path, tiny_experiment, damaged, capsys):
    experiment, out = tiny_experiment(STAGE), tmp_path / "run"
    target = STEP if "restart" in damaged else "write:result.json"
    killed = faulty_run(experiment, out, "SIGKILL", target, 5 if "restart" in damaged else 1)
    killed.communicate(timeout=300)
    (path,) = out.glob(damaged)
    truncate(path)
    if "state" in damaged:  # a finished entry whose weights file was damaged afterwards
        (path.parent / "result.json").write_text(json.dumps({"restarts": [], "selected": 0}))
    assert main(command(experiment, out)) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"taskmix: error: {path}: truncated or corrupt checkpoint (")


def test_evaluating_a_truncated_checkpoint_is_an_error(tmp_path, tiny_experiment, capsys):
    out = tmp_path / "run"
    assert main(command(tiny_experiment(), out)) == 0
    checkpoint = out / "pretrained" / "target" / "checkpoint.pt"
    truncate(checkpoint)
    assert main(["evaluate", str(checkpoint), "--tasks", "toy"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"taskmix: error: {checkpoint}: truncated or corrupt checkpoint (")
