"""Transfer files: candidate intermediate tasks × target tasks × seeds, expanded into an ordinary study.

A transfer file is a compact way to write the study every STILTs user needs: the cells are
"no intermediate" and "candidate → targets" for each seed, one cell per (candidate, seed)
with the targets as a separate final stage, so each intermediate stage is trained once per
seed and shared by every target, and the no-intermediate target runs are shared by every
cell of a seed (both through the study's stage cache).  The generated study has one axis,
`intermediate`, whose value `none` removes the intermediate stage; the matrix reads the
cells' `intermediate` and `seed` fields back from the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from taskmix.config import TaskRef, read_yaml
from taskmix.errors import ConfigError
from taskmix.study.grid import Axis, StudySpec
from taskmix.study.specfile import save_spec, saved_spec

AXIS = "intermediate"  # the study axis (and cell field) naming a cell's candidate
NONE = "none"  # its value for the cells without an intermediate stage
INTERMEDIATE, TARGET = "intermediate", "target"  # the two stage names of every cell
TRANSFER_FILE = "transfer.json"
_STAGE_OWNED = {"name", "tasks", "separate"}  # stage keys the transfer file sets itself
_EXPERIMENT_OWNED = {"name", "seed", "stages", "pipelines"}


def _entry(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class TransferSpec(BaseModel):
    """The transfer file.

    `candidates` maps a label to an intermediate task entry (a task name, or a stage task
    entry with its splits and limits); `targets` lists target task entries; `intermediate`
    and `target` are the settings of the two stages (anything a stage takes but its name,
    tasks and `separate`); `experiment` holds the experiment fields every cell shares
    (encoder, max_length, precision, custom_tasks, ...).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    seeds: list[int] = Field(default=[1], min_length=1)
    candidates: dict[str, TaskRef] = Field(min_length=1)
    targets: list[TaskRef] = Field(min_length=1)
    experiment: dict[str, Any] = {}
    intermediate: dict[str, Any] = {}
    target: dict[str, Any] = {}

    @field_validator("candidates", mode="before")
    @classmethod
    def _candidate_entries(cls, value: Any) -> Any:
        return {k: _entry(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("targets", mode="before")
    @classmethod
    def _target_entries(cls, value: Any) -> Any:
        return [_entry(v) for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _owned_keys(self) -> TransferSpec:
        if NONE in self.candidates:
            raise ValueError(f"candidates: {NONE!r} is reserved for the cells without an intermediate stage")
        for section, owned in (("intermediate", _STAGE_OWNED), ("target", _STAGE_OWNED),
                               ("experiment", _EXPERIMENT_OWNED)):
            clash = sorted(owned & set(getattr(self, section)))
            if clash:
                raise ValueError(f"{section}: {', '.join(clash)} are set by the transfer file itself "
                                 f"(use `seeds`, `candidates` and `targets`)")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: repeated values in {self.seeds}")
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"targets: repeated tasks in {names}")
        return self

    def candidate_stage(self, label: str) -> dict[str, Any]:
        """The intermediate stage of a candidate's cells."""
        ref = self.candidates[label].model_dump(mode="json", exclude_defaults=True)
        return {"name": INTERMEDIATE, "tasks": [ref], **self.intermediate}

    def base_experiment(self, seed: int | None = None) -> dict[str, Any]:
        """The experiment of the first candidate's cell (every other cell is an axis value away)."""
        first = next(iter(self.candidates))
        targets = [t.model_dump(mode="json", exclude_defaults=True) for t in self.targets]
        return {
            **self.experiment, "seed": self.seeds[0] if seed is None else seed,
            "stages": [self.candidate_stage(first),
                       {"name": TARGET, "tasks": targets, "separate": True, **self.target}],
        }

    def to_study(self) -> StudySpec:
        """The study of the matrix: axis `intermediate` (none or a candidate) × seeds."""
        values: dict[str, dict[str, Any] | None] = {NONE: None}
        for label in self.candidates:
            values[label] = {f"stages.{INTERMEDIATE}.tasks": self.candidate_stage(label)["tasks"]}
        return StudySpec(
            name=self.name, base=self.base_experiment(),
            axes={AXIS: Axis(stage=INTERMEDIATE, values=values)},
            grid={AXIS: [NONE, *self.candidates], "seed": list(self.seeds)},
        )


def parse_transfer(raw: Any, source: str = "transfer file") -> TransferSpec:
    """Validate a transfer mapping; a pydantic error becomes one ConfigError naming the key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return TransferSpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"{source}: {where + ': ' if where else ''}{message}") from None


def load_transfer(path: str | Path) -> TransferSpec:
    path = Path(path)
    return parse_transfer(read_yaml(path), str(path))


def save_transfer(study_dir: str | Path, spec: TransferSpec) -> Path:
    """Keep the transfer file next to the study's results: `taskmix select` and reports read it there."""
    return save_spec(study_dir, TRANSFER_FILE, spec)


def saved_transfer(study_dir: str | Path) -> TransferSpec | None:
    """The transfer file saved in a study directory, or None for an ordinary study."""
    return saved_spec(study_dir, TRANSFER_FILE, parse_transfer, "transfer file")
