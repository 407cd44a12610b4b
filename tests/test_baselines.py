"""Majority-class and best-constant baselines behind the WNLI rule and degenerate-run counts."""

from __future__ import annotations

import numpy as np

from taskmix.kinds.classification import CLASSIFICATION
from taskmix.kinds.regression import REGRESSION
from taskmix.tasks.base import Task
from taskmix.training.features import TokenizedSplit
from taskmix.training.stage_task import LabelledStageTask


def split(labels: list[int]) -> TokenizedSplit:
    n = len(labels)
    return TokenizedSplit(ids=np.arange(2 * n, dtype=np.int32), offsets=np.arange(0, 2 * n + 1, 2),
                          segment_starts=np.full(n, 2), labels=np.array(labels), uids=[str(i) for i in range(n)])


def test_best_constant_uses_the_dev_majority_when_train_leans_the_other_way():
    task = Task(name="toy", kind=CLASSIFICATION, metrics=("accuracy",), splits={}, labels=("a", "b"))
    st = LabelledStageTask(task=task, head="toy", train=split([1, 1, 1, 0]), dev={"dev": split([0, 0, 0, 1])})
    baselines = st.baselines()
    assert baselines.majority == {"accuracy": 0.25}
    assert baselines.best_constant == 0.75
    assert st.is_degenerate(0.76, baselines) and not st.is_degenerate(0.8, baselines)


def test_regression_has_no_constant_baseline():
    task = Task(name="reg", kind=REGRESSION, metrics=("pearson",), splits={})
    st = LabelledStageTask(task=task, head="reg", train=split([1, 2]), dev={"dev": split([1, 2])})
    baselines = st.baselines()
    assert baselines.majority is None and baselines.best_constant is None
