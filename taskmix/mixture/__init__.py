"""The Mixture: how the tasks of one stage share its optimizer steps.

Task sampling, loss scaling, batching and the schedules of seeds 000, 003 and 004.  The
engine builds one schedule and one set of loss weights per stage::

    schedule = build_schedule(cfg.mixture, task_sizes, seed=seed, total_steps=total_steps)
    weights = loss_weights(cfg.mixture, task_sizes, num_classes)
"""

from taskmix.mixture.config import MixtureConfig
from taskmix.mixture.sampling import sampling_probabilities
from taskmix.mixture.scaling import loss_weights
from taskmix.mixture.schedules import Schedule, build_schedule, cmtl_plan, sub_batches_per_step

__all__ = ["MixtureConfig", "Schedule", "build_schedule", "cmtl_plan", "loss_weights", "sampling_probabilities", "sub_batches_per_step"]
