"""Run an experiment: ordered stages per pipeline, each stage group trained once and reused, target results.

Pipelines that share a prefix of stages (e.g. `minilm → snli → rte` and `minilm → snli → mrpc`)
train that prefix once; each stage starts from the encoder the previous stage left behind,
with a fresh optimizer and, unless `keep_heads` is set, fresh heads.  The pieces live in
their own modules: `assembly` (models and stage tasks), `restarts` (training a group),
`run_outputs` (files of a group) and `targets` (the results table's cells).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from taskmix.assembly import Assembly
from taskmix.config import EncoderConfig, ExperimentConfig, StageConfig, TaskRef
from taskmix.file_digests import FileDigests
from taskmix.models.encoder import encoder_family
from taskmix.restarts import GroupOutcome, RestartResult, RestartRunner
from taskmix.run_outputs import GroupWriter, diagnostic_scores
from taskmix.runtime import Runtime
from taskmix.stage_cache import DIGESTS_FILE, StageCache, cache_key
from taskmix.stage_inputs import encoder_identity, task_data_identity
from taskmix.targets import TargetResult, target_results
from taskmix.tasks import register_task
from taskmix.tasks.base import Task
from taskmix.tasks.custom import build_custom_task
from taskmix.training import distributed
from taskmix.training.stage_task import TrainableTask

log = logging.getLogger(__name__)


@dataclass
class ExperimentResult:
    name: str
    run_dir: Path
    targets: list[TargetResult]
    seconds: float


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def stage_label(stage: StageConfig) -> str:
    names = [t.name for t in stage.tasks]
    return names[0] if len(names) == 1 else "{" + ", ".join(names) + "}"


def pipeline_label(encoder: EncoderConfig, stages: list[StageConfig]) -> str:
    """Row name of a pipeline: the encoder's label and the stages before the target columns."""
    *prefix, final = stages
    parts = [encoder.label or encoder_family(encoder.build_settings()).row_label()] + [stage_label(s) for s in prefix]
    if len(final.tasks) > 1 and not final.separate:
        parts.append("mtl" + stage_label(final))
    return " → ".join(parts)


class ExperimentRunner:
    """Holds what an experiment shares across stages (runtime, encoder, stage cache) and walks its pipelines."""

    def __init__(self, cfg: ExperimentConfig, data_dir: Path | None, output_dir: Path, config_dir: Path,
                 progress: bool = True, stage_cache: Path | None = None):
        self.cfg = cfg
        self.stage_cache = StageCache(stage_cache or output_dir / "stages")
        self.digests = FileDigests(self.stage_cache.root / DIGESTS_FILE)
        self.data_dir = data_dir
        self.run_dir = output_dir
        for spec in cfg.custom_tasks:
            register_task(build_custom_task(spec, config_dir), custom=True)
        family = encoder_family(cfg.encoder.build_settings())
        family.check()
        self.rt = Runtime(family, data_dir, cfg.max_length, cfg.device, cfg.precision,
                          Path(cfg.cache_dir) if cfg.cache_dir else None, cfg.threads, cfg.eval_batch_size)
        self.assembly = Assembly(cfg, family, self.rt, data_dir)
        self.assembly.check_tasks()
        self.restarts = RestartRunner(cfg, self.assembly, self.stage_cache, progress)
        self.writer = GroupWriter(self.rt, family, cfg.max_length)
        self.family = family
        self._encoder_identity: dict | None = None

    def group_key(self, prefix: list[StageConfig], stage: StageConfig, refs: list[TaskRef]) -> str:
        """The stage-cache key: the config of this group and the stages before it, the encoder's weights and
        every file those stages read (see `stage_inputs`)."""
        cfg = self.cfg
        if self._encoder_identity is None:
            self._encoder_identity = encoder_identity(self.family.weight_source(), self.digests)
        read_by = [ref for earlier in prefix for ref in earlier.tasks] + refs
        read = [task_data_identity(ref, self.data_dir, self.digests) for ref in read_by]
        if distributed.is_main():
            self.digests.save()
        return cache_key({
            "encoder": cfg.encoder.build_settings(), "seed": cfg.seed, "max_length": cfg.max_length,
            "precision": self.rt.precision, "custom_tasks": [t.model_dump(mode="json") for t in cfg.custom_tasks],
            "prefix": [s.model_dump(mode="json") for s in prefix], "stage": stage.model_dump(mode="json"),
            "tasks": [r.model_dump(mode="json") for r in refs],
            "encoder_weights": self._encoder_identity, "data": read,
        })

    def run_group(self, stage: StageConfig, refs: list[TaskRef], encoder_state: dict | None, kept_heads: dict,
                  out_dir: Path, is_final: bool, key: str) -> GroupOutcome:
        """Train `refs` with restarts and keep the best restart on dev (seed 002), unless already cached.

        Under torchrun every rank trains; rank 0 alone stores the result and writes the outputs.
        """
        distributed.barrier()  # no rank looks for cached results while rank 0 is still writing them
        cached = self.stage_cache.load(key)
        if cached is not None:
            enc_state, heads_state, restarts_raw, selected = cached
            log.info("stage '%s' %s: reusing the finished result %s", stage.name, [t.name for t in refs], key)
            restarts = [RestartResult(**r) for r in restarts_raw]
            tasks = self.assembly.stage_tasks(refs, stage, np.random.default_rng(restarts[selected].seed))
            group = GroupOutcome(enc_state, heads_state, restarts, selected, tasks)
        else:
            group = self.restarts.train_group(stage, refs, encoder_state, kept_heads, key, out_dir / "tensorboard")
            if distributed.is_main():
                self.stage_cache.store(key, group.encoder_state, group.head_states,
                                       [asdict(r) for r in group.restarts], group.selected)
        if distributed.is_main():
            model = self.assembly.model_with_heads(group.encoder_state, refs, group.head_states, stage)
            self.writer.write(model, stage, group, out_dir, is_final)
        return group

    def run(self) -> ExperimentResult:
        started = time.perf_counter()
        memo: dict[tuple[str, ...], tuple[dict, dict]] = {(): (None, {})}
        targets: list[TargetResult] = []
        for stages in self.cfg.stage_sequences():
            label = pipeline_label(self.cfg.encoder, stages)
            for depth, stage in enumerate(stages):
                key = tuple(s.name for s in stages[: depth + 1])
                if key in memo and depth < len(stages) - 1:
                    continue
                encoder_state, heads = memo[key[:-1]]
                kept = heads if depth > 0 and stages[depth - 1].keep_heads else {}
                is_final = depth == len(stages) - 1
                groups = [[ref] for ref in stage.tasks] if stage.separate else [stage.tasks]
                for refs in groups:
                    out_dir = self.run_dir / slug(" ".join(key[:-1]) or "pretrained") / slug(stage.name)
                    if stage.separate:
                        out_dir = out_dir / slug(refs[0].name)
                    key_hash = self.group_key(stages[:depth], stage, refs)
                    group = self.run_group(stage, refs, encoder_state, kept, out_dir, is_final, key_hash)
                    if not stage.separate:
                        memo[key] = (group.encoder_state, group.head_states)
                    if is_final:
                        targets.extend(target_results(label, group, self._diagnose(stage, group)))
        return ExperimentResult(self.cfg.name, self.run_dir, targets, time.perf_counter() - started)

    def _diagnose(self, stage: StageConfig, group: GroupOutcome):
        """AX scores of a target's NLI head in the group's selected model, when the experiment asks for them."""

        def diagnose(st: TrainableTask, task: Task) -> dict | None:
            if not self.cfg.diagnostic:
                return None
            model = self.assembly.model_with_heads(group.encoder_state, [TaskRef(name=task.name, head=st.head)],
                                                   group.head_states, stage)
            return diagnostic_scores(self.rt, model, st.head, task)

        return diagnose
