"""Run an experiment: ordered stages per pipeline, restarts, target evaluation, run-directory outputs.

Pipelines that share a prefix of stages (e.g. `minilm → snli → rte` and `minilm → snli → mrpc`)
train that prefix once; each stage starts from the encoder the previous stage left behind,
with a fresh optimizer and, unless `keep_heads` is set, fresh heads.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from taskmix import metrics as glue_metrics
from taskmix.config import EncoderConfig, ExperimentConfig, StageConfig, TaskRef
from taskmix.diagnostic import is_nli, score_diagnostic, to_nli_order
from taskmix.errors import ConfigError, TaskmixError
from taskmix.file_digests import FileDigests
from taskmix.models.encoder import encoder_family, encoder_label
from taskmix.models.heads import build_head
from taskmix.models.model import MultiTaskModel
from taskmix.pretraining import PretrainingTask, TaskIdEmbedding, build_pretraining_task
from taskmix.pretraining.stage_task import PretrainingStageTask
from taskmix.rundir import save_torch, write_json, write_text
from taskmix.stage_cache import DIGESTS_FILE, BestRestart, StageCache, cache_key
from taskmix.stage_inputs import encoder_identity, task_data_identity
from taskmix.submission import write_submission
from taskmix.tasks import get_task, register_task
from taskmix.tasks.base import Task
from taskmix.tasks.custom import build_custom_task
from taskmix.task_refs import corpus_path, dev_split_names, labelled_task, pretraining_name
from taskmix.training import distributed
from taskmix.training.divergence import TrainingDiverged
from taskmix.training.stage import StageTrainer
from taskmix.training.stage_task import StageTask, TrainableTask
from taskmix.runtime import Runtime
from taskmix.training.tracking import TensorBoardTracker
from taskmix.training.task_data import HOLDOUT_SPLIT, hold_out, limit

log = logging.getLogger(__name__)


@dataclass
class RestartResult:
    restart: int
    seed: int
    metrics: dict[str, dict[str, float]]
    scores: dict[str, float]
    score: float | None  # None when the restart failed
    steps: int
    seconds: float
    train_examples: int
    rank_digests: list[str] | None = None  # under torchrun: each rank's weights after the last step, hashed
    failed: str | None = None  # why the restart has no result, e.g. "diverged at step 12"; never selected


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

    @property
    def restart_scores(self) -> list[float]:
        return [r.score for r in self.runs]

    @property
    def summary(self) -> dict[str, float]:
        scores = np.array(self.restart_scores)
        return {"mean": float(scores.mean()), "std": float(scores.std()), "max": float(scores.max()),
                "degenerate": sum(r.degenerate for r in self.runs), "runs": len(scores)}


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
    parts = [encoder_label(encoder.name, encoder.label)] + [stage_label(s) for s in prefix]
    if len(final.tasks) > 1 and not final.separate:
        parts.append("mtl" + stage_label(final))
    return " → ".join(parts)


def restart_seed(base: int, restart: int) -> int:
    return base * 1000 + restart


class ExperimentRunner:
    """Holds what an experiment shares across stages: device, tokenizer, token cache, task splits."""

    def __init__(self, cfg: ExperimentConfig, data_dir: Path | None, output_dir: Path, config_dir: Path,
                 progress: bool = True, stage_cache: Path | None = None):
        self.cfg = cfg
        self.stage_cache = StageCache(stage_cache or output_dir / "stages")
        self.digests = FileDigests(self.stage_cache.root / DIGESTS_FILE)
        self.data_dir = data_dir
        self.run_dir = output_dir
        self.progress = progress
        for spec in cfg.custom_tasks:
            register_task(build_custom_task(spec, config_dir), custom=True)
        self._check_tasks()
        self.encoder_family = encoder_family(cfg.encoder.build_settings())
        self.rt = Runtime(self.encoder_family, data_dir, cfg.max_length, cfg.device, cfg.precision,
                          Path(cfg.cache_dir) if cfg.cache_dir else None, cfg.threads, cfg.eval_batch_size)
        self._pretrained_state: dict[str, torch.Tensor] | None = None
        self._encoder = None
        self._pretraining: dict[str, PretrainingTask] = {}
        self._encoder_identity: dict | None = None

    def _check_tasks(self) -> None:
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
        for stages in self.cfg.stage_sequences():
            for stage in stages[:-1]:
                if stage.separate:
                    raise ConfigError(f"stage '{stage.name}': separate: true is only allowed on a pipeline's last stage")

    # -- model state ----------------------------------------------------------------------
    def fresh_model(self, encoder_state: dict | None) -> MultiTaskModel:
        """A model with the pretrained encoder (or the given encoder state) and no heads."""
        if self._encoder is None:
            self._encoder = self.encoder_family.build()
            self._pretrained_state = copy.deepcopy(self._encoder.state_dict())
        self._encoder.load_state_dict(encoder_state or self._pretrained_state)
        return MultiTaskModel(self._encoder).to(self.rt.device)

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

    def head_spec(self, ref: TaskRef) -> tuple[str, str, int]:
        """The head name, kind and number of outputs of a stage entry."""
        if pretraining_name(ref.name):
            task = self.pretraining_task(ref)
            return ref.head or task.name, task.head_kind, task.num_outputs
        task = get_task(ref.name)
        return head_name(ref, task), task.kind.head, task.num_classes

    def add_heads(self, model: MultiTaskModel, refs: list[TaskRef], kept: dict[str, dict], dropout: float) -> None:
        """Build missing heads; vocabulary heads are tied to the encoder before kept weights load."""
        for ref in refs:
            name, kind, num_outputs = self.head_spec(ref)
            if name in model.heads:
                continue
            head = build_head(kind, model.encoder.hidden_size, num_outputs, dropout)
            if hasattr(head, "tie_to"):
                head.tie_to(model.encoder)
            if name in kept:
                head.load_state_dict(kept[name])
            model.heads[name] = head.to(self.rt.device)

    # -- one stage group --------------------------------------------------------------------
    def stage_tasks(self, refs: list[TaskRef], stage: StageConfig, rng: np.random.Generator) -> list[TrainableTask]:
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
            out.append(StageTask(task=task, head=head_name(ref, task), train=train, dev=dev))
        return out

    def group_key(self, prefix: list[StageConfig], stage: StageConfig, refs: list[TaskRef]) -> str:
        """The stage-cache key: the config of this group and the stages before it, the encoder's weights and
        every file those stages read (see `stage_inputs`)."""
        cfg = self.cfg
        if self._encoder_identity is None:
            self._encoder_identity = encoder_identity(cfg.encoder.name, self.digests)
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
                  out_dir: Path, is_final: bool, key: str) -> "GroupOutcome":
        """Train `refs` with restarts and keep the best restart on dev (seed 002), unless already cached.

        Under torchrun every rank trains; rank 0 alone stores the result and writes the outputs.
        """
        distributed.barrier()  # no rank looks for cached results while rank 0 is still writing them
        cached = self.stage_cache.load(key)
        if cached is not None:
            enc_state, heads_state, restarts_raw, selected = cached
            log.info("stage '%s' %s: reusing the finished result %s", stage.name, [t.name for t in refs], key)
            restarts = [RestartResult(**r) for r in restarts_raw]
            tasks = self.stage_tasks(refs, stage, np.random.default_rng(restarts[selected].seed))
            group = GroupOutcome(enc_state, heads_state, restarts, selected, tasks)
        else:
            group = self.train_group(stage, refs, encoder_state, kept_heads, key, out_dir / "tensorboard")
            if distributed.is_main():
                self.stage_cache.store(key, group.encoder_state, group.head_states,
                                       [asdict(r) for r in group.restarts], group.selected)
        if distributed.is_main():
            model = self.fresh_model(group.encoder_state)
            self.add_heads(model, refs, group.head_states, stage.dropout)
            self.write_group_outputs(model, stage, group, out_dir, is_final)
        return group

    def train_group(self, stage: StageConfig, refs: list[TaskRef], encoder_state: dict | None,
                    kept_heads: dict, key: str, tensorboard_dir: Path) -> "GroupOutcome":
        """Run the restarts; finished restarts and the running one's checkpoint survive interruption."""
        saved_restarts, best = self.stage_cache.partial(key) or ([], None)
        restarts: list[RestartResult] = [RestartResult(**r) for r in saved_restarts]
        for r in range(len(restarts), stage.restarts):
            seed = restart_seed(self.cfg.seed, r)
            tasks = self.stage_tasks(refs, stage, np.random.default_rng(seed))
            model = self.fresh_model(encoder_state)
            torch.manual_seed(seed)
            self.add_heads(model, refs, kept_heads, stage.dropout)
            if stage.task_ids:
                model.task_embedding = TaskIdEmbedding(model.encoder.hidden_size).to(self.rt.device)
            log.info("stage '%s' %s restart %d/%d (seed %d): %s", stage.name, [t.name for t in refs], r + 1,
                     stage.restarts, seed, ", ".join(f"{t.name}={t.size} train" for t in tasks))
            tracker = (TensorBoardTracker(tensorboard_dir / f"restart-{r}")
                       if self.cfg.tensorboard and distributed.is_main() else None)
            trainer = StageTrainer(model, stage, tasks, device=self.rt.device, precision=self.rt.precision, seed=seed,
                                   pad_id=self.rt.pad_id, eval_batch_size=self.rt.eval_batch_size,
                                   progress=self.progress, tracker=tracker)
            restart, predictions = self.train_restart(trainer, stage, key, r, seed)
            restarts.append(restart)
            if restart.failed is None and (best is None or restart.score > best.score):
                best = BestRestart(restart.score, copy.deepcopy(model.encoder.state_dict()),
                                   {k: copy.deepcopy(v.state_dict()) for k, v in model.heads.items()}, predictions)
            if distributed.is_main() and r < stage.restarts - 1:  # after the last restart the group is stored
                self.stage_cache.save_partial(key, [asdict(x) for x in restarts], best)
        selected = select_restart(stage, refs, restarts)
        tasks = self.stage_tasks(refs, stage, np.random.default_rng(restart_seed(self.cfg.seed, selected)))
        return GroupOutcome(best.encoder_state, best.head_states, restarts, selected, tasks, best.predictions)

    def train_restart(self, trainer: StageTrainer, stage: StageConfig, key: str, r: int,
                      seed: int) -> tuple[RestartResult, dict | None]:
        """One restart's result and best dev predictions; a diverged restart is a failed result, not an error."""
        started = time.perf_counter()
        try:
            outcome = trainer.train(checkpoint=self.stage_cache.training_checkpoint(key, r))
        except TrainingDiverged as exc:
            log.warning("restart %d/%d failed: %s", r + 1, stage.restarts, exc)  # exc names the stage
            return RestartResult(r, seed, {}, {}, None, exc.step, time.perf_counter() - started,
                                 sum(t.size for t in trainer.tasks.values()), failed=exc.reason), None
        return RestartResult(r, seed, outcome.best.metrics, outcome.best.scores, outcome.best.score, outcome.steps,
                             outcome.seconds, outcome.train_examples, outcome.rank_digests), outcome.best.predictions

    def write_group_outputs(self, model: MultiTaskModel, stage: StageConfig, group: "GroupOutcome", out_dir: Path,
                            is_final: bool) -> None:
        """Dev predictions and test submission files (labelled targets only), the checkpoint and the metrics."""
        for st in group.tasks:
            st.write_predictions(out_dir, (group.dev_predictions or {}).get(st.name, {}),
                               functools.partial(self.rt.predict_split, model))
            if is_final and stage.predict_test and st.labelled_task is not None:
                self.write_test(model, st, group.restarts[group.selected].metrics[st.name], out_dir / "submission")
        heads = {st.head: {"kind": st.head_kind, "num_outputs": st.num_outputs, "task": st.name}
                 for st in group.tasks}
        save_torch(out_dir / "checkpoint.pt", {
            "encoder": self.encoder_family.spec(), "max_length": self.cfg.max_length, "heads": heads,
            "state_dict": model.state_dict(),
        })
        write_json(out_dir / "metrics.json", {"stage": stage.name, "selected_restart": group.selected,
                                               "restarts": [asdict(r) for r in group.restarts]})

    def write_test(self, model: MultiTaskModel, st: TrainableTask, dev_metrics: dict[str, float], out_dir: Path) -> None:
        """The task's submission files; a task reported as its majority class (WNLI) submits it too,
        and a three-class NLI head also answers the GLUE diagnostic (AX.tsv)."""
        task = st.labelled_task
        baselines = st.baselines()
        floor = baselines.majority is not None and glue_metrics.apply_majority_rule(
            task, dev_metrics, baselines.majority)[1]
        for split in task.submission_files:
            if not self.rt.has_file(task, split):
                log.info("no %s file for %s; skipping its submission file", split, task.name)
                continue
            preds = self.rt.predict(model, st.head, task, split)
            if floor:
                preds = np.full(len(preds), baselines.majority_prediction)
            write_submission(task, split, self.rt.splits(task).get(split).uids, preds, out_dir)
        ax = get_task("ax")
        if is_nli(task) and self.rt.has_file(ax, "test"):
            preds = to_nli_order(task, self.rt.predict(model, st.head, ax, "test"))
            write_submission(ax, "test", self.rt.splits(ax).get("test").uids, preds, out_dir)

    def diagnostic(self, model: MultiTaskModel, head: str, task: Task) -> dict:
        """AX (GLUE diagnostic) R3, overall and per coarse category, from a 3-class NLI head."""
        ax = get_task("ax")
        data = self.rt.splits(ax)
        examples = data.examples("full")
        preds = self.rt.predict(model, head, ax, "full")
        return asdict(score_diagnostic(examples, to_nli_order(task, preds)))

    # -- the whole experiment ---------------------------------------------------------------
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
                        targets.extend(self.target_results(label, stage, group))
        return ExperimentResult(self.cfg.name, self.run_dir, targets, time.perf_counter() - started)

    def target_results(self, label: str, stage: StageConfig, group: "GroupOutcome") -> list[TargetResult]:
        """Per task: the selected restart's metrics and every restart; labelled tasks also get the
        majority baseline, degenerate-run flags and (NLI) the diagnostic."""
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
            diag = None
            if task is not None and self.cfg.diagnostic and is_nli(task):
                model = self.fresh_model(group.encoder_state)
                self.add_heads(model, [TaskRef(name=task.name, head=st.head)], group.head_states, stage.dropout)
                diag = self.diagnostic(model, st.head, task)
            out.append(TargetResult(label, st.name, metrics, glue_metrics.task_score(metrics), runs,
                                    group.selected, baselines.majority_score, applied, diag))
        return out


@dataclass
class GroupOutcome:
    """The selected restart's weights, every restart's result, and the data the group trained on."""

    encoder_state: dict
    head_states: dict
    restarts: list[RestartResult]
    selected: int
    tasks: list[TrainableTask]
    dev_predictions: dict[str, dict[str, np.ndarray]] | None = None  # the selected restart's best validation


def select_restart(stage: StageConfig, refs: list[TaskRef], restarts: list[RestartResult]) -> int:
    """The best restart on dev among those that finished; a stage whose every restart failed is an error."""
    finished = [i for i, r in enumerate(restarts) if r.failed is None]
    if not finished:
        reasons = "; ".join(f"restart {r.restart + 1}: {r.failed}" for r in restarts)
        raise TaskmixError(f"stage '{stage.name}' {[t.name for t in refs]}: every restart failed ({reasons}); "
                           f"lower the learning rate or set max_grad_norm")
    return max(finished, key=lambda i: restarts[i].score)


def head_name(ref: TaskRef, task: Task) -> str:
    return ref.head or task.name
