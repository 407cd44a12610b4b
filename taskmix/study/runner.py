"""Run every cell of a study, recording each in the results store; rerunning continues where it stopped.

Cells run one after another in this process.  Finished cells are skipped; a stage group
finished by an earlier cell or an interrupted run is reused from the study's shared stage
cache, so an intermediate encoder used by many cells is trained once.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from taskmix.config import parse_experiment
from taskmix.errors import TaskmixError
from taskmix.experiment import ExperimentRunner, TargetResult
from taskmix.study.grid import Cell, StudySpec, expand
from taskmix.study.specfile import save_study_spec
from taskmix.study.store import ResultRecord, ResultsStore

log = logging.getLogger(__name__)


def records(result: TargetResult, max_train_examples: int | None, seed: int) -> list[ResultRecord]:
    """One store row per restart; the selected restart is flagged (and AX scores ride on its metrics)."""
    out = []
    for run in result.runs:
        selected = run.restart == result.selected_restart
        metrics = dict(result.metrics if selected else run.metrics)
        if selected and result.diagnostic:
            metrics["diagnostic"] = result.diagnostic
        out.append(ResultRecord(
            pipeline=result.pipeline, task=result.task, seed=seed, restart=run.restart,
            score=result.score if selected else run.score, metrics=metrics, degenerate=run.degenerate,
            is_selected=selected, max_train_examples=max_train_examples,
        ))
    return out


def final_stage_limit(experiment: dict) -> int | None:
    stage = experiment["stages"][-1]
    return stage.get("max_train_examples")


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
        try:
            cfg = parse_experiment(dict(cell.experiment, name=f"{self.spec.name}-{cell.cell_id}"), cell.cell_id)
            runner = ExperimentRunner(cfg, self.data_dir, run_dir, self.config_dir, progress=self.progress,
                                      stage_cache=self.study_dir / "stages")
            result = runner.run()
        except (TaskmixError, RuntimeError, ValueError, OSError) as exc:
            log.error("cell %s failed: %s", cell.cell_id, exc)
            store.mark_failed(cell.cell_id, "".join(traceback.format_exception_only(type(exc), exc)).strip())
            return
        limit = final_stage_limit(cell.experiment)
        store.mark_done(cell.cell_id, [r for t in result.targets for r in records(t, limit, cfg.seed)])
