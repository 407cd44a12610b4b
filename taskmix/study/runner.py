"""Run every cell of a study, recording each in the results store; rerunning continues where it stopped.

Cells run one after another in this process.  Finished cells are skipped; a stage group
finished by an earlier cell or an interrupted run is reused from the study's shared stage
cache, so an intermediate encoder used by many cells is trained once.
"""

from __future__ import annotations

import logging
import sqlite3
import traceback
from pathlib import Path

from taskmix.config import ExperimentConfig, parse_experiment
from taskmix.errors import TaskmixError
from taskmix.experiment import ExperimentRunner, pipeline_label
from taskmix.targets import TargetResult
from taskmix.study.grid import ARROW, Cell, StudySpec, expand
from taskmix.study.specfile import save_study_spec
from taskmix.study.store import DIAGNOSTIC_TASK, ResultRecord, ResultsStore
from taskmix.task_refs import pretraining_name
from taskmix.tasks import get_task

log = logging.getLogger(__name__)


def records(result: TargetResult, max_train_examples: int | None, seed: int,
            stage_limits: tuple[int | None, ...] = ()) -> list[ResultRecord]:
    """One store row per restart, the selected restart flagged, plus the AX row of a scored NLI head."""
    out = []
    for run in result.runs:
        selected = run.restart == result.selected_restart
        out.append(ResultRecord(
            pipeline=result.pipeline, task=result.task, seed=seed, restart=run.restart,
            score=result.score if selected else run.score, metrics=dict(result.metrics if selected else run.metrics),
            degenerate=run.degenerate, is_selected=selected, max_train_examples=max_train_examples,
            stage_limits=stage_limits,
        ))
    if result.diagnostic:
        out.append(diagnostic_record(result, max_train_examples, seed, stage_limits))
    return out


def diagnostic_record(result: TargetResult, max_train_examples: int | None, seed: int,
                      stage_limits: tuple[int | None, ...] = ()) -> ResultRecord:
    """The AX row of an NLI target: R3 of its selected head, overall and per coarse category.

    Its pipeline also names the NLI task whose head was scored ('minilm → snli'), so that
    several NLI targets of one pipeline keep a row each; categories without rows are left out.
    """
    scores = result.diagnostic
    overall = scores["overall"]["r3"]
    categories = {name: s["r3"] for name, s in scores["by_category"].items() if s["r3"] is not None}
    return ResultRecord(
        pipeline=result.pipeline + ARROW + result.task, task=DIAGNOSTIC_TASK, seed=seed,
        restart=result.selected_restart, score=overall,
        metrics={"r3": overall, "categories": categories, "rows": scores["overall"]["rows"]},
        is_selected=True, max_train_examples=max_train_examples, stage_limits=stage_limits,
    )


def target_limits(cfg: ExperimentConfig) -> dict[tuple[str, str], int | None]:
    """(pipeline, task) -> the training-row limit its final stage applied to it (None: all rows).

    Taken from the validated experiment, per pipeline and task entry, as training applies it:
    the entry's own limit, else its stage's.
    """
    limits: dict[tuple[str, str], int | None] = {}
    for stages in cfg.stage_sequences():
        final = stages[-1]
        label = pipeline_label(cfg.encoder, stages)
        for ref in final.tasks:
            if not pretraining_name(ref.name):  # pretraining tasks train on their whole corpus
                limits[(label, get_task(ref.name).name)] = ref.max_train_examples or final.max_train_examples
    return limits


def stage_limits(cfg: ExperimentConfig) -> dict[str, tuple[int | None, ...]]:
    """pipeline -> the training-row limit of each stage before its target stage (None: all rows).

    A stage's limit is the sum of its labelled entries' limits (each the entry's own, else the
    stage's), None when any entry trains on all its rows or on a corpus.
    """
    def limit(stage) -> int | None:
        per_entry = [None if pretraining_name(ref.name) else ref.max_train_examples or stage.max_train_examples
                     for ref in stage.tasks]
        return None if None in per_entry else sum(per_entry)

    return {pipeline_label(cfg.encoder, stages): tuple(limit(s) for s in stages[:-1])
            for stages in cfg.stage_sequences()}


class StudyRunner:
    """Expands a study into cells and runs the unfinished ones."""

    def __init__(self, spec: StudySpec, study_dir: Path, data_dir: Path | None, config_dir: Path,
                 progress: bool = True):
        self.spec = spec
        self.study_dir = study_dir
        self.data_dir = data_dir
        self.config_dir = config_dir
        self.progress = progress
        self.cells = expand(spec, validate=lambda e: parse_experiment(dict(e, name=spec.name), spec.name))

    def run(self) -> dict[str, int]:
        save_study_spec(self.study_dir, self.spec)
        with ResultsStore(self.study_dir) as store:
            store.add_cells(self.spec.name, self.cells)
            done = {c["cell_id"] for c in store.cells("done")}
            todo = [c for c in self.cells if c.cell_id not in done]
            log.info("study '%s': %d cells, %d done, %d to run", self.spec.name, len(self.cells), len(done), len(todo))
            for index, cell in enumerate(todo, 1):
                log.info("cell %d/%d %s %s", index, len(todo), cell.cell_id, cell.fields)
                self.run_cell(store, cell)
            return store.status_summary()

    def run_cell(self, store: ResultsStore, cell: Cell) -> None:
        run_dir = self.study_dir / "cells" / cell.cell_id
        store.mark_running(cell.cell_id, run_dir)
        try:  # recording the results is part of the cell: a failed write fails the cell, not the study
            cfg = parse_experiment(dict(cell.experiment, name=f"{self.spec.name}-{cell.cell_id}"), cell.cell_id)
            runner = ExperimentRunner(cfg, self.data_dir, run_dir, self.config_dir, progress=self.progress,
                                      stage_cache=self.study_dir / "stages")
            result = runner.run()
            limits, earlier = target_limits(cfg), stage_limits(cfg)
            store.mark_done(cell.cell_id, [r for t in result.targets
                                           for r in records(t, limits.get((t.pipeline, t.task)), cfg.seed,
                                                            earlier.get(t.pipeline, ()))])
        except (TaskmixError, RuntimeError, ValueError, OSError, sqlite3.Error) as exc:
            log.error("cell %s failed: %s", cell.cell_id, exc)
            store.mark_failed(cell.cell_id, "".join(traceback.format_exception_only(type(exc), exc)).strip())
