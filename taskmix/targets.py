"""Target results: for each task of a pipeline's last stage, the selected restart's metrics, every
restart's score, the constant baselines they are judged against and (for NLI) the diagnostic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from taskmix import metrics as glue_metrics
from taskmix.diagnostic import is_nli
from taskmix.restarts import GroupOutcome
from taskmix.tasks.base import Task
from taskmix.training.stage_task import TrainableTask

# The AX scores of a stage task's head in the selected model (None when the diagnostic is off).
Diagnose = Callable[[TrainableTask, Task], dict | None]


@dataclass
class TaskRun:
    """One restart's result for one target task."""

    restart: int
    seed: int
    metrics: dict[str, float]
    score: float
    degenerate: bool


@dataclass
class TargetResult:
    """The selected (best-on-dev) result of one target task in one pipeline, with every restart's result."""

    pipeline: str
    task: str
    metrics: dict[str, float]
    score: float
    runs: list[TaskRun]
    selected_restart: int
    majority_score: float | None
    majority_rule_applied: bool = False
    diagnostic: dict | None = None
    benchmark: str = ""  # the task's `Task.benchmark` ("" for corpus tasks)

    @property
    def restart_scores(self) -> list[float]:
        return [r.score for r in self.runs]

    @property
    def summary(self) -> dict[str, float]:
        scores = np.array(self.restart_scores)
        return {"mean": float(scores.mean()), "std": float(scores.std()), "max": float(scores.max()),
                "degenerate": sum(r.degenerate for r in self.runs), "runs": len(scores)}


def target_results(label: str, group: GroupOutcome, diagnose: Diagnose) -> list[TargetResult]:
    """Per task of the group: finished restarts with degenerate flags, the reported metrics (WNLI's
    majority floor applied) and, for a 3-class NLI task, what `diagnose` returns."""
    out = []
    for st in group.tasks:
        baselines = st.baselines()
        runs = [TaskRun(r.restart, r.seed, r.metrics[st.name], r.scores[st.name],
                        st.is_degenerate(r.scores[st.name], baselines))
                for r in group.restarts if r.failed is None]
        metrics = group.restarts[group.selected].metrics[st.name]
        applied = False
        task = st.labelled_task
        if baselines.majority is not None and task is not None:
            metrics, applied = glue_metrics.apply_majority_rule(task, metrics, baselines.majority)
        diag = diagnose(st, task) if task is not None and is_nli(task) else None
        out.append(TargetResult(label, st.name, metrics, glue_metrics.task_score(metrics), runs,
                                group.selected, baselines.majority_score, applied, diag,
                                task.benchmark if task is not None else ""))
    return out
