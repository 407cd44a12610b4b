"""What a task is: a named dataset with splits, a label space, a head kind and its metrics.

A task knows how to read its own splits from a data directory (or the Hugging Face hub)
and how to turn an example into model features.  Everything the engine needs to train and
evaluate a task is reachable from a `Task` object, so adding a task is one definition in
one registry module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Mapping


class HeadKind(str, Enum):
    """Which output head (and loss) a task trains."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    # Self-supervised pretraining heads (taskmix.pretraining.heads).
    MASKED_LM = "masked_lm"
    SPAN_BOUNDARY = "span_boundary"
    TOKEN_CLASSIFICATION = "token_classification"
    TOKEN_REGRESSION = "token_regression"
    TRIGRAM_ORDER = "trigram_order"
    QUICK_THOUGHTS = "quick_thoughts"
    FASTSENT = "fastsent"


@dataclass(frozen=True)
class Example:
    """One row of a task split.

    `label` is the class index for classification, a float for regression and None for
    unlabelled (test) rows.  `uid` is the row id used in submission files; `meta` carries
    anything else a task or report needs (e.g. diagnostic categories).
    """

    text_a: str
    text_b: str | None = None
    label: int | float | None = None
    uid: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


# A split reader takes the resolved file path and returns the examples of that file.
SplitReader = Callable[[Path], list[Example]]


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
    in the same order as `Task.labels` for every task registered here.
    """

    path: str
    name: str | None
    splits: Mapping[str, str]
    fields: Mapping[str, str]


@dataclass(frozen=True)
class Task:
    """A dataset plus objective.

    `metrics` are metric names understood by `taskmix.metrics`; the task score is the mean
    of them, as GLUE defines it.  `dev_splits` lists the splits evaluated during training
    (MNLI has two: matched and mismatched).  `submission_files` maps each test split to the
    file name of the official GLUE/SuperGLUE submission (e.g. {"test": "RTE.tsv"}); the
    extension picks the format (.tsv for GLUE, .jsonl for SuperGLUE).
    """

    name: str
    kind: HeadKind
    metrics: tuple[str, ...]
    splits: Mapping[str, SplitSource]
    labels: tuple[str, ...] = ()
    dev_splits: tuple[str, ...] = ("dev",)
    test_splits: tuple[str, ...] = ("test",)
    submission_files: Mapping[str, str] = field(default_factory=dict)
    hub: HubSource | None = None
    description: str = ""

    @property
    def num_classes(self) -> int:
        """Number of output units of the head: label count, or 1 for regression."""
        return len(self.labels) if self.kind is HeadKind.CLASSIFICATION else 1

