"""Text-pair regression (STS-B): one score per pair, mean squared error, correlations."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from taskmix.kinds.base import register_kind
from taskmix.kinds.text import TextKind

# A regression run is degenerate when the mean of its correlations is at most 0.1.  Random
# guessing scores about 0 with a standard error of about 1/sqrt(n) (0.026 on the 1,500 rows
# of STS-B dev, 0.03 with 1k examples), so 0.1 sits several standard errors above chance yet
# far below any model that learned the task (0.7-0.9 on STS-B).
DEGENERATE_THRESHOLD = 0.1

# Range of scores the GLUE server accepts (STS-B similarity, 0 to 5).
SUBMISSION_RANGE = (0.0, 5.0)


class RegressionKind(TextKind):
    name = "regression"
    head = "regression"
    metrics_allowed = ("pearson", "spearman")
    default_metrics = ("pearson", "spearman")
    prediction_dtype = np.float64

    def num_outputs(self, task) -> int:
        return 1

    def parse_label(self, text: str, labels: Sequence[str]) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"regression label {text!r} is not a finite number")
        return value

    def hub_label(self, value: Any) -> float:
        return float(value)

    def label_array(self, labels: Sequence[int | float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else float(v) for v in labels], dtype=np.float32)

    def format_prediction(self, task, value: Any) -> str:
        return "" if np.isnan(value) else f"{float(value):.4f}"

    def submission_label(self, task, value: Any) -> str:
        """The score clipped to the server's range, three decimals."""
        if not math.isfinite(value):
            raise ValueError(f"task {task.name!r}: non-finite regression prediction {value}")
        low, high = SUBMISSION_RANGE
        return f"{min(max(float(value), low), high):.3f}"

    def is_degenerate(self, score: float, best_constant: float | None) -> bool:
        return score <= DEGENERATE_THRESHOLD


REGRESSION = register_kind(RegressionKind())
