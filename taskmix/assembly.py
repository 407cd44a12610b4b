"""What a stage group is built from: the encoder with its heads, and the stage tasks with their data.

The experiment, its restarts and its outputs all ask for the same things (a fresh model
with the pretrained or a given encoder state, the heads of some stage entries, the limited
training and dev data of a restart); this is their one home.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taskmix.config import ExperimentConfig, StageConfig, TaskRef
from taskmix.errors import ConfigError
from taskmix.models.encoder import EncoderFamily
from taskmix.models.heads import build_head
from taskmix.models.sesame import resolve_size
from taskmix.models.model import MultiTaskModel
from taskmix.pretraining import PretrainingTask, build_pretraining_task
from taskmix.pretraining.stage_task import PretrainingStageTask
from taskmix.runtime import Runtime
from taskmix.tasks import get_task
from taskmix.tasks.base import Task
from taskmix.task_refs import corpus_path, dev_split_names, entry_head_settings, labelled_task, pretraining_name
from taskmix.training.features import TokenizedSplit
from taskmix.training.stage_task import LabelledStageTask, TrainableTask
from taskmix.training.task_data import HOLDOUT_SPLIT, hold_out, limit


def head_name(ref: TaskRef, task: Task | PretrainingTask) -> str:
    """A stage entry's head: the one it names (tasks naming the same head share it), else its own."""
    return ref.head or task.name


class Assembly:
    """Builds models and stage tasks for one experiment; the encoder is built once and reloaded per use."""

    def __init__(self, cfg: ExperimentConfig, family: EncoderFamily, rt: Runtime, data_dir: Path | None):
        self.cfg = cfg
        self.family = family
        self.rt = rt
        self.data_dir = data_dir
        self._encoder = None
        self._pretrained_state: dict[str, torch.Tensor] | None = None
        self._pretraining: dict[str, PretrainingTask] = {}

    def check_tasks(self) -> None:
        """Fail before any training if a stage names an unknown task or split."""
        for stage in self.cfg.stages:
            for ref in stage.tasks:
                task = labelled_task(stage.name, ref)
                if task is None:
                    continue
                for split in ref.train_splits + ([ref.dev_split] if ref.dev_split else []):
                    if split not in task.splits:
                        raise ConfigError(
                            f"stage '{stage.name}': task '{task.name}' has no split '{split}'; "
                            f"its splits are: {', '.join(task.splits)}"
                        )
        heads = ("head_model", "head_size", "head_attention_width")
        for stages in self.cfg.stage_sequences():
            for stage, after in zip(stages[:-1], stages[1:]):
                if stage.separate:
                    raise ConfigError(f"stage '{stage.name}': separate: true is only allowed on a pipeline's last stage")
                if stage.keep_heads and any(getattr(stage, k) != getattr(after, k) for k in heads):
                    raise ConfigError(f"stage '{stage.name}' keeps its heads for stage '{after.name}', which builds "
                                      f"heads differently ({', '.join(heads)} must match)")

    def fresh_model(self, encoder_state: dict | None) -> MultiTaskModel:
        """A model with the pretrained encoder (or the given encoder state) and no heads.

        Weights an encoder draws at build (a BiLSTM from scratch, a layer mix) come from the experiment's seed,
        so the same experiment starts from the same encoder in every process.
        """
        if self._encoder is None:
            with torch.random.fork_rng(devices=[]):  # the CPU generator only: encoders are built on the CPU
                torch.default_generator.manual_seed(self.cfg.seed)
                self._encoder = self.family.build()
            self._pretrained_state = copy.deepcopy(self._encoder.state_dict())
        self._encoder.load_state_dict(encoder_state or self._pretrained_state)
        return MultiTaskModel(self._encoder).to(self.rt.device)

    def model_with_heads(self, encoder_state: dict | None, refs: list[TaskRef], head_states: dict,
                         stage: StageConfig) -> MultiTaskModel:
        """A fresh model carrying the heads of `refs` as `stage` builds them, with the given weights where there are any."""
        model = self.fresh_model(encoder_state)
        self.add_heads(model, refs, head_states, stage)
        return model

    def pretraining_task(self, ref: TaskRef) -> PretrainingTask:
        """The pretraining task of a stage entry, built once per (task, corpora, options)."""
        key = json.dumps([pretraining_name(ref.name), ref.corpus, ref.dev_corpus, ref.options], sort_keys=True)
        if key not in self._pretraining:
            dev = corpus_path(ref.dev_corpus, self.data_dir) if ref.dev_corpus else None
            cache = Path(self.cfg.cache_dir) / "corpus" if self.cfg.cache_dir else None
            self._pretraining[key] = build_pretraining_task(
                pretraining_name(ref.name), corpus_path(ref.corpus, self.data_dir), self.rt.tokenizer,
                self.cfg.max_length, dev_path=dev, cache_dir=cache, **ref.options)
        return self._pretraining[key]

    def head_spec(self, ref: TaskRef) -> tuple[str, str, int, dict[str, Any]]:
        """The head name, kind, number of outputs and head settings of a stage entry."""
        if pretraining_name(ref.name):
            task = self.pretraining_task(ref)
            return head_name(ref, task), task.head_kind, task.num_outputs, {}
        task = get_task(ref.name)
        return head_name(ref, task), task.kind.head, task.num_classes, entry_head_settings(ref, task)

    def head_model(self, ref: TaskRef, stage: StageConfig) -> dict | None:
        """The head model the stage wraps around a task's head (None: the kind's pooled head).

        Sesame heads need sentence segments (token features) and, for `head_size: auto`, the
        entry's training rows: its training splits less any dev holdout, before data limits.
        """
        if stage.head_model == "pooled":
            return None
        if pretraining_name(ref.name):
            raise ConfigError(f"stage '{stage.name}': head_model {stage.head_model!r} applies to labelled tasks, "
                              f"not to the pretraining task '{ref.name}'")
        task = get_task(ref.name)
        pool = self.rt.splits(task).concatenated(ref.train_splits)
        if not isinstance(pool, TokenizedSplit):
            raise ConfigError(f"stage '{stage.name}': head_model {stage.head_model!r} needs a text or text-pair "
                              f"task; '{task.name}' is a {task.kind.name} task")
        pair = bool(np.any(pool.segment_starts < pool.lengths))
        size = resolve_size(stage.head_size, task.name, len(pool) - (ref.dev_holdout or 0))
        return {"model": stage.head_model, "size": size, "pair": pair, "attention_width": stage.head_attention_width}

    def add_heads(self, model: MultiTaskModel, refs: list[TaskRef], kept: dict[str, dict], stage: StageConfig) -> None:
        """Build missing heads; vocabulary heads are tied to the encoder before kept weights load."""
        for ref in refs:
            name, kind, num_outputs, settings = self.head_spec(ref)
            if name in model.heads:
                continue
            head = build_head(kind, model.encoder.hidden_size, num_outputs, stage.dropout, self.head_model(ref, stage),
                              settings)
            if hasattr(head, "tie_to"):
                head.tie_to(model.encoder)
            if name in kept:
                head.load_state_dict(kept[name])
            model.heads[name] = head.to(self.rt.device)

    def stage_tasks(self, refs: list[TaskRef], stage: StageConfig, rng: np.random.Generator) -> list[TrainableTask]:
        """The stage entries as stage tasks; `rng` draws the training rows of a data limit (one draw per restart)."""
        out: list[TrainableTask] = []
        for ref in refs:
            dev_limit = ref.max_dev_examples or stage.max_dev_examples
            if pretraining_name(ref.name):
                name = self.head_spec(ref)[0]
                out.append(PretrainingStageTask(self.pretraining_task(ref), name, stage.batch_size, dev_limit,
                                                stage.task_ids))
                continue
            task = get_task(ref.name)
            data = self.rt.splits(task)
            pool = data.concatenated(ref.train_splits)
            if ref.dev_holdout:
                pool, held_out = hold_out(pool, ref.dev_holdout, task.name)
                dev = {HOLDOUT_SPLIT: limit(held_out, dev_limit, np.random.default_rng(0))}
            else:
                dev = {s: limit(data.get(s), dev_limit, np.random.default_rng(0)) for s in dev_split_names(ref, task)}
            train = limit(pool, ref.max_train_examples or stage.max_train_examples, rng)
            out.append(LabelledStageTask(task=task, head=head_name(ref, task), train=train, dev=dev))
        return out
