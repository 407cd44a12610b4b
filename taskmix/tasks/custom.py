"""User-defined tasks declared in YAML: a validated spec and the `Task` built from it.

A custom task reuses the generic readers, so a user's TSV, CSV or JSONL file behaves like a
benchmark file: same error messages, same label checks.  Relative file paths resolve
against the directory of the YAML file that declares the task.  A test split is read
without labels, like a benchmark test set, and its predictions go to `<name>.tsv`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taskmix.kinds import KINDS, TaskKind, custom_kind
from taskmix.kinds.text import TextKind
from taskmix.tasks.base import SplitSource, Task
from taskmix.tasks.readers import Column, Columns, Format, LabelSpec, TableReader

EXTENSIONS: dict[str, Format] = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl"}

# The `kind:` values of the kinds whose rows are text columns, which these specs describe.
Kind = Literal[tuple(n for kind in KINDS.values() if isinstance(kind, TextKind) for n in kind.custom_names)]
SplitName = Literal["train", "dev", "test"]


class CustomColumns(BaseModel):
    """Header names (or JSON keys) of the fields; integer indices for headerless files."""

    model_config = ConfigDict(extra="forbid")

    text_a: Column
    text_b: Column | None = None
    label: Column
    uid: Column | None = None

    def used(self) -> list[Column]:
        return [c for c in (self.text_a, self.text_b, self.label, self.uid) if c is not None]


class CustomTaskSpec(BaseModel):
    """One `custom_tasks` entry of an experiment file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: Kind
    splits: dict[SplitName, str]
    format: Format | None = None
    header: bool = True
    columns: CustomColumns
    labels: list[str] | None = None
    metrics: list[str] = Field(default_factory=list)

    @property
    def task_kind(self) -> TaskKind:
        return custom_kind(self.kind)

    def file_format(self, file: str) -> Format:
        """The declared format, else the one implied by the file extension."""
        if self.format is not None:
            return self.format
        suffix = Path(file).suffix.lower()
        if suffix not in EXTENSIONS:
            raise ValueError(
                f"cannot tell the format of '{file}' from its extension; "
                f"set format to one of {', '.join(EXTENSIONS.values())}"
            )
        return EXTENSIONS[suffix]

    @field_validator("splits")
    @classmethod
    def _train_and_dev(cls, splits: dict[str, str]) -> dict[str, str]:
        missing = [name for name in ("train", "dev") if name not in splits]
        if missing:
            raise ValueError(f"splits needs {' and '.join(missing)} (test is optional)")
        return splits

    @model_validator(mode="after")
    def _consistent(self) -> CustomTaskSpec:
        self._check_text_b()
        self._check_labels_and_metrics()
        for file in self.splits.values():
            self._check_columns(self.file_format(file))
        return self

    def _check_text_b(self) -> None:
        if self.kind == "pair_classification" and self.columns.text_b is None:
            raise ValueError("a pair_classification task needs columns.text_b")
        if self.kind == "single_classification" and self.columns.text_b is not None:
            raise ValueError("columns.text_b is only for pair_classification")

    def _check_labels_and_metrics(self) -> None:
        family = self.task_kind.name
        allowed = self.task_kind.metrics_allowed
        if not self.task_kind.label_set:
            if self.labels is not None:
                raise ValueError(f"a {family} task takes no labels list")
        elif not self.labels or len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ValueError("a classification task needs labels: at least two distinct strings")
        if not self.metrics:
            self.metrics = list(self.task_kind.default_metrics)
        unknown = [m for m in self.metrics if m not in allowed]
        if unknown:
            raise ValueError(
                f"unknown metric(s) {', '.join(unknown)} for a {family} task; "
                f"choose from {', '.join(allowed)}"
            )
        if "f1" in self.metrics and len(self.labels or ()) != 2:
            raise ValueError("metric f1 needs exactly two labels; use f1_macro")

    def _check_columns(self, fmt: Format) -> None:
        used = self.columns.used()
        if fmt == "jsonl" and any(isinstance(c, int) for c in used):
            raise ValueError("JSONL columns must be key names, not indices")
        if fmt != "jsonl" and not self.header and any(isinstance(c, str) for c in used):
            raise ValueError("with header: false, columns must be 0-based field indices")


def build_custom_task(spec: CustomTaskSpec, base_dir: Path) -> Task:
    """Turn a validated spec into a `Task` whose split paths are absolute."""
    columns = Columns(
        text_a=spec.columns.text_a,
        text_b=spec.columns.text_b,
        label=spec.columns.label,
        uid=spec.columns.uid,
    )
    unlabelled = Columns(text_a=columns.text_a, text_b=columns.text_b, uid=columns.uid)
    target = LabelSpec(spec.task_kind, tuple(spec.labels or ()))
    splits = {}
    for split, file in spec.splits.items():
        path = Path(file).expanduser()
        if not path.is_absolute():
            path = Path(base_dir) / path
        fmt = spec.file_format(file)
        reader = (
            TableReader(fmt, unlabelled, header=spec.header)
            if split == "test"
            else TableReader(fmt, columns, target, header=spec.header)
        )
        splits[split] = SplitSource(str(path.absolute()), reader)
    has_test = "test" in splits
    return Task(
        name=spec.name,
        kind=spec.task_kind,
        metrics=tuple(spec.metrics),
        splits=splits,
        labels=tuple(spec.labels or ()),
        test_splits=("test",) if has_test else (),
        submission_files={"test": f"{spec.name}.tsv"} if has_test else {},
        description=f"custom {spec.kind} task",
    )
