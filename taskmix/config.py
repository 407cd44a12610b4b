"""Experiment files: a validated schema, YAML loading and `--set key=value` overrides.

Every key is checked (unknown keys are errors, not silently ignored) so a typo in an
experiment file fails before any training starts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from taskmix.cache import digest
from taskmix.errors import ConfigError, clip
from taskmix.mixture import MixtureConfig
from taskmix.tasks.custom import CustomTaskSpec


MAX_SEED = 2**32 - 1  # restart seeds (seed * 1000 + restart) stay within torch's and numpy's seed range


def check_name(name: str) -> None:
    """A run or study name becomes one directory under runs/: it must not reach outside it."""
    if name in ("", ".", "..") or any(c in name for c in "/\\") or any(ord(c) < 32 for c in name):
        raise ValueError(f"must be a single directory name (no '/', '\\', '..' or control characters), "
                         f"got {clip(name)!r}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskRef(Strict):
    """A task as used in a stage, with optional split choices and size limits.

    `train_splits` may list several splits that are concatenated (e.g. SNLI dev+test used as
    an intermediate training set when the official train split is absent).  A pretraining
    task (MLM, QT, ...) instead names a text `corpus` (relative to the data directory), an
    optional `dev_corpus` (default: held-out documents) and task `options`.
    """

    name: str
    head: str | None = Field(default=None, description="head name; tasks naming the same head share it")
    train_splits: list[str] = ["train"]
    dev_split: str | None = None
    dev_holdout: int | None = Field(
        default=None, gt=0, description="carve this many training rows out as the dev set (for tasks without one)"
    )
    max_train_examples: int | None = Field(default=None, gt=0)
    max_dev_examples: int | None = Field(default=None, gt=0)
    corpus: str | None = Field(default=None, description="pretraining tasks: the training text file")
    dev_corpus: str | None = None
    options: dict[str, float | bool] = Field(default={}, description="pretraining task settings, e.g. mask_rate")

    @model_validator(mode="after")
    def _one_dev_source(self) -> "TaskRef":
        if self.dev_split and self.dev_holdout:
            raise ValueError("give at most one of dev_split and dev_holdout")
        return self

    @model_validator(mode="after")
    def _corpus_fields(self) -> "TaskRef":
        if self.corpus is None and (self.dev_corpus or self.options):
            raise ValueError("dev_corpus and options apply only to a pretraining task with a corpus")
        split_choices = self.train_splits != ["train"] or self.dev_split or self.dev_holdout or self.max_train_examples
        if self.corpus is not None and split_choices:
            raise ValueError("a task on a corpus takes no train_splits, dev_split, dev_holdout or max_train_examples")
        return self


class R3FConfig(Strict):
    """R3F (Muppet §3.2): symmetric KL between clean and noised-embedding predictions."""

    weight: float = Field(default=1.0, ge=0.0, description="lambda")
    sigma: float = Field(default=1e-5, ge=0.0)
    noise: Literal["normal", "uniform"] = "normal"


class StageConfig(Strict):
    """One training phase on one mixture of tasks, with a fresh optimizer."""

    name: str
    tasks: list[TaskRef]
    separate: bool = False
    keep_heads: bool = False
    max_epochs: float = Field(default=3, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    batch_size: int = Field(default=32, gt=0)
    grad_accumulation: int = Field(default=1, gt=0)
    lr: float = Field(default=2e-5, gt=0)
    optimizer: Literal["adamw", "amsgrad"] = "adamw"
    weight_decay: float = Field(default=0.01, ge=0)
    warmup: float = Field(default=0.1, ge=0, le=1, description="fraction of steps with linear warmup")
    scheduler: Literal["linear", "plateau", "constant"] = "linear"
    lr_decay_factor: float = Field(default=0.5, gt=0, lt=1)
    lr_decay_patience: int = Field(default=4, ge=0)
    min_lr: float = Field(default=1e-6, ge=0)
    validate_every: int | Literal["epoch"] = Field(default="epoch", description="validate every N steps per task, "
                                                                               "or once per epoch")
    patience: int | None = Field(default=None, ge=1)
    max_grad_norm: float | None = 1.0
    length_grouping: bool = Field(default=True, description="length-grouped training batches; false draws plain "
                                                            "random batches (both padded dynamically)")
    dropout: float = Field(default=0.1, ge=0, lt=1)
    restarts: int = Field(default=1, ge=1)
    max_train_examples: int | None = Field(default=None, gt=0)
    max_dev_examples: int | None = Field(default=None, gt=0)
    mixture: MixtureConfig = MixtureConfig()
    r3f: R3FConfig | None = None
    predict_test: bool = True
    task_ids: bool = Field(default=False, description="add a learned task-id embedding (pretraining tasks, seed 003)")
    frozen: bool = Field(default=False, description="train only the heads (and the encoder's trainable_when_frozen "
                                                    "parameters, e.g. scalar-mix weights); the encoder runs in eval mode")
    cache_features: bool = Field(default=True, description="frozen stages whose encoder has nothing trainable: "
                                                           "encode each split once and reuse it (false recomputes "
                                                           "the encoder every step)")
    head_model: Literal["pooled", "sesame"] = Field(
        default="pooled", description="pooled: the kind's head on the pooled vector; sesame: seed 001's target-task "
                                      "model (projection, max-pool, pair features, MLP; App. B Table 5)")
    head_size: Literal["small", "medium", "large", "auto"] = Field(
        default="auto", description="sesame heads: Table 5's size group (auto: by task, else by training-set size)")
    head_attention_width: int = Field(default=512, gt=0, description="sesame heads, large size, pair tasks: width "
                                                                     "per direction of the cross-sentence BiLSTM")

    @model_validator(mode="after")
    def _frozen_combinations(self) -> "StageConfig":
        """Settings that mean nothing with a frozen encoder, or heads settings without sesame heads."""
        if self.frozen and self.r3f is not None:
            raise ValueError("r3f regularises a fine-tuned encoder through noise on its input embeddings; "
                             "with frozen: true the encoder does not change, so drop r3f or set frozen: false")
        sesame_only = {"head_size", "head_attention_width"} & self.model_fields_set
        if self.head_model != "sesame" and sesame_only:
            raise ValueError(f"{', '.join(sorted(sesame_only))} apply only with head_model: sesame")
        if not self.frozen and "cache_features" in self.model_fields_set:
            raise ValueError("cache_features applies only with frozen: true")
        return self

    @field_validator("validate_every")
    @classmethod
    def _positive_interval(cls, value: int | str) -> int | str:
        if value != "epoch" and value < 1:
            raise ValueError(f"must be a positive number of steps or 'epoch', got {value}")
        return value

    @field_validator("tasks", mode="before")
    @classmethod
    def _names_to_refs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("tasks")
    @classmethod
    def _non_empty(cls, value: list[TaskRef]) -> list[TaskRef]:
        if not value:
            raise ValueError("a stage needs at least one task")
        return value


class EncoderConfig(Strict):
    """Settings of the encoder family (`taskmix.models.encoder`) that builds the encoder and its tokenizer:
    `name` (bundled short name, hub id or local path) and the row name `label` in results tables."""

    family: Literal["hf"] = "hf"
    name: str = "minilm"
    label: str | None = Field(default=None, min_length=1,
                              description="row name in results tables (default: the name, or a local "
                                          "path's directory name)")
    gradient_checkpointing: bool = False

    def build_settings(self) -> dict[str, Any]:
        """What builds the encoder (and keys cached stages): everything but the cosmetic `label`."""
        return self.model_dump(mode="json", exclude={"label"})


class ExperimentConfig(Strict):
    """An encoder plus ordered stages; `pipelines` optionally compares several stage sequences."""

    name: str = "experiment"
    encoder: EncoderConfig = EncoderConfig()
    seed: int = Field(default=1, ge=0, le=MAX_SEED)
    max_length: int = Field(default=128, ge=8)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    threads: int | None = Field(default=None, ge=1)
    eval_batch_size: int | None = Field(default=None, ge=1,
                                        description="rows per inference batch (default: 32 on CPU, 128 on GPU)")
    cache_dir: str | None = None
    tensorboard: bool = Field(default=True, description="write TensorBoard scalars (loss, lr, dev metrics) per run")
    diagnostic: bool = Field(default=False, description="score AX with every 3-class NLI target head")
    custom_tasks: list[CustomTaskSpec] = []
    stages: list[StageConfig] = Field(min_length=1)
    pipelines: list[list[str]] | None = None

    @field_validator("name")
    @classmethod
    def _single_path_component(cls, value: str) -> str:
        check_name(value)
        return value

    @field_validator("encoder", mode="before")
    @classmethod
    def _encoder_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_pipelines(self) -> "ExperimentConfig":
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        for pipeline in self.pipelines or []:
            unknown = [n for n in pipeline if n not in names]
            if unknown:
                raise ValueError(f"pipeline {pipeline} names unknown stages {unknown}; stages are {names}")
            if not pipeline:
                raise ValueError("a pipeline needs at least one stage")
        return self

    @model_validator(mode="after")
    def _checkpointing_needs_training(self) -> "ExperimentConfig":
        """Gradient checkpointing trades compute for memory in the encoder's backward pass; an encoder
        frozen in every stage has none."""
        if getattr(self.encoder, "gradient_checkpointing", False) and all(s.frozen for s in self.stages):
            raise ValueError("encoder.gradient_checkpointing has no effect when every stage has frozen: true; "
                             "remove it")
        return self

    def stage_sequences(self) -> list[list[StageConfig]]:
        """The pipelines to run, as stage lists (default: all stages in order)."""
        by_name = {s.name: s for s in self.stages}
        if not self.pipelines:
            return [list(self.stages)]
        return [[by_name[n] for n in p] for p in self.pipelines]

    def fingerprint(self) -> str:
        """A short stable hash of the resolved config (identifies results in stores)."""
        return digest(self.model_dump(mode="json"), 12)


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.key=value` override; list items are addressed by index or stage name."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got '{assignment}'")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "cannot parse it"
        raise ConfigError(f"--set {key}: value {clip(raw)!r} is not valid YAML ({problem})") from None
    set_path(data, key, value, where=f"--set {key}", create=True)


def set_path(data: Any, path: str, value: Any, *, where: str, create: bool = False) -> None:
    """Set a dotted-path field: mapping keys by name, list items by index or by their `name` (stages).

    The one implementation behind `--set` and study grids.  `create` makes missing mappings on
    the way (a `--set` may name a field the file leaves at its default); without it every
    container on the way must exist.  The last key of a mapping may always be new: schema
    validation is what rejects a misspelt leaf.  `where` starts every error message.
    """
    parts = path.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            index = list_index(node, part, where)
            if last:
                node[index] = copy.deepcopy(value)
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = copy.deepcopy(value)
            elif part in node:
                node = node[part]
            elif create:
                node = node.setdefault(part, {})
            else:
                raise ConfigError(f"{where}: no field {part!r} in the experiment")
        else:
            raise ConfigError(f"{where}: {'.'.join(parts[:depth])!r} is not a mapping or list")


def list_index(items: list, part: str, where: str) -> int:
    """A list segment: an integer index (negative counts from the end) or the `name` of an item."""
    if part.lstrip("-").isdigit():
        index = int(part)
        if not -len(items) <= index < len(items):
            raise ConfigError(f"{where}: index {index} out of range ({len(items)} items)")
        return index % len(items)
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return index
    raise ConfigError(f"{where}: no item named {part!r}")


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One readable line per problem, naming the key path."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{where}'")
        else:
            lines.append(f"{source}: {where}: {err['msg']}")
    return "\n".join(lines)


def parse_experiment(data: dict[str, Any], source: str = "experiment") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_experiment(path: Path, overrides: list[str] = ()) -> ExperimentConfig:
    """Read, override and validate an experiment file; `name` defaults to the file stem."""
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    for assignment in overrides:
        apply_override(data, assignment)
    return parse_experiment(data, str(path))
