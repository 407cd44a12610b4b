"""The run directory under faults: locked by one live process, untouched by a run that fails
validation, never escaped by `name:`, and intact after a full disk or an interrupted write."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from taskmix.cli import main
from taskmix.config import parse_experiment
from taskmix.errors import ConfigError
from taskmix.rundir import TEMP_SUFFIX, save_torch

REPO = Path(__file__).resolve().parents[1]


def run(experiment: Path, out: Path | None, *extra: str) -> int:
    output = ["--output-dir", str(out)] if out else []
    return main(["run", str(experiment), *output, "--no-progress", *extra])


def hold_lock(directory: Path) -> subprocess.Popen:
    """Another process that holds `directory`'s lock until it is killed."""
    code = ("import sys, time; from taskmix.runlock import locked\n"
            "with locked(sys.argv[1], 'run directory'):\n    print('locked', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(directory)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_is_refused_naming_the_holder_and_the_lock_dies_with_it(tmp_path, tiny_experiment, capsys):
    out = tmp_path / "run"
    holder = hold_lock(out)
    try:
        assert run(tiny_experiment(), out) == 2
        err = capsys.readouterr().err
        assert f"taskmix: error: {out}: run directory is in use by another taskmix process (PID {holder.pid})" in err
        assert not (out / "config.yaml").exists()
    finally:
        holder.kill()
        holder.wait()
    assert run(tiny_experiment(), out) == 0  # the kernel dropped the killed holder's lock


def test_a_run_that_fails_validation_writes_nothing(tmp_path, tiny_experiment, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("previous run\n")
    experiment = tiny_experiment()
    (tmp_path / "dev.tsv").unlink()  # a data file the stage needs
    assert run(experiment, out) == 2
    assert "dev.tsv" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]
    assert (out / "config.yaml").read_text() == "previous run\n"


def test_an_encoder_directory_without_a_model_fails_before_writing(tmp_path, tiny_experiment, capsys):
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "notes.txt").write_text("hello\n")
    out = tmp_path / "run"
    assert run(tiny_experiment(encoder=str(tmp_path / "not-a-model")), out) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"taskmix: error: encoder '{tmp_path / 'not-a-model'}': cannot load its config from")
    assert not out.exists()


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "..", "a/b", "a\\b"])
def test_name_must_be_a_single_directory_name(name):
    with pytest.raises(ConfigError, match=r"name: Value error, must be a single directory name"):
        parse_experiment({"name": name, "stages": [{"name": "t", "tasks": ["rte"]}]}, "exp.yaml")


def test_name_cannot_put_a_run_outside_runs(tmp_path, tiny_experiment, monkeypatch, capsys):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert run(tiny_experiment(name="../../escaped"), None) == 2
    assert "must be a single directory name" in capsys.readouterr().err
    assert not (tmp_path / "escaped").exists() and not (work / "runs").exists()


def test_output_directory_that_is_a_file(tmp_path, tiny_experiment, capsys):
    out = tmp_path / "run"
    out.write_text("a file\n")
    assert run(tiny_experiment(), out) == 2
    assert capsys.readouterr().err.strip() == f"taskmix: error: {out}: output directory exists and is not a directory"
    assert out.read_text() == "a file\n"


def test_output_directory_inside_a_file(tmp_path, tiny_experiment, capsys):
    (tmp_path / "file").write_text("a file\n")
    assert run(tiny_experiment(), tmp_path / "file" / "run") == 1
    assert capsys.readouterr().err.strip() == f"taskmix: error: {tmp_path / 'file' / 'run'}: Not a directory (ENOTDIR)"


def test_unwritable_output_directory(tmp_path, tiny_experiment, monkeypatch, capsys):
    """Simulated (root may write anywhere): the lock file cannot be created."""
    out = tmp_path / "run"

    def refuse(path, *args):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr("taskmix.runlock.os.open", refuse)
    assert run(tiny_experiment(), out) == 1
    assert capsys.readouterr().err.strip() == f"taskmix: error: {out}/taskmix.lock: Permission denied (EACCES)"


class FullDisk(io.FileIO):
    """A temp file whose writes fail with ENOSPC once it holds `room` bytes."""

    room = 4096

    def write(self, data) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_disk_full_during_a_checkpoint_write(tmp_path, tiny_experiment, monkeypatch, capsys):
    experiment, out = tiny_experiment(), tmp_path / "run"
    assert run(experiment, out) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix in (".pt", ".json", ".md")}
    real_fdopen = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        if "w" in mode and Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith("."):  # an atomic write
            return FullDisk(fd, "wb")
        return real_fdopen(fd, mode, *args, **kwargs)

    monkeypatch.setattr("taskmix.rundir.os.fdopen", fdopen)
    assert run(experiment, out) == 1
    checkpoint = out / "pretrained" / "target" / "checkpoint.pt"
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"taskmix: error: {checkpoint}: No space left on device (ENOSPC)")
    assert {p: p.read_bytes() for p in before} == before  # previous outputs intact
    assert not list(out.rglob(".*"))  # no temp file left behind


class InterruptedWhileWriting(io.FileIO):
    """A file whose third write receives SIGINT, as Ctrl-C landing inside torch.save would."""

    def write(self, data) -> int:
        self.writes = getattr(self, "writes", 0) + 1
        if self.writes == 3:
            signal.raise_signal(signal.SIGINT)
        return super().write(data)


@pytest.fixture
def default_sigint():
    """Python's own Ctrl-C handler for the test: a process started in the background by a
    non-interactive shell begins with SIGINT ignored, and then no KeyboardInterrupt comes."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_sigint_during_a_write_takes_effect_after_it(tmp_path, monkeypatch, default_sigint):
    monkeypatch.setattr("taskmix.rundir.os.fdopen", lambda fd, mode: InterruptedWhileWriting(fd, "wb"))
    with pytest.raises(KeyboardInterrupt) as raised:
        save_torch(tmp_path / "checkpoint.pt", {"w": torch.arange(10_000)})
    assert raised.value.__context__ is None  # one exception, not a RuntimeError chained to it
    assert torch.equal(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["w"], torch.arange(10_000))


def test_next_run_removes_temp_files_left_by_a_killed_writer(tmp_path, tiny_experiment):
    out = tmp_path / "run"
    stale = [out / f".config.yaml.x1y2z3{TEMP_SUFFIX}", out / "stages" / "k" / f".restart-0.pt.a1b2c3{TEMP_SUFFIX}"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * 1000)
    assert run(tiny_experiment(), out) == 0
    assert not any(p.exists() for p in stale)
    assert yaml.safe_load((out / "config.yaml").read_text())["name"] == "tiny"
