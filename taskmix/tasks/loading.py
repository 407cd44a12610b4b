"""Load one split of a task, from a local data directory or from the Hugging Face hub.

Local files are the default in tests and offline runs; the hub is used only when no data
directory is given (neither on the command line nor in TASKMIX_DATA).  Split paths that
are absolute (custom tasks) are always read locally.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from taskmix.errors import ConfigError, DataError
from taskmix.tasks.base import Example, Task
from taskmix.tasks.registry import get_task

DATA_ENV = "TASKMIX_DATA"
HUB_NO_LABEL = -1  # the hub's label for unlabelled rows (test sets, SNLI pairs without gold)


def resolve_data_dir(cli_value: str | Path | None) -> Path | None:
    """The data directory: the command-line value, else $TASKMIX_DATA, else None (the hub)."""
    value = cli_value or os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else None


def split_file(task: Task, split: str, data_dir: Path | None) -> Path | None:
    """The local file a split is read from, or None when it comes from the hub."""
    path = Path(task.splits[split].path)
    if path.is_absolute():
        return path
    return None if data_dir is None else Path(data_dir) / path


def companion_files(task: Task, split: str, path: Path) -> list[Path]:
    """Other files a split's reader reads besides `path` (a parallel text's target side, the
    training file an output vocabulary is learned from): the reader's `companions(path)`, if any.
    Caches key a split on these files too."""
    companions = getattr(task.splits[split].reader, "companions", None)
    return [] if companions is None else [Path(p) for p in companions(path)]


def hub_source(task: Task, split: str) -> str:
    """What identifies a split loaded from the hub (it has no local file to hash or stat)."""
    return f"hub:{task.hub.path}:{task.hub.name}:{split}" if task.hub else f"hub:{task.name}:{split}"


def reader_version(reader: object) -> str:
    """A split reader's code version: `module.qualname@VERSION` (`VERSION` 1 when the reader has none).

    A reader that starts to read the same file into different examples declares a higher
    `VERSION`, so token caches re-tokenise and finished stages retrain.
    """
    code = reader if inspect.isfunction(reader) else type(reader)
    return f"{code.__module__}.{code.__qualname__}@{getattr(reader, 'VERSION', 1)}"


def load_split(task: Task | str, split: str, data_dir: Path | None) -> list[Example]:
    """Read every example of `split`; fails on unknown splits, missing files and empty splits."""
    if isinstance(task, str):
        task = get_task(task)
    source = task.splits.get(split)
    if source is None:
        raise ConfigError(
            f"task '{task.name}' has no split '{split}'; its splits are: {', '.join(task.splits)}"
        )
    path = Path(source.path)
    where: Path | None = None
    if data_dir is None and not path.is_absolute():
        examples = _load_from_hub(task, split)
    else:
        where = _local_path(task, split, path, data_dir)
        examples = source.reader(where)
    if not examples:
        raise DataError(f"no examples in task '{task.name}' split '{split}'", where)
    return examples


def _local_path(task: Task, split: str, path: Path, data_dir: Path | None) -> Path:
    """Resolve a split path against the data directory, checking that the file exists."""
    if not path.is_absolute() and data_dir is not None:
        if not Path(data_dir).is_dir():
            raise DataError(
                f"data directory does not exist (needed for task '{task.name}' split '{split}')",
                data_dir,
            )
        path = Path(data_dir) / path
    if not path.is_file():
        note = f"; {task.data_note}" if task.data_note else ""
        raise DataError(f"file for task '{task.name}' split '{split}' not found{note}", path)
    return path


def _load_from_hub(task: Task, split: str) -> list[Any]:
    """Download the split through `datasets`; hub labels are indices in `task.labels` order.

    A hub label of -1 means "no label": on the official unlabelled test splits (those with
    a submission file) the example keeps label None, elsewhere the row is skipped.
    """
    hub = task.hub
    if hub is None or split not in hub.splits:
        raise ConfigError(
            f"task '{task.name}' split '{split}' is not on the hub; give a local data "
            f"directory (${DATA_ENV} or the command-line option)"
        )
    from datasets import load_dataset  # imported lazily: slow, and only needed online

    try:
        rows = load_dataset(hub.path, hub.name, split=hub.splits[split])
    except (ConnectionError, OSError) as exc:  # offline, or the hub is unreachable
        raise DataError(
            f"task '{task.name}': could not load {hub.path} ({hub.name}) from the Hugging Face hub: {exc}. "
            f"Give a local data directory (${DATA_ENV} or --data-dir)"
        ) from exc
    fields = hub.fields
    unlabelled = split in task.submission_files or ("label" not in fields and hub.row is None)
    if hub.row is not None:
        return _rows_from_hub(task, split, rows, not unlabelled)
    examples = []
    for position, row in enumerate(rows):
        label = None if unlabelled else row[fields["label"]]
        if not unlabelled and label == HUB_NO_LABEL:
            continue
        if label is not None:
            label = task.kind.hub_label(label)
        examples.append(
            Example(
                text_a=row[fields["text_a"]],
                text_b=row[fields["text_b"]] if "text_b" in fields else None,
                label=label,
                uid=str(row[fields["uid"]]) if "uid" in fields else str(position),
            )
        )
    return examples


def _rows_from_hub(task: Task, split: str, rows, labelled: bool) -> list[Any]:
    """Examples built by the task's own hub-row hook (kinds whose examples are not text columns)."""
    hub = task.hub
    assert hub is not None and hub.row is not None
    examples = []
    for position, row in enumerate(rows):
        try:
            example = hub.row(row, labelled)
        except ValueError as error:
            raise DataError(f"task '{task.name}': {hub.path} ({hub.name}) split {hub.splits[split]} "
                            f"row {position}: {error}") from None
        if example is not None:
            examples.append(example)
    return examples
