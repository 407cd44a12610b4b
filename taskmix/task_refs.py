"""Which kind of task a stage's task entry names: a labelled (GLUE-style) task or a pretraining task.

A name that a pretraining task spells (ignoring case and `-` versus `_`) is a pretraining
task and needs a `corpus`; every other name is looked up in the task registry and must not
have one.  An unknown name is reported with the known names of both kinds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskmix.config import TaskRef
from taskmix.errors import ConfigError
from taskmix.models.heads import check_head_settings
from taskmix.pretraining import TASKS as PRETRAINING_TASKS
from taskmix.tasks import get_task
from taskmix.tasks.base import Task


def pretraining_name(name: str) -> str | None:
    """The pretraining task `name` spells, or None."""
    key = name.lower().replace("-", "_")
    return key if key in PRETRAINING_TASKS else None


def labelled_task(stage: str, ref: TaskRef) -> Task | None:
    """Validate one entry; returns its registered task, or None for a pretraining task."""
    if pretraining_name(ref.name):
        if ref.corpus is None:
            raise ConfigError(f"stage '{stage}': pretraining task '{ref.name}' needs a corpus (a text file)")
        return None
    try:
        task = get_task(ref.name)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; pretraining tasks (with a corpus): {', '.join(PRETRAINING_TASKS)}") from None
    if ref.corpus is not None:
        raise ConfigError(f"stage '{stage}': task '{task.name}' reads its own splits and takes no corpus; "
                          f"corpora are for pretraining tasks: {', '.join(PRETRAINING_TASKS)}")
    check_head_settings(task.kind.head, ref.head_settings, f"stage '{stage}': task '{task.name}'")
    return task


def entry_head_settings(ref: TaskRef, task: Task) -> dict[str, Any]:
    """The task's head settings with the stage entry's overrides on top."""
    return {**task.head_settings, **ref.head_settings}


def corpus_path(path: str, data_dir: Path | None) -> Path:
    """A corpus file: absolute, or relative to the data directory."""
    resolved = Path(path)
    if not resolved.is_absolute():
        if data_dir is None:
            raise ConfigError(f"corpus '{path}' is relative, but no data directory is set (--data-dir)")
        resolved = Path(data_dir) / resolved
    if not resolved.is_file():
        raise ConfigError(f"corpus file not found: {resolved}")
    return resolved


def dev_split_names(ref: TaskRef, task: Task) -> list[str]:
    """The task splits a stage entry validates on: none when the dev rows are held out of training."""
    if ref.dev_holdout:
        return []
    return [ref.dev_split] if ref.dev_split else list(task.dev_splits)
