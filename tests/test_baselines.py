"""Majority-class and best-constant baselines behind the WNLI rule and degenerate-run counts."""

from __future__ import annotations

import numpy as np

from taskmix.experiment import best_constant_score, majority_metrics
from taskmix.tasks.base import HeadKind, Task
from taskmix.training.features import TokenizedSplit
from taskmix.training.stage_task import StageTask


def split(labels: list[int]) -> TokenizedSplit:
    n = len(labels)
    return TokenizedSplit(ids=np.arange(2 * n, dtype=np.int32), offsets=np.arange(0, 2 * n + 1, 2),
                          segment_starts=np.full(n, 2), labels=np.array(labels), uids=[str(i) for i in range(n)])


def test_best_constant_uses_the_dev_majority_when_train_leans_the_other_way():
    task = Task(name="toy", kind=HeadKind.CLASSIFICATION, metrics=("accuracy",), splits={}, labels=("a", "b"))
    st = StageTask(task=task, head="toy", train=split([1, 1, 1, 0]), dev={"dev": split([0, 0, 0, 1])})
    assert majority_metrics(st) == {"accuracy": 0.25}
    assert best_constant_score(st) == 0.75


def test_regression_has_no_constant_baseline():
    task = Task(name="reg", kind=HeadKind.REGRESSION, metrics=("pearson",), splits={})
    st = StageTask(task=task, head="reg", train=split([1, 2]), dev={"dev": split([1, 2])})
    assert majority_metrics(st) is None and best_constant_score(st) is None
