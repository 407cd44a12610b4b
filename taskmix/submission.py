"""Test-set prediction files in the formats the GLUE and SuperGLUE servers accept.

The file name comes from `Task.submission_files` and its extension picks the format: GLUE
takes a TSV (`index<TAB>prediction`, label strings, STS-B scores), SuperGLUE a JSON line per
example (`{"idx": ..., "label": ...}`).  Files are written atomically so an interrupted run
never leaves a truncated submission behind.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from taskmix.errors import ConfigError
from taskmix.rundir import write_text
from taskmix.tasks.base import HeadKind, Task

# Range of regression scores the GLUE server accepts (STS-B similarity, 0 to 5).
REGRESSION_RANGE = (0.0, 5.0)


def _label(task: Task, prediction: float) -> str:
    """The label string of a class index, or the clipped score (3 decimals) for regression."""
    if task.kind is HeadKind.REGRESSION:
        if not math.isfinite(prediction):
            raise ValueError(f"task {task.name!r}: non-finite regression prediction {prediction}")
        low, high = REGRESSION_RANGE
        return f"{min(max(float(prediction), low), high):.3f}"
    index = int(prediction)
    if not 0 <= index < len(task.labels):
        count = len(task.labels)
        raise ValueError(f"task {task.name!r}: class index {index} outside {count} labels")
    return task.labels[index]


def _json_label(label: str) -> bool | int | str:
    """SuperGLUE stores booleans (BoolQ, WiC, ...) as JSON true/false, choices (COPA) as ints."""
    if label.lower() in ("true", "false"):
        return label.lower() == "true"
    return int(label) if label.isdigit() else label


def _tsv(task: Task, uids: Sequence[str], predictions: Sequence[float]) -> str:
    rows = [f"{uid}\t{_label(task, p)}\n" for uid, p in zip(uids, predictions)]
    return "index\tprediction\n" + "".join(rows)


def _jsonl(task: Task, uids: Sequence[str], predictions: Sequence[float]) -> str:
    rows = []
    for uid, p in zip(uids, predictions):
        try:
            idx = int(uid)
        except ValueError:
            message = f"task {task.name!r}: SuperGLUE needs integer ids, got {uid!r}"
            raise ValueError(message) from None
        rows.append(json.dumps({"idx": idx, "label": _json_label(_label(task, p))}) + "\n")
    return "".join(rows)


FORMATS = {".tsv": _tsv, ".jsonl": _jsonl}


def write_submission(
    task: Task, split: str, uids: Sequence[str], predictions: Sequence[float], out_dir: Path | str
) -> Path:
    """Write the predictions of one test split as the task's submission file; return its path.

    `predictions` are class indices (classification) or scores (regression), aligned with
    `uids`, the row ids of the test file.
    """
    name = task.submission_files.get(split)
    if name is None:
        raise ConfigError(f"task {task.name!r} has no submission file for split {split!r}")
    render = FORMATS.get(Path(name).suffix)
    if render is None:
        raise ConfigError(f"task {task.name!r}: submission file {name!r} is not .tsv or .jsonl")
    if len(uids) != len(predictions):
        raise ValueError(f"task {task.name!r}: {len(predictions)} predictions for {len(uids)} rows")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    write_text(path, render(task, uids, predictions))
    return path
