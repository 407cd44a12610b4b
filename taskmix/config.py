"""Experiment files: a validated schema, YAML loading and `--set key=value` overrides.

Every key is checked (unknown keys are errors, not silently ignored) so a typo in an
experiment file fails before any training starts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator,
                      model_validator)

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
    head_settings: dict[str, Any] = Field(
        default={}, description="labelled tasks: override the task's head settings, e.g. {beam_size: 1}")

    @model_validator(mode="after")
    def _one_dev_source(self) -> "TaskRef":
        if self.dev_split and self.dev_holdout:
            raise ValueError("give at most one of dev_split and dev_holdout")
        return self

    @model_validator(mode="after")
    def _corpus_fields(self) -> "TaskRef":
        if self.corpus is None and (self.dev_corpus or self.options):
            raise ValueError("dev_corpus and options apply only to a pretraining task with a corpus")
        if self.corpus is not None and self.head_settings:
            raise ValueError("head_settings apply to labelled tasks; a pretraining task takes options")
        split_choices = self.train_splits != ["train"] or self.dev_split or self.dev_holdout or self.max_train_examples
        if self.corpus is not None and split_choices:
            raise ValueError("a task on a corpus takes no train_splits, dev_split, dev_holdout or max_train_examples")
        return self


class R3FConfig(Strict):
    """R3F (Muppet §3.2): symmetric KL between clean and noised-embedding predictions."""

    weight: float = Field(default=1.0, ge=0.0, description="lambda")
    sigma: float = Field(default=1e-5, ge=0.0)
    noise: Literal["normal", "uniform"] = "normal"


# Named training recipes a stage can ask for (`recipe:`); they fill the fields the stage leaves unset.
# The `sesame_*` recipes are seed 000 App. B's training of non-BERT models: AMSGrad, lr 1e-4 when
# pretraining on a classification or regression task and 3e-4 on a target task, LR x0.5 after more
# than 4 validations without improvement, stop once the LR falls below 1e-6, early stop after more
# than 20, validation every 1000 steps x the number of tasks (`validate_every` counts per task), and
# dropout 0.2 in the pretraining task's classifier.  The appendix names no weight decay or warmup:
# the recipes use neither.  They set no length: training ends by its stopping rules within
# `max_epochs`/`max_steps`.
SESAME_RECIPE: dict[str, Any] = {
    "optimizer": "amsgrad", "weight_decay": 0.0, "scheduler": "plateau", "warmup": 0.0, "lr_decay_factor": 0.5,
    "lr_decay_patience": 4, "min_lr": 1e-6, "patience": 20, "validate_every": 1000,
}
RECIPES: dict[str, dict[str, Any]] = {
    "sesame_pretrain": {**SESAME_RECIPE, "lr": 1e-4, "dropout": 0.2},
    # Target training validates at the cadence of Table 5's heads (100/100/1000 steps by size),
    # which the heads supply when the stage sets no `validate_every`.
    "sesame_target": {**{k: v for k, v in SESAME_RECIPE.items() if k != "validate_every"}, "lr": 3e-4},
}


class StageConfig(Strict):
    """One training phase on one mixture of tasks, with a fresh optimizer."""

    name: str
    recipe: Literal["sesame_pretrain", "sesame_target"] | None = Field(
        default=None, description="a named recipe (RECIPES) filling the training settings the stage leaves unset")
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

    @model_validator(mode="before")
    @classmethod
    def _apply_recipe(cls, data: Any) -> Any:
        """Explicit settings win over the recipe's: only the keys the stage does not give are filled."""
        if isinstance(data, dict) and data.get("recipe") in RECIPES:
            return {**RECIPES[data["recipe"]], **data}
        return data

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


class EncoderSettings(Strict):
    """What every encoder family's settings share: the row name `label` in results tables."""

    label: str | None = Field(default=None, min_length=1,
                              description="row name in results tables (default: the name, or a local "
                                          "path's directory name)")

    def build_settings(self) -> dict[str, Any]:
        """What builds the encoder (and keys cached stages): everything but the cosmetic `label`."""
        return self.model_dump(mode="json", exclude={"label"})


class TopBiLSTMConfig(Strict):
    """A BiLSTM trained on top of a frozen contextual encoder's mixed layers (seed 001's intermediate ELMo)."""

    hidden: int = Field(default=256, gt=0, description="units per direction")
    layers: int = Field(default=2, gt=0)


class HFEncoderConfig(EncoderSettings):
    """A Hugging Face encoder: `name` (bundled short name, hub id or local path).

    `layer_mix` turns it into seed 001's frozen contextual encoder: the transformer is frozen and
    its hidden layers are combined by trained ELMo-style scalar-mix weights, optionally with a
    BiLSTM trained on top (`bilstm_on_top`).
    """

    family: Literal["hf"] = "hf"
    name: str = "minilm"
    gradient_checkpointing: bool = False
    layer_mix: bool = False
    bilstm_on_top: TopBiLSTMConfig | None = None

    def build_settings(self) -> dict[str, Any]:
        """Without the layer-mix settings when they are off, so a plain encoder keeps the record (checkpoints,
        stage-cache keys) it had before layer mixing existed."""
        exclude = {"label"} | (set() if self.layer_mix else {"layer_mix", "bilstm_on_top"})
        return self.model_dump(mode="json", exclude=exclude)

    @model_validator(mode="after")
    def _mix_settings(self) -> "HFEncoderConfig":
        if self.bilstm_on_top is not None and not self.layer_mix:
            raise ValueError("bilstm_on_top runs on the mixed layers of a frozen encoder: set layer_mix: true")
        if self.layer_mix and self.gradient_checkpointing:
            raise ValueError("gradient_checkpointing saves memory of a fine-tuned transformer; with layer_mix "
                             "the transformer is frozen and needs no backward pass")
        return self


class BiLSTMEncoderConfig(EncoderSettings):
    """A BiLSTM over frozen word vectors with a skip connection (seed 001 §5); `random: true` never trains it.

    Width is per direction (seed 001 uses 1024; the default is sized for a CPU).
    """

    family: Literal["bilstm"]
    hidden: int = Field(default=256, gt=0, description="LSTM units per direction")
    layers: int = Field(default=2, gt=0)
    dropout: float = Field(default=0.2, ge=0, lt=1, description="after the input layer and each LSTM layer")
    max_words: int = Field(default=40, gt=0, description="Moses tokens kept per sentence (seed 000 App. B)")
    vectors: Literal["glove-6b-50d"] = "glove-6b-50d"
    random: bool = Field(default=False, description="random weights, frozen in every stage (seed 001's Random row)")

    @model_validator(mode="before")
    @classmethod
    def _no_transformer_settings(cls, data: Any) -> Any:
        misplaced = [k for k in ("name", "layer_mix", "bilstm_on_top", "gradient_checkpointing")
                     if isinstance(data, dict) and k in data]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)}: settings of Hugging Face encoders (family: hf), "
                             f"not of a bilstm")
        return data


class CheckpointEncoderConfig(EncoderSettings):
    """The encoder of an earlier run's `checkpoint.pt` (any family), rebuilt from its record; heads are dropped."""

    family: Literal["checkpoint"] = "checkpoint"
    checkpoint: str = Field(min_length=1, description="path of a checkpoint.pt written by `taskmix run` "
                                                      "(relative paths from the working directory)")


ENCODER_TAGS = ("hf", "bilstm", "checkpoint")


def _encoder_family(value: Any) -> str:
    """The family of an `encoder:` mapping: as given, `checkpoint` when it names one, else `hf`."""
    if isinstance(value, dict):
        return value.get("family") or ("checkpoint" if "checkpoint" in value else "hf")
    return getattr(value, "family", "hf")


EncoderConfig = Annotated[
    Annotated[HFEncoderConfig, Tag("hf")] | Annotated[BiLSTMEncoderConfig, Tag("bilstm")]
    | Annotated[CheckpointEncoderConfig, Tag("checkpoint")],
    Discriminator(_encoder_family, custom_error_type="encoder_family",
                  custom_error_message=f"family must be one of: {', '.join(ENCODER_TAGS)}"),
]


class ExperimentConfig(Strict):
    """An encoder plus ordered stages; `pipelines` optionally compares several stage sequences."""

    name: str = "experiment"
    encoder: EncoderConfig = HFEncoderConfig()
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


def error_path(loc: tuple) -> str:
    """A problem's dotted key path as the user writes it: without the family tag pydantic puts after `encoder`."""
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] == "encoder" and parts[1] in ENCODER_TAGS:
        del parts[1]
    return ".".join(parts) or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One readable line per problem, naming the key path."""
    lines = []
    for err in exc.errors():
        where = error_path(err["loc"])
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
