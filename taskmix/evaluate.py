"""Evaluate a saved checkpoint: dev metrics per task, AX diagnostic scores, optional submission files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import taskmix.pretraining  # noqa: F401  (registers the pretraining head kinds checkpoints may name)
from taskmix import metrics as glue_metrics
from taskmix.checkpoints import read_checkpoint
from taskmix.diagnostic import (SUPERGLUE_DIAGNOSTICS, diagnostic_table_markdown, is_entailment, is_nli,
                                score_diagnostic, to_nli_order, writes_superglue_diagnostics)
from taskmix.errors import ConfigError
from taskmix.models.encoder import encoder_family
from taskmix.models.heads import build_head
from taskmix.models.model import MultiTaskModel
from taskmix.runtime import Runtime
from taskmix.submission import write_submission
from taskmix.tasks import get_task


def model_from_checkpoint(saved: dict, device: torch.device) -> MultiTaskModel:
    """Rebuild the encoder (from its family's record) and heads of a checkpoint and load their weights."""
    model = MultiTaskModel(encoder_family(saved["encoder"]).build())
    for name, head in saved["heads"].items():
        model.heads[name] = build_head(head["kind"], model.encoder.hidden_size, head["num_outputs"],
                                       model=head.get("model"), settings=head.get("settings"))
        if hasattr(model.heads[name], "tie_to"):
            model.heads[name].tie_to(model.encoder)
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()


def head_for(task_name: str, heads: dict[str, dict]) -> str:
    """The head trained on `task_name`; for AX, any head trained on a 3-class NLI task; for AX-b
    and AX-g, the head of SuperGLUE RTE when there is one, else any two-class entailment head."""
    for name, info in heads.items():
        if info["task"] == task_name:
            return name
    preferences = {"ax": (is_nli,), **{name: (writes_superglue_diagnostics, is_entailment)
                                       for name in SUPERGLUE_DIAGNOSTICS}}.get(task_name, ())
    for answers in preferences:
        for name, info in heads.items():
            if answers(get_task(info["task"])):
                return name
    trained = ", ".join(info["task"] for info in heads.values())
    raise ConfigError(f"checkpoint has no head for task '{task_name}'; it has heads for: {trained}")


def evaluate_checkpoint(path: Path, task_names: list[str], data_dir: Path | None, output_dir: Path | None) -> str:
    """Markdown with each task's dev metrics (and the AX table); writes submissions if asked."""
    saved = read_checkpoint(path)
    rt = Runtime(encoder_family(saved["encoder"]), data_dir, saved["max_length"])
    model = model_from_checkpoint(saved, rt.device)
    lines = ["| task | score | metrics |", "|---|---|---|"]
    sections = []
    for name in task_names:
        task = get_task(name)
        head = head_for(task.name, saved["heads"])
        if task.name == "ax":
            trained_on = get_task(saved["heads"][head]["task"])
            preds = to_nli_order(trained_on, rt.predict(model, head, task, "full"))
            sections.append("## AX diagnostic (R3 ×100)\n\n" + diagnostic_table_markdown(
                score_diagnostic(rt.splits(task).examples("full"), preds)))
            continue
        combined = glue_metrics.merge_splits({
            split: glue_metrics.compute_metrics(task, rt.predict(model, head, task, split),
                                                np.asarray(rt.splits(task).get(split).labels))
            for split in task.dev_splits
        })
        details = ", ".join(f"{k}={100 * v:.1f}" for k, v in combined.items())
        lines.append(f"| {task.name} | {100 * glue_metrics.task_score(combined):.1f} | {details} |")
        if output_dir is not None:
            for split in task.submission_files:
                if rt.has_file(task, split):
                    write_submission(task, split, rt.splits(task).get(split).uids,
                                     rt.predict(model, head, task, split), output_dir)
    return "\n\n".join(["\n".join(lines)] + sections) if len(lines) > 2 else "\n\n".join(sections)
