"""The study spec saved next to its results, so a report can draw the declared tables.

`taskmix report` gets only a study directory; the study file may since have moved or
changed.  Whoever runs a study saves its spec here with `save_study_spec`; the report
reads it with `load_study_spec`.  Kept out of `grid` so `study status` stays light.
"""

from __future__ import annotations

import json
from pathlib import Path

from taskmix.errors import ConfigError
from taskmix.rundir import write_text
from taskmix.study.grid import StudySpec, parse_study

STUDY_FILE = "study.json"


def save_study_spec(study_dir: str | Path, spec: StudySpec) -> Path:
    """Write `<study_dir>/study.json` atomically; keys keep their order (grid order is table order)."""
    text = json.dumps(spec.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
    return write_text(Path(study_dir) / STUDY_FILE, text)


def load_study_spec(study_dir: str | Path) -> StudySpec | None:
    """The spec saved by `save_study_spec`, or None when the study directory has none."""
    path = Path(study_dir) / STUDY_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the saved study spec: {err}") from err
    return parse_study(raw, source=str(path))
