"""User-defined tasks declared in YAML: a validated spec and the `Task` built from it.

A custom task's `kind:` names a registered `CustomKind`: the task kind it trains as, the
`columns:` mapping it needs, the file formats it reads and how it builds a reader for one
split file.  The text kinds (single_classification, pair_classification, regression)
register here and reuse the generic table readers, so a user's TSV, CSV or JSONL file
behaves like a benchmark file: same error messages, same label checks.  Other kinds
register their custom entry next to their benchmark tasks (`register_custom_kind`).

Relative file paths resolve against the directory of the YAML file that declares the
task.  A test split is read without labels, like a benchmark test set, and its
predictions go to `<name>.tsv`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from taskmix.errors import ConfigError
from taskmix.kinds.base import TaskKind
from taskmix.kinds.classification import CLASSIFICATION
from taskmix.kinds.regression import REGRESSION
from taskmix.models.heads import check_head_settings
from taskmix.tasks.base import SplitReader, SplitSource, Task
from taskmix.tasks.readers import Column, Columns, LabelSpec, TableReader

SplitName = Literal["train", "dev", "test"]

# A reader factory: (spec, its parsed columns, the file's format name, whether the split is
# labelled) -> the reader of that split.  It raises ValueError for settings that cannot be
# read, which the spec reports as a validation error before anything runs.
ReaderFactory = Callable[["CustomTaskSpec", BaseModel, str, bool], SplitReader]


@dataclass(frozen=True)
class CustomKind:
    """How YAML custom tasks of one `kind:` value are read and trained.

    `columns` is the pydantic model of the `columns:` mapping; `formats` maps a file
    extension to the format name it implies (the values are the names `format:` accepts).
    """

    kind: TaskKind
    columns: type[BaseModel]
    formats: Mapping[str, str]
    reader: ReaderFactory


CUSTOM_KINDS: dict[str, CustomKind] = {}


def register_custom_kind(name: str, custom: CustomKind) -> CustomKind:
    """Make `kind: name` available to custom tasks; a name registered twice is an error."""
    if name in CUSTOM_KINDS and CUSTOM_KINDS[name] != custom:
        raise ConfigError(f"custom task kind '{name}' is registered twice")
    CUSTOM_KINDS[name] = custom
    return custom


class CustomTaskSpec(BaseModel):
    """One `custom_tasks` entry of an experiment file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: str
    splits: dict[SplitName, str]
    format: str | None = None
    header: bool = True
    columns: dict[str, Column] = Field(default_factory=dict)
    labels: list[str] | None = None
    metrics: list[str] = Field(default_factory=list)
    head_settings: dict[str, Any] = Field(default_factory=dict, description="settings of the kind's head")
    _columns: BaseModel = PrivateAttr()

    @property
    def custom(self) -> CustomKind:
        return CUSTOM_KINDS[self.kind]

    @property
    def task_kind(self) -> TaskKind:
        return self.custom.kind

    def file_format(self, file: str) -> str:
        """The declared format, else the one implied by the file extension."""
        formats = self.custom.formats
        if self.format is not None:
            return self.format
        suffix = Path(file).suffix.lower()
        if suffix not in formats:
            raise ValueError(
                f"cannot tell the format of '{file}' from its extension; "
                f"set format to one of {', '.join(sorted(set(formats.values())))}"
            )
        return formats[suffix]

    def reader(self, split: str) -> SplitReader:
        """The reader of one split's file (unlabelled for the test split)."""
        file = self.splits[split]  # type: ignore[index]
        return self.custom.reader(self, self._columns, self.file_format(file), split != "test")

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        if kind not in CUSTOM_KINDS:
            raise ValueError(f"unknown custom task kind '{kind}'; choose from {', '.join(sorted(CUSTOM_KINDS))}")
        return kind

    @field_validator("splits")
    @classmethod
    def _train_and_dev(cls, splits: dict[str, str]) -> dict[str, str]:
        missing = [name for name in ("train", "dev") if name not in splits]
        if missing:
            raise ValueError(f"splits needs {' and '.join(missing)} (test is optional)")
        return splits

    @model_validator(mode="after")
    def _consistent(self) -> CustomTaskSpec:
        self._columns = self.custom.columns.model_validate(self.columns)
        if self.format is not None and self.format not in set(self.custom.formats.values()):
            raise ValueError(f"a {self.kind} task reads format {', '.join(sorted(set(self.custom.formats.values())))}, "
                             f"not {self.format!r}")
        self._check_labels_and_metrics()
        try:
            check_head_settings(self.task_kind.head, self.head_settings, f"custom task '{self.name}'")
        except ConfigError as err:
            raise ValueError(str(err)) from None
        for split in self.splits:
            self.reader(split)
        return self

    def _check_labels_and_metrics(self) -> None:
        family = self.task_kind.name
        allowed = self.task_kind.metrics_allowed
        if not self.task_kind.label_set:
            if self.labels is not None:
                raise ValueError(f"a {family} task takes no labels list")
        elif not self.labels or len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"a {family} task needs labels: at least two distinct strings")
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


def build_custom_task(spec: CustomTaskSpec, base_dir: Path) -> Task:
    """Turn a validated spec into a `Task` whose split paths are absolute."""
    splits = {}
    for split, file in spec.splits.items():
        path = Path(file).expanduser()
        if not path.is_absolute():
            path = Path(base_dir) / path
        splits[split] = SplitSource(str(path.absolute()), spec.reader(split))
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
        head_settings=dict(spec.head_settings),
    )


# -- the text kinds: table files (TSV, CSV, JSONL) with text columns -------------------------

TABLE_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl"}


class TextColumns(BaseModel):
    """Header names (or JSON keys) of the fields; integer indices for headerless files."""

    model_config = ConfigDict(extra="forbid")

    text_a: Column
    text_b: Column | None = None
    label: Column
    uid: Column | None = None


class SingleTextColumns(TextColumns):
    @model_validator(mode="after")
    def _single(self) -> SingleTextColumns:
        if self.text_b is not None:
            raise ValueError("columns.text_b is only for pair_classification")
        return self


class PairTextColumns(TextColumns):
    @model_validator(mode="after")
    def _pair(self) -> PairTextColumns:
        if self.text_b is None:
            raise ValueError("a pair_classification task needs columns.text_b")
        return self


def table_reader(spec: CustomTaskSpec, columns: BaseModel, fmt: str, labelled: bool) -> TableReader:
    """A generic table reader over the text columns (labels parsed by the task's kind)."""
    assert isinstance(columns, TextColumns)
    used = [c for c in (columns.text_a, columns.text_b, columns.label, columns.uid) if c is not None]
    if fmt == "jsonl" and any(isinstance(c, int) for c in used):
        raise ValueError("JSONL columns must be key names, not indices")
    if fmt != "jsonl" and not spec.header and any(isinstance(c, str) for c in used):
        raise ValueError("with header: false, columns must be 0-based field indices")
    if not labelled:
        return TableReader(fmt, Columns(text_a=columns.text_a, text_b=columns.text_b, uid=columns.uid),  # type: ignore[arg-type]
                           header=spec.header)
    return TableReader(fmt, Columns(text_a=columns.text_a, text_b=columns.text_b, label=columns.label,  # type: ignore[arg-type]
                                    uid=columns.uid),
                       LabelSpec(spec.task_kind, tuple(spec.labels or ())), header=spec.header)


for _name, _kind, _columns in (
    ("single_classification", CLASSIFICATION, SingleTextColumns),
    ("pair_classification", CLASSIFICATION, PairTextColumns),
    ("regression", REGRESSION, TextColumns),
):
    register_custom_kind(_name, CustomKind(_kind, _columns, TABLE_FORMATS, table_reader))
