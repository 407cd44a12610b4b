"""Study files: a base experiment plus a grid over its fields, expanded into cells.

A cell is one experiment of the grid.  Its id is a hash of the experiment itself, so the
same experiment keeps the same id across edits of the study file and finished cells are
never redone.  Dotted paths (`stages.1.tasks`, `stages.target.max_train_examples`, `seed`)
address experiment fields; a list segment is a stage index or a stage name.  Paths always
refer to the base experiment, and stages removed by an axis are dropped last, so indices
do not shift while a cell is being built.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from taskmix.cache import canonical_json, digest
from taskmix.config import list_index, set_path
from taskmix.errors import ConfigError

ARROW = " → "
AVG_VALUE = "avg"


class Axis(BaseModel):
    """A named grid axis whose values are labels for sets of overrides.

    `values` maps each label to a mapping of dotted path -> value, or to null, which
    removes `stage` (a stage name or index) from the experiment, e.g. `none: null`.
    """

    model_config = ConfigDict(extra="forbid")

    stage: str | int | None = None
    values: dict[str, dict[str, Any] | None]

    @model_validator(mode="after")
    def _null_needs_stage(self) -> Axis:
        if self.stage is None and any(v is None for v in self.values.values()):
            raise ValueError("an axis with a null value must name the `stage` it removes")
        return self


class TableSpec(BaseModel):
    """A pivot table of the report, as the paper's Tables 6 and 7: one grid field per axis.

    `rows` and `columns` are grid keys; each table cell pools the cells of the study with
    that pair of values (e.g. over seeds).  `value` is "avg" (a cell's mean over its
    selected target-task scores) or a target task name; `filter` keeps only the cells
    whose grid values equal the given ones, e.g. `{subset: glue}`.
    """

    model_config = ConfigDict(extra="forbid")

    title: str
    rows: str
    columns: str
    value: str = AVG_VALUE
    filter: dict[str, Any] = {}


class StudySpec(BaseModel):
    """The study file: a base experiment (inline or from a file), axes, the grid and report tables."""

    model_config = ConfigDict(extra="forbid")

    name: str
    base: dict[str, Any] | None = None
    base_file: Path | None = None
    axes: dict[str, Axis] = {}
    grid: dict[str, list[Any]]
    exclude: list[dict[str, Any]] = []
    tables: list[TableSpec] = []

    @model_validator(mode="after")
    def _one_base(self) -> StudySpec:
        if (self.base is None) == (self.base_file is None):
            raise ValueError("give exactly one of `base` and `base_file`")
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{key}: empty list of values")
            axis = self.axes.get(key)
            if axis is not None:
                unknown = [v for v in values if str(v) not in axis.values]
                if unknown:
                    raise ValueError(f"grid.{key}: values {unknown} are not in axes.{key}.values")
        return self

    @model_validator(mode="after")
    def _exclusions_use_grid_keys(self) -> StudySpec:
        for i, rule in enumerate(self.exclude):
            for key, value in rule.items():
                if key not in self.grid:
                    raise ValueError(f"exclude.{i}: {key!r} is not a grid key (grid keys: {', '.join(self.grid)})")
                if value not in self.grid[key]:
                    raise ValueError(f"exclude.{i}: {value!r} is not a value of grid.{key}")
        return self

    def excluded(self, fields: dict[str, Any]) -> bool:
        """Whether a grid point matches every key of some `exclude` rule (so the grid need not be a full product)."""
        return any(all(fields[k] == v for k, v in rule.items()) for rule in self.exclude)

    @model_validator(mode="after")
    def _tables_use_grid_keys(self) -> StudySpec:
        """A misspelt key or filter value would silently give an empty table: reject it here."""
        for i, table in enumerate(self.tables):
            where = f"tables.{i} ({table.title})"
            keys = [("rows", table.rows), ("columns", table.columns), *(("filter", k) for k in table.filter)]
            for role, key in keys:
                if key not in self.grid:
                    raise ValueError(f"{where}: {role} {key!r} is not a grid key (grid keys: {', '.join(self.grid)})")
            for key, value in table.filter.items():
                if value not in self.grid[key]:
                    raise ValueError(f"{where}: filter {key}: {value!r} is not a value of grid.{key}")
        return self


@dataclass(frozen=True)
class Cell:
    """One experiment of a study: the grid values that made it and the experiment dict."""

    cell_id: str
    fields: dict[str, Any]
    experiment: dict[str, Any]

    @property
    def config_hash(self) -> str:
        """The full hash of the experiment; `cell_id` is its prefix."""
        return digest(self.experiment)


def cell_id_of(experiment: dict[str, Any]) -> str:
    """The short, stable id of an experiment."""
    return digest(experiment, 12)


def load_study(path: str | Path) -> StudySpec:
    """Read and validate a study YAML; `base_file` is resolved relative to the study file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read study file: {err}") from err
    spec = parse_study(raw, source=str(path))
    if spec.base_file is not None and not spec.base_file.is_absolute():
        spec = spec.model_copy(update={"base_file": path.parent / spec.base_file})
    return spec


def parse_study(raw: Any, source: str = "study") -> StudySpec:
    """Validate a study mapping, turning pydantic errors into one-line ConfigErrors."""
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        prefix = f"{source}: {where}: " if where else f"{source}: "
        raise ConfigError(prefix + first["msg"]) from err


def base_experiment(spec: StudySpec) -> dict[str, Any]:
    """The base experiment dict, read from `base_file` when the study names one."""
    if spec.base is not None:
        return spec.base
    assert spec.base_file is not None
    try:
        base = yaml.safe_load(spec.base_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{spec.base_file}: cannot read base experiment: {err}") from err
    if not isinstance(base, dict):
        raise ConfigError(f"{spec.base_file}: base experiment must be a mapping")
    return base


def expand(
    spec: StudySpec,
    validate: Callable[[dict[str, Any]], object] | None = None,
) -> list[Cell]:
    """All cells of the grid, in grid order, one per distinct experiment.

    `validate` (e.g. the engine's experiment model) is called on every experiment so a
    misspelt field fails here, naming the cell, rather than mid-study.  Grid points that
    give the same experiment (e.g. a setting of a removed stage) collapse to the first.
    """
    base = base_experiment(spec)
    keys = list(spec.grid)
    cells: dict[str, Cell] = {}
    for values in itertools.product(*(spec.grid[k] for k in keys)):
        fields = dict(zip(keys, values))
        if spec.excluded(fields):
            continue
        experiment = _build(base, spec.axes, fields)
        if validate is not None:
            try:
                validate(experiment)
            except (ValueError, ConfigError) as err:
                raise ConfigError(f"study {spec.name}: cell {canonical_json(fields)}: {err}") from err
        cells.setdefault(cell_id_of(experiment), Cell(cell_id_of(experiment), fields, experiment))
    return list(cells.values())


def _build(base: dict[str, Any], axes: dict[str, Axis], fields: dict[str, Any]) -> dict[str, Any]:
    """Apply one grid point's overrides to a copy of the base, then drop removed stages."""
    experiment = copy.deepcopy(base)
    dropped: list[int] = []
    for key, value in fields.items():
        axis = axes.get(key)
        if axis is None:
            set_path(experiment, key, value, where=f"grid path {key!r}")
            continue
        overrides = axis.values[str(value)]
        if overrides is None:
            assert axis.stage is not None
            dropped.append(stage_index(experiment, axis.stage, f"axes.{key}.stage"))
            continue
        for path, override in overrides.items():
            set_path(experiment, path, override, where=f"grid path {path!r}")
    if dropped:
        experiment["stages"] = [s for i, s in enumerate(experiment["stages"]) if i not in dropped]
    return experiment


def stage_index(experiment: dict[str, Any], stage: str | int, where: str = "stage") -> int:
    """Resolve a stage name or index to an index into `experiment['stages']`."""
    stages = experiment.get("stages")
    if not isinstance(stages, list):
        raise ConfigError(f"{where}: the experiment has no list of stages")
    return list_index(stages, str(stage), where)

