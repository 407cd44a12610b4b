"""Dev metrics of the pretraining tasks, accumulated batch by batch as (total, count) sums.

A metric is a reduction of summed per-item numbers: accuracy (correct / count), mean squared
error, mean cross-entropy and perplexity (exp of the mean negative log-likelihood), so the
engine adds the sums of every dev batch and asks the task's metric for the value once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from taskmix.models.heads import ClassificationHead, Head, RegressionHead


@dataclass(frozen=True)
class MetricSums:
    total: float = 0.0
    count: int = 0

    def __add__(self, other: "MetricSums") -> "MetricSums":
        return MetricSums(self.total + other.total, self.count + other.count)


@dataclass(frozen=True)
class Metric:
    """A dev metric: its name and how it reduces summed numbers (its direction is decided by
    `taskmix.metrics.validation_value`, by name)."""

    name: str

    def value(self, sums: MetricSums) -> float:
        if sums.count == 0:
            return math.nan
        mean = sums.total / sums.count
        return math.exp(min(mean, 700.0)) if self.name == "perplexity" else mean


ACCURACY = Metric("accuracy")
MSE = Metric("mse")
PERPLEXITY = Metric("perplexity")
CROSS_ENTROPY = Metric("cross_entropy")


@torch.no_grad()
def evaluate_batch(head: Head, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> MetricSums:
    """The metric sums of one dev batch: correct predictions, squared errors or log-likelihoods."""
    if hasattr(head, "metric_sums"):
        return MetricSums(*head.metric_sums(logits, batch))
    labels = batch["labels"]
    if isinstance(head, ClassificationHead):
        return MetricSums(float((head.predict(logits, batch) == labels).sum()), int(labels.numel()))
    if isinstance(head, RegressionHead):
        return MetricSums(float(((head.predict(logits, batch) - labels.float()) ** 2).sum()), int(labels.numel()))
    raise TypeError(f"no pretraining metric for head {type(head).__name__}")
