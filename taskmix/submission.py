"""Test-set prediction files in the formats the GLUE and SuperGLUE servers accept.

The file name comes from `Task.submission_files` and its extension picks the format: GLUE
takes a TSV (`index<TAB>prediction`, label strings, STS-B scores), SuperGLUE a JSON line per
example (`{"idx": ..., "label": ...}`; MultiRC one per paragraph); generation tasks write `.txt`, one
output per line.  Files are written atomically so an interrupted run never leaves a truncated
submission behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from taskmix.errors import ConfigError
from taskmix.rundir import write_text
from taskmix.tasks.base import Task


def _tsv(task: Task, uids: Sequence[str], predictions: Sequence[float]) -> str:
    rows = [f"{uid}\t{task.kind.submission_label(task, p)}\n" for uid, p in zip(uids, predictions)]
    return "index\tprediction\n" + "".join(rows)


def _jsonl(task: Task, uids: Sequence[str], predictions: Sequence[float]) -> str:
    """One JSON object per line, as the task's kind lays its file out (`TaskKind.submission_records`)."""
    return "".join(json.dumps(record) + "\n" for record in task.kind.submission_records(task, uids, predictions))


def _lines(task: Task, uids: Sequence[str], predictions: Sequence[float]) -> str:
    """Plain text, one prediction per line in row order (generated sentences, e.g. translations)."""
    return "".join(f"{task.kind.submission_label(task, p)}\n" for p in predictions)


FORMATS = {".tsv": _tsv, ".jsonl": _jsonl, ".txt": _lines}


def write_submission(
    task: Task, split: str, uids: Sequence[str], predictions: Sequence[float], out_dir: Path | str
) -> Path:
    """Write the predictions of one test split as the task's submission file; return its path.

    `predictions` are what the task's kind predicts (class indices, scores), aligned with
    `uids`, the row ids of the test file.
    """
    name = task.submission_files.get(split)
    if name is None:
        raise ConfigError(f"task {task.name!r} has no submission file for split {split!r}")
    render = FORMATS.get(Path(name).suffix)
    if render is None:
        raise ConfigError(f"task {task.name!r}: submission file {name!r} is not .tsv, .jsonl or .txt")
    if len(uids) != len(predictions):
        raise ValueError(f"task {task.name!r}: {len(predictions)} predictions for {len(uids)} rows")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    write_text(path, render(task, uids, predictions))
    return path
