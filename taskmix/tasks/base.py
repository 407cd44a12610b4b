"""What a task is: a named dataset with splits, a label space, a kind and its metrics.

A task knows where its splits live and which reader reads them; its kind
(`taskmix.kinds`) knows how to featurise, score, print and submit them.  Adding a task of
an existing kind is one definition in one registry module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from taskmix.kinds.base import TaskKind

# Values of `Task.benchmark`: the benchmark score a task counts towards.
GLUE = "glue"
SUPERGLUE = "superglue"

# Class order of two-class entailment (RTE, QNLI, AX-b, AX-g): one order, so an RTE head answers the diagnostics.
NLI2: tuple[str, ...] = ("entailment", "not_entailment")


@dataclass(frozen=True)
class Example:
    """One row of a task split.

    The example of the text kinds (classification, regression); other kinds define their
    own.  `label` is the class index for classification, a float for regression and None
    for unlabelled (test) rows.  `uid` is the row id used in submission files; `meta` carries
    anything else a task or report needs (e.g. diagnostic categories).
    """

    text_a: str
    text_b: str | None = None
    label: int | float | None = None
    uid: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


# A split reader takes the resolved file path and returns the examples of that file (of the
# example type of the task's kind).
SplitReader = Callable[[Path], list[Any]]


@dataclass(frozen=True)
class SplitSource:
    """Where one split lives: a path relative to the data directory and the reader for it."""

    path: str
    reader: SplitReader


@dataclass(frozen=True)
class HubSource:
    """How to load the task from the Hugging Face hub through `datasets` when online.

    `splits` maps our split names to hub split names; `fields` maps Example fields
    (text_a, text_b, label, uid) to hub column names.  Hub labels are already indices
    in the same order as `Task.labels` for every task registered here.  Tasks whose
    examples are not text columns (MultiRC, ReCoRD) give `row` instead: it builds the
    example of one hub row (given whether the split is labelled), or returns None to skip it.
    """

    path: str
    name: str | None
    splits: Mapping[str, str]
    fields: Mapping[str, str] = field(default_factory=dict)
    row: Callable[[Mapping[str, Any], bool], Any] | None = None


@dataclass(frozen=True)
class Task:
    """A dataset plus objective.

    `metrics` are metric names understood by `taskmix.metrics`; the task score is the mean
    of them, as GLUE defines it.  `dev_splits` lists the splits evaluated during training
    (MNLI has two: matched and mismatched).  `submission_files` maps each test split to the
    file name of the official GLUE/SuperGLUE submission (e.g. {"test": "RTE.tsv"}); the
    extension picks the format (.tsv for GLUE, .jsonl for SuperGLUE).  `majority_floor`:
    when the model scores below the training majority class, report (and submit) the
    majority class instead, as seeds 001 and 002 do for WNLI, whose dev set is adversarial
    to its training set.  `benchmark` ("glue", "superglue" or "") says which benchmark score
    the task counts towards in results tables; diagnostics and other tasks count towards none.
    `data_note` is added to the error when a split's file is missing
    (e.g. where to get data that is not distributed with the benchmarks).  `head_settings`
    are the task's values of its head kind's settings (`taskmix.models.heads`), e.g. a
    decoder's attention; a stage entry's `head_settings` override them.
    """

    name: str
    kind: TaskKind
    metrics: tuple[str, ...]
    splits: Mapping[str, SplitSource]
    labels: tuple[str, ...] = ()
    dev_splits: tuple[str, ...] = ("dev",)
    test_splits: tuple[str, ...] = ("test",)
    submission_files: Mapping[str, str] = field(default_factory=dict)
    hub: HubSource | None = None
    description: str = ""
    majority_floor: bool = False
    benchmark: str = ""
    data_note: str = ""
    head_settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of output units of the head: label count, or 1 for regression."""
        return self.kind.num_outputs(self)

