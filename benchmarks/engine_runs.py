"""taskmix's own engine under measurement: `StageTrainer` on `LabelledStageTask`s built as experiments build them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import BATCH_SIZE, EVAL_BATCH_SIZE, MAX_LENGTH, BatchLog, StepClock, THREADS, timed, train_result
from taskmix.config import StageConfig
from taskmix.models.encoder import encoder_family
from taskmix.models.heads import build_head
from taskmix.models.model import MultiTaskModel
from taskmix.runtime import Runtime
from taskmix.tasks import get_task
from taskmix.training.stage import StageTrainer
from taskmix.training.stage_task import LabelledStageTask
from taskmix.training.predict import predict
from taskmix.training.task_data import limit


@dataclass
class CountedStageTask(LabelledStageTask):
    """A labelled stage task that also logs the rows and padded width of each training batch."""

    log: BatchLog = field(default_factory=BatchLog)

    def to_batch(self, key: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        batch = super().to_batch(key, pad_id)
        self.log.add(len(key), int(batch["input_ids"].shape[1]), self.name)
        return batch


def runtime(spec: dict[str, Any]) -> Runtime:
    """The engine's runtime with the benchmark's own token cache (precision `auto`, as `taskmix run`)."""
    return Runtime(encoder_family("minilm"), Path(spec["data_dir"]), MAX_LENGTH, "auto", "auto", Path(spec["cache_dir"]), THREADS)


def stage_tasks(rt: Runtime, names: list[str], log: BatchLog, dev_limit: int | None) -> list[CountedStageTask]:
    """Train on the whole train split and validate on the dev split, as `ExperimentRunner.stage_tasks` does."""
    out = []
    for name in names:
        task = get_task(name)
        data = rt.splits(task)
        dev = {s: limit(data.get(s), dev_limit, np.random.default_rng(0)) for s in task.dev_splits}
        out.append(CountedStageTask(task=task, head=task.name, train=data.concatenated(["train"]), dev=dev, log=log))
    return out


def fresh_model(rt: Runtime, tasks: list[LabelledStageTask]) -> MultiTaskModel:
    model = MultiTaskModel(encoder_family("minilm").build())
    for st in tasks:
        model.heads[st.head] = build_head(st.head_kind, model.encoder.hidden_size, st.num_outputs, 0.1)
    return model.to(rt.device)


def train_stage(rt: Runtime, tasks: list[CountedStageTask], steps: int) -> tuple[StepClock, MultiTaskModel]:
    """One warm-up step plus `steps` timed steps; validation only after the last step (outside the window)."""
    cfg = StageConfig(name="bench", tasks=[{"name": st.name} for st in tasks], max_steps=steps + 1,
                      batch_size=BATCH_SIZE, validate_every=10**9, predict_test=False)
    model = fresh_model(rt, tasks)
    clock = StepClock()
    try:
        StageTrainer(model, cfg, tasks, device=rt.device, precision=rt.precision, seed=1, pad_id=rt.pad_id,
                     progress=False).train()
    finally:
        clock.close()
    return clock, model


def eval_speed(rt: Runtime, model: MultiTaskModel, st: LabelledStageTask) -> dict[str, float]:
    """Examples/s of `predict` over the dev split (second pass timed, after a warm-up pass)."""
    split = next(iter(st.dev.values()))
    _, seconds = timed(predict, model, st.head, split, EVAL_BATCH_SIZE, rt.pad_id, rt.device, rt.precision)
    return {"eval_examples": len(split), "eval_seconds": seconds, "eval_ex_s": len(split) / seconds}


def single_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Training and evaluation throughput of the engine on each task of `spec['tasks']`."""
    rt = runtime(spec)
    results: dict[str, Any] = {"precision": rt.precision}
    for name in spec["tasks"]:
        log = BatchLog()
        tasks = stage_tasks(rt, [name], log, spec.get("eval_limit"))
        clock, model = train_stage(rt, tasks, spec["steps"])
        results[name] = {**train_result(clock, log), **eval_speed(rt, model, tasks[0])}
    return results


def step_costs(clock: StepClock, log: BatchLog) -> list[tuple[str, int, float]]:
    """(task, padded tokens, seconds) of each timed step: one homogeneous batch per step."""
    out = []
    for i in range(1, len(clock.times)):
        out.append((log.names[i], log.rows[i] * log.widths[i], clock.times[i] - clock.times[i - 1]))
    return out


def mixture(spec: dict[str, Any]) -> dict[str, Any]:
    """A proportional-sampling mixture of the tasks against each task trained alone.

    Tasks differ in length (SST-2 phrases against RTE paragraphs), so the fair single-task
    reference is length-matched: each mixture step is priced at the seconds per padded token
    its task costs when trained alone, and the ratio is that expected time over the real time.
    """
    rt = runtime(spec)
    names = spec["tasks"]
    per_token: dict[str, float] = {}
    singles: dict[str, Any] = {}
    for name in names:
        log = BatchLog()
        clock, _ = train_stage(rt, stage_tasks(rt, [name], log, 8), spec["single_steps"])
        costs = step_costs(clock, log)
        per_token[name] = sum(c[2] for c in costs) / sum(c[1] for c in costs)
        singles[name] = train_result(clock, log)
    log = BatchLog()
    clock, _ = train_stage(rt, stage_tasks(rt, names, log, 8), spec["steps"])
    costs = step_costs(clock, log)
    expected = sum(tokens * per_token[name] for name, tokens, _ in costs)
    measured = train_result(clock, log)
    return {"mixture": measured, "singles": singles, "expected_seconds": expected,
            "single_matched_ex_s": measured["train_examples"] / expected,
            "task_steps": {n: sum(1 for c in costs if c[0] == n) for n in names}}
