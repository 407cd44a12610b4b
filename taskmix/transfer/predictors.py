"""Cheap predictors of the transfer matrix: each ranks candidate intermediate tasks for one target.

A predictor is one function registered with `@register_predictor(name)`; it gets the
shared `SelectionContext` and a `Selection` (the target and the candidates) and returns a
score per candidate, higher meaning "train on this one".  A new method is one more
registered function.  What predictors compute and may share across calls (a task's
embedding, a candidate's intermediate encoder) goes through `SelectionContext.cached`, which
remembers how many seconds each item took, so the cost reported for a call counts reused
items at their full price: a method's cost is what answering one target costs from scratch.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from taskmix.assembly import Assembly
from taskmix.config import ExperimentConfig, StageConfig, TaskRef, parse_experiment
from taskmix.errors import ConfigError
from taskmix.kinds.base import Features
from taskmix.models.encoder import encoder_family
from taskmix.runtime import Runtime
from taskmix.stage_cache import StageCache
from taskmix.task_refs import pretraining_name
from taskmix.tasks import get_task, load_split, register_task
from taskmix.tasks.base import Task
from taskmix.tasks.custom import build_custom_task
from taskmix.transfer.logme import logme
from taskmix.transfer.matrix import TransferMatrix
from taskmix.transfer.representations import EncodedRows, encode_rows
from taskmix.transfer.spec import TransferSpec

log = logging.getLogger(__name__)

LOGME_KINDS = ("classification", "regression", "multiple_choice")


@dataclass(frozen=True)
class Selection:
    """One question: which of `candidates` (label -> intermediate task entry) to train before `target`."""

    target: TaskRef
    candidates: dict[str, TaskRef]

    @property
    def target_task(self) -> str:
        """The target's registered name: the matrix's column and the store's task."""
        return get_task(self.target.name).name


Predictor = Callable[["SelectionContext", Selection], dict[str, float]]
PREDICTORS: dict[str, Predictor] = {}


def register_predictor(name: str) -> Callable[[Predictor], Predictor]:
    def add(fn: Predictor) -> Predictor:
        if name in PREDICTORS:
            raise ValueError(f"predictor {name!r} is registered twice")
        PREDICTORS[name] = fn
        return fn

    return add


def get_predictor(name: str) -> Predictor:
    if name not in PREDICTORS:
        raise ConfigError(f"unknown selection method {name!r}; choose from {', '.join(PREDICTORS)}")
    return PREDICTORS[name]


class SelectionContext:
    """What the predictors share: the transfer file's encoder and settings, data, an optional matrix and study."""

    def __init__(self, spec: TransferSpec, data_dir: Path | None, config_dir: Path, study_dir: Path | None = None,
                 matrix: TransferMatrix | None = None, examples: int = 1000, seed: int = 0, progress: bool = False):
        self.spec = spec
        self.data_dir = data_dir
        self.config_dir = config_dir
        self.study_dir = study_dir
        self.matrix = matrix
        self.examples = examples
        self.seed = seed
        self.progress = progress
        self.cfg: ExperimentConfig = parse_experiment(dict(spec.base_experiment(), name=spec.name), spec.name)
        for custom in self.cfg.custom_tasks:
            register_task(build_custom_task(custom, config_dir), custom=True)
        self._memo: dict[Any, tuple[Any, float]] = {}
        self._charged = 0.0
        self._computing = 0.0

    @cached_property
    def assembly(self) -> Assembly:
        """The encoder, tokenizer and task data, built at first use: `prior` and the baselines need no model."""
        cfg = self.cfg
        family = encoder_family(cfg.encoder.build_settings())
        family.check()
        rt = Runtime(family, self.data_dir, cfg.max_length, cfg.device, cfg.precision,
                     Path(cfg.cache_dir) if cfg.cache_dir else None, cfg.threads, cfg.eval_batch_size)
        return Assembly(cfg, family, rt, self.data_dir)

    @property
    def rt(self) -> Runtime:
        return self.assembly.rt

    def cached(self, key: Any, compute: Callable[[], tuple[Any, float | None]]) -> Any:
        """`compute()` once per key, returning (value, seconds or None for its measured time); every use
        charges the item's seconds to the running call."""
        if key not in self._memo:
            started = time.perf_counter()
            value, seconds = compute()
            elapsed = time.perf_counter() - started
            self._computing += elapsed
            self._memo[key] = (value, elapsed if seconds is None else seconds)
        value, seconds = self._memo[key]
        self._charged += seconds
        return value

    def run(self, method: str, selection: Selection) -> tuple[dict[str, float], float]:
        """A method's scores and its cost in seconds (own time plus every cached item it used, at full price)."""
        predictor = get_predictor(method)
        self._charged = self._computing = 0.0
        started = time.perf_counter()
        scores = predictor(self, selection)
        own = time.perf_counter() - started - self._computing
        return scores, own + self._charged

    # -- shared items ------------------------------------------------------------------------
    def labelled(self, ref: TaskRef, method: str) -> Task:
        if pretraining_name(ref.name):
            raise ConfigError(f"{method}: '{ref.name}' is a pretraining task on a corpus; "
                              f"{method} needs a labelled task")
        return get_task(ref.name)

    def inputs(self, ref: TaskRef) -> Features:
        """At most `examples` training rows of a task entry (its splits and held-out rows as configured)."""
        entry = ref.model_copy(update={"max_train_examples": self.examples})
        stage = StageConfig(name="select", tasks=[entry])
        (task,) = self.assembly.stage_tasks([entry], stage, np.random.default_rng(self.seed))
        return task.train

    def encode(self, encoder_state: dict | None, split: Features) -> EncodedRows:
        return encode_rows(self.assembly.fresh_model(encoder_state), split, self.rt)

    def intermediate_encoder(self, label: str) -> dict:
        """The candidate's intermediate encoder (first seed) from the study's stage cache, trained there if
        missing; charged at the seconds its training took.  Read from disk at each use rather than kept:
        ten MiniLM encoders would hold about a gigabyte."""
        if self.study_dir is None:
            raise ConfigError("this method needs the intermediate encoders of a transfer study: "
                              "pass --matrix STUDY_DIR (a directory of `taskmix transfer`, or its transfer file)")
        if label not in self.spec.candidates:
            raise ConfigError(f"candidate {label!r} is not in the transfer file; its candidates: "
                              f"{', '.join(self.spec.candidates)}")
        key = self.cached(("intermediate", label), lambda: self._train_intermediate(label))
        return StageCache(self.study_dir / "stages").load(key)[0]

    def _train_intermediate(self, label: str) -> tuple[str, float]:
        """The stage-cache key of the candidate's intermediate stage, trained if missing, and its training seconds."""
        from taskmix.experiment import ExperimentRunner

        assert self.study_dir is not None
        experiment = dict(self.spec.base_experiment(), name=f"{self.spec.name}-select-{label}")
        experiment["stages"] = [self.spec.candidate_stage(label)]
        cfg = parse_experiment(experiment, f"candidate {label}")
        runner = ExperimentRunner(cfg, self.data_dir, self.study_dir / "select" / label, self.config_dir,
                                  progress=self.progress, stage_cache=self.study_dir / "stages")
        stage = cfg.stages[0]
        key = runner.group_key([], stage, stage.tasks)
        if runner.stage_cache.load(key) is None:
            log.info("training the intermediate stage of %s (once; the transfer study reuses it)", label)
            runner.run()
        _, _, restarts, _ = runner.stage_cache.load(key)
        return key, float(sum(r["seconds"] for r in restarts))


def _example_means(vectors: np.ndarray, encoded: EncodedRows) -> np.ndarray:
    """One vector per example: the mean of its rows (several rows only for multiple choice)."""
    examples, inverse = np.unique(encoded.example, return_inverse=True)
    sums = np.zeros((len(examples), vectors.shape[1]))
    np.add.at(sums, inverse, vectors)
    return sums / np.bincount(inverse)[:, None]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))


@register_predictor("textemb")
def textemb(ctx: SelectionContext, selection: Selection) -> dict[str, float]:
    """TextEmb (Vu et al. 2020; SEmb in Poth et al. 2021): a task is the mean over ~`examples` training inputs
    of the pretrained encoder's mean-pooled token vectors; candidates are ranked by cosine to the target."""

    def embedding(ref: TaskRef) -> np.ndarray:
        def compute() -> tuple[np.ndarray, None]:
            ctx.labelled(ref, "textemb")
            encoded = ctx.encode(None, ctx.inputs(ref))
            return _example_means(encoded.token_mean, encoded).mean(0), None

        return ctx.cached(("textemb", ref.model_dump_json()), compute)

    target = embedding(selection.target)
    return {label: _cosine(embedding(ref), target) for label, ref in selection.candidates.items()}


def _row_labels(task: Task, split: Features, encoded: EncodedRows) -> tuple[np.ndarray, np.ndarray, bool]:
    """Each encoder row's label for LogME, which rows are labelled, and whether labels are regression values.

    A multiple-choice row is one (context, choice) pair, labelled 1 for the right choice and
    0 otherwise: the pooled pair vector is what the choice head scores (our choice; LogME
    defines classification and regression only).  Unlabelled rows carry the kind's missing
    value (NaN, or a negative class) and are left out.
    """
    if task.kind.name not in LOGME_KINDS:
        raise ConfigError(f"logme: target '{task.name}' is of kind {task.kind.name}; logme scores "
                          f"{', '.join(LOGME_KINDS)} targets")
    labels = np.asarray(split.labels)[encoded.example]
    if task.kind.name == "regression":
        return labels, np.isfinite(labels), True
    if task.kind.name == "multiple_choice":
        return (encoded.position == labels).astype(np.int64), labels >= 0, False
    return labels, labels >= 0, False


@register_predictor("logme")
def logme_method(ctx: SelectionContext, selection: Selection) -> dict[str, float]:
    """LogME (You et al. 2021) of the target's training inputs (at most `examples`) under each candidate's
    intermediate encoder: the pooled vector the target head would read, against the target labels.
    No target fine-tuning; each intermediate encoder is trained once and reused."""
    task = ctx.labelled(selection.target, "logme")
    split = ctx.inputs(selection.target)
    scores = {}
    for label in selection.candidates:
        encoded = ctx.encode(ctx.intermediate_encoder(label), split)
        labels, keep, regression = _row_labels(task, split, encoded)
        scores[label] = logme(encoded.pooled[keep], labels[keep], regression=regression)
    return scores


@register_predictor("prior")
def prior(ctx: SelectionContext, selection: Selection) -> dict[str, float]:
    """Each candidate's average gain on the matrix's other targets (Choshen et al. 2022's strong prior);
    the target's own column is always left out."""
    if ctx.matrix is None:
        raise ConfigError("prior needs a finished transfer matrix: pass --matrix STUDY_DIR")
    scores = {}
    for label in selection.candidates:
        gain = ctx.matrix.average_gain(label, exclude=[selection.target_task])
        if gain is None:
            raise ConfigError(f"prior: candidate {label!r} has no measured gain on any target but "
                              f"{selection.target_task} in the matrix")
        scores[label] = gain
    return scores


@register_predictor("size")
def size(ctx: SelectionContext, selection: Selection) -> dict[str, float]:
    """Baseline: the number of training rows in the candidate's training splits (largest first)."""
    scores = {}
    for label, ref in selection.candidates.items():
        task = ctx.labelled(ref, "size")
        rows = sum(len(load_split(task, split, ctx.data_dir)) for split in ref.train_splits)
        scores[label] = float(rows - (ref.dev_holdout or 0))
    return scores


@register_predictor("random")
def random(ctx: SelectionContext, selection: Selection) -> dict[str, float]:
    """Baseline: a random order, fixed by `--seed` and the target's name."""
    rng = np.random.default_rng([ctx.seed, zlib.crc32(selection.target_task.encode())])
    return dict(zip(selection.candidates, rng.random(len(selection.candidates)).tolist()))
