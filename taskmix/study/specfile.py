"""The study spec saved next to its results, so a report can draw the declared tables.

`taskmix report` gets only a study directory; the study file may since have moved or
changed.  Whoever runs a study saves its spec here with `save_study_spec`; the report
reads it with `load_study_spec`.  Transfer studies keep their transfer file the same way.  Kept out of `grid` so `study status` stays light.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, TypeVar

from pydantic import BaseModel

from taskmix.errors import ConfigError
from taskmix.rundir import write_text
from taskmix.study.grid import StudySpec, parse_study

STUDY_FILE = "study.json"
Spec = TypeVar("Spec", bound=BaseModel)


def save_spec(study_dir: str | Path, file_name: str, spec: BaseModel) -> Path:
    """Write a spec as JSON into the study directory atomically; keys keep their order (grid order is table order)."""
    text = json.dumps(spec.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
    return write_text(Path(study_dir) / file_name, text)


def saved_spec(study_dir: str | Path, file_name: str, parse: Callable[[Any, str], Spec], what: str) -> Spec | None:
    """A spec written by `save_spec`, validated by `parse`, or None when the study directory has none."""
    path = Path(study_dir) / file_name
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the saved {what}: {err}") from err
    return parse(raw, str(path))


def save_study_spec(study_dir: str | Path, spec: StudySpec) -> Path:
    return save_spec(study_dir, STUDY_FILE, spec)


def load_study_spec(study_dir: str | Path) -> StudySpec | None:
    return saved_spec(study_dir, STUDY_FILE, parse_study, "study spec")
