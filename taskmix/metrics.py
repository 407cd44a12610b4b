"""Evaluation metrics by name, task and GLUE scores, validation averaging and majority baselines.

Tasks name their metrics as strings (`Task.metrics`), so every metric lives in one registry
here; what differs between task kinds (prediction dtype, constant baselines, degenerate
runs) is asked of the task's kind.  Values are fractions: accuracy and F1 in
[0, 1], correlations in [-1, 1]; tables multiply by 100.

Undefined values are pinned down rather than left as NaN, so that best-on-dev selection and
early stopping can always compare numbers: a correlation of a constant vector (or of fewer
than two points) is 0.0, F1 with no predicted or no true positives is 0.0, and Matthews
correlation of constant predictions is 0.0 (scikit-learn's own convention).  Non-finite
predictions are not such a case: they come from a diverged model, and scoring them 0.0 would
pass it off as a poor but working one, so `compute_metrics` rejects them.

scikit-learn and SciPy are imported at first use: together they take seconds to import,
which would otherwise delay every run's first training step.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from taskmix.errors import ConfigError

if TYPE_CHECKING:  # kind modules register metrics while the task package is still importing
    from taskmix.tasks.base import Task


# A metric takes (predictions, labels) as its kind's `metric_inputs` returns them (1-d arrays for
# the scalar kinds) and returns one number.
MetricFn = Callable[[np.ndarray, np.ndarray], float]


def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, predictions))


def _f1_binary(predictions: np.ndarray, labels: np.ndarray) -> float:
    """F1 of class index 1, the positive class of MRPC and QQP in GLUE."""
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, pos_label=1, average="binary", zero_division=0.0))


def _f1_macro(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels or predictions (CB)."""
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, average="macro", zero_division=0.0))


def _matthews(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation; multi-class inputs give the R3 statistic of the GLUE diagnostic."""
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(labels, predictions))


def _correlation(statistic: str) -> MetricFn:
    """A `scipy.stats` correlation (by name) as a metric; fewer than two points have no correlation (0.0)."""

    def metric(predictions: np.ndarray, labels: np.ndarray) -> float:
        import scipy.stats

        if len(labels) < 2:
            return 0.0
        return float(getattr(scipy.stats, statistic)(predictions, labels).statistic)

    return metric


def _defined(metric: MetricFn) -> MetricFn:
    """Silence library warnings on degenerate inputs and pin an undefined (NaN) value to 0.0."""

    def wrapped(predictions: np.ndarray, labels: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = metric(predictions, labels)
        return value if math.isfinite(value) else 0.0

    return wrapped


METRICS: dict[str, MetricFn] = {}


def register_metric(name: str, fn: MetricFn) -> MetricFn:
    """Add a metric under `name` (NaN pinned to 0.0, library warnings silenced).

    Kinds with structured predictions register their own metrics in their module (they
    receive what the kind's `metric_inputs` returns); a name registered twice is an error.
    """
    if name in METRICS:
        raise ConfigError(f"metric {name!r} is registered twice")
    METRICS[name] = _defined(fn)
    return fn


for _name, _fn in {
    "accuracy": _accuracy,
    "f1": _f1_binary,
    "f1_macro": _f1_macro,
    "matthews": _matthews,
    "r3": _matthews,
    "pearson": _correlation("pearsonr"),
    "spearman": _correlation("spearmanr"),
}.items():
    register_metric(_name, _fn)

# Lower-is-better validation metrics and the scale c of their transform 1 - value / c, so
# they can be averaged with higher-is-better ones (seed 000, Appendix B: c = 250 for
# perplexity, tuned by the authors).
LOWER_IS_BETTER: Mapping[str, float] = {"perplexity": 250.0}
# Lower-is-better metrics without a tuned scale (pretraining dev MSE and cross-entropy) are
# negated, so validation still prefers lower values.
NEGATED = frozenset({"mse", "cross_entropy"})

def metric_fn(task: Task, name: str) -> MetricFn:
    """The registered metric `name`, with an error naming the task if it is unknown."""
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(sorted(METRICS))
        raise ConfigError(f"task {task.name!r}: unknown metric {name!r} (known: {known})") from None


def compute_metrics(
    task: Task, predictions: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """All metrics of `task` for predictions of its kind (class indices, scores, tag sequences...)."""
    if any(label is None for label in labels):
        raise ValueError(f"task {task.name!r}: labels are missing (is this an unlabelled split?)")
    if len(labels) == 0:
        raise ValueError(f"task {task.name!r}: cannot compute metrics on zero examples")
    pred, gold = task.kind.metric_inputs(task, predictions, labels)
    return {name: metric_fn(task, name)(pred, gold) for name in task.metrics}


def prefixed(split: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """Qualify metric names by split ("dev_matched/accuracy") for tasks with several dev splits."""
    return {f"{split}/{name}": value for name, value in metrics.items()}


def merge_splits(per_split: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """One metrics dict for a task: plain names for a single dev split, split-qualified for several."""
    if len(per_split) == 1:
        return dict(next(iter(per_split.values())))
    return {k: v for split, values in per_split.items() for k, v in prefixed(split, values).items()}


def _mean(values: Sequence[float], what: str) -> float:
    if not values:
        raise ValueError(f"cannot average zero {what}")
    return float(np.mean(values))


def task_score(metrics: Mapping[str, float]) -> float:
    """A task's score: the mean of its metrics (GLUE), over all dev splits when prefixed.

    Lower-is-better metrics enter as `validation_value` makes them higher-is-better (perplexity
    as 1 - value / c, as seed 000's App. C averages it), so BLEU and perplexity of a translation
    task make one score; it is also the score validation selects on.
    """
    return _mean([validation_value(name, value) for name, value in metrics.items()], "metrics")


def glue_score(task_scores: Mapping[str, float]) -> float:
    """The GLUE score: the mean of the task scores."""
    return _mean(list(task_scores.values()), "task scores")


def benchmark_score(task_scores: Mapping[str, float], benchmarks: Mapping[str, str], benchmark: str) -> float | None:
    """A benchmark's score (GLUE, SuperGLUE) over its tasks present: the mean of their task scores,
    each already the mean of its metrics (SuperGLUE's CB acc/F1, MultiRC F1a/EM, ReCoRD F1/EM);
    None when no task of the benchmark is present.  `benchmarks` maps task name to `Task.benchmark`."""
    scores = [score for task, score in task_scores.items() if benchmarks.get(task) == benchmark]
    return _mean(scores, "task scores") if scores else None


def validation_value(metric_name: str, value: float) -> float:
    """A metric as a higher-is-better number: 1 - value / c for scaled lower-is-better metrics,
    -value for the other lower-is-better ones.

    `metric_name` may carry a split prefix ("dev/perplexity").
    """
    name = metric_name.rpartition("/")[2]
    if name in NEGATED:
        return -value
    scale = LOWER_IS_BETTER.get(name)
    return value if scale is None else 1.0 - value / scale


def mixture_validation_score(per_task_scores: Mapping[str, Mapping[str, float]]) -> float:
    """The multi-task validation score: mean over tasks of each task's `task_score`.

    `per_task_scores` maps task name to that task's metrics.  Higher is better, so it drives
    early stopping and LR decay of a whole mixture stage.
    """
    return _mean([task_score(m) for m in per_task_scores.values()], "tasks")


def constant_metrics(task: Task, prediction: float, dev_labels: Sequence[float] | np.ndarray) -> dict[str, float]:
    """The metrics of predicting `prediction` for every row: the floor a model must beat."""
    return compute_metrics(task, np.full(len(dev_labels), prediction), dev_labels)


def apply_majority_rule(
    task: Task, metrics: Mapping[str, float], majority: Mapping[str, float]
) -> tuple[dict[str, float], bool]:
    """For tasks with `majority_floor` (WNLI), report the majority-class metrics when the model
    scores below them (seeds 001 and 002).

    Returns the metrics to report and whether they were replaced.  Other tasks pass through.
    """
    if task.majority_floor and task_score(metrics) < task_score(majority):
        return dict(majority), True
    return dict(metrics), False
