"""What a finished stage group leaves in the run directory: dev prediction files, submission files,
the selected model's checkpoint and every restart's metrics; and the AX diagnostic of an NLI head."""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from taskmix import metrics as glue_metrics
from taskmix.config import StageConfig
from taskmix.diagnostic import SUPERGLUE_DIAGNOSTICS, is_nli, score_diagnostic, to_nli_order, writes_superglue_diagnostics
from taskmix.models.encoder import EncoderFamily
from taskmix.models.model import MultiTaskModel
from taskmix.restarts import GroupOutcome
from taskmix.rundir import save_torch, write_json
from taskmix.runtime import Runtime
from taskmix.submission import write_submission
from taskmix.tasks import get_task
from taskmix.tasks.base import Task
from taskmix.training.stage_task import TrainableTask

log = logging.getLogger(__name__)


def diagnostic_scores(rt: Runtime, model: MultiTaskModel, head: str, task: Task) -> dict:
    """AX (GLUE diagnostic) R3, overall and per coarse category, from a 3-class NLI head trained on `task`."""
    ax = get_task("ax")
    preds = rt.predict(model, head, ax, "full")
    return asdict(score_diagnostic(rt.splits(ax).examples("full"), to_nli_order(task, preds)))


class GroupWriter:
    """Writes one stage group's outputs with the experiment's runtime (rank 0 only under torchrun)."""

    def __init__(self, rt: Runtime, family: EncoderFamily, max_length: int):
        self.rt = rt
        self.family = family
        self.max_length = max_length

    def write(self, model: MultiTaskModel, stage: StageConfig, group: GroupOutcome, out_dir: Path,
              is_final: bool) -> None:
        """Dev predictions and test submission files (labelled targets only), the checkpoint and the metrics."""
        for st in group.tasks:
            st.write_predictions(out_dir, (group.dev_predictions or {}).get(st.name, {}),
                                 functools.partial(self.rt.predict_split, model))
            if is_final and stage.predict_test and st.labelled_task is not None:
                self.write_test(model, st, group.restarts[group.selected].metrics[st.name], out_dir / "submission")
        heads = {st.head: {"kind": st.head_kind, "num_outputs": st.num_outputs, "task": st.name,
                           "model": model.heads[st.head].model_spec(), "settings": dict(model.heads[st.head].settings)}
                 for st in group.tasks}
        save_torch(out_dir / "checkpoint.pt", {
            "encoder": self.family.spec(), "max_length": self.max_length, "heads": heads,
            "state_dict": model.state_dict(),
        })
        write_json(out_dir / "metrics.json", {"stage": stage.name, "selected_restart": group.selected,
                                               "restarts": [asdict(r) for r in group.restarts]})

    def write_test(self, model: MultiTaskModel, st: TrainableTask, dev_metrics: dict[str, float], out_dir: Path) -> None:
        """The task's submission files; a task reported as its majority class (WNLI) submits it too,
        a three-class NLI head also answers the GLUE diagnostic (AX.tsv), a SuperGLUE RTE head
        SuperGLUE's (AX-b.jsonl, AX-g.jsonl)."""
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
        for diagnostic in map(get_task, SUPERGLUE_DIAGNOSTICS if writes_superglue_diagnostics(task) else ()):
            if self.rt.has_file(diagnostic, "test"):
                write_submission(diagnostic, "test", self.rt.splits(diagnostic).get("test").uids,
                                 self.rt.predict(model, st.head, diagnostic, "test"), out_dir)
