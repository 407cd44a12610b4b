"""Results store: status transitions, idempotent recording, two concurrent writer processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from taskmix.study.grid import Cell, cell_id_of
from taskmix.study.store import ResultRecord, ResultsStore, StoreError


def make_cells(n: int) -> list[Cell]:
    cells = []
    for seed in range(n):
        experiment = {"encoder": "minilm", "seed": seed, "stages": [{"name": "target", "tasks": ["rte", "mrpc"]}]}
        cells.append(Cell(cell_id_of(experiment), {"seed": seed}, experiment))
    return cells


def records(seed: int, restarts: int = 3, offset: float = 0.0) -> list[ResultRecord]:
    out = []
    for task in ("rte", "mrpc"):
        for restart in range(restarts):
            out.append(
                ResultRecord(
                    pipeline="minilm",
                    task=task,
                    seed=seed,
                    restart=restart,
                    score=0.5 + 0.1 * restart + offset,
                    metrics={"accuracy": 0.5 + 0.1 * restart + offset},
                    degenerate=restart == 0,
                    is_selected=restart == restarts - 1,
                    max_train_examples=1000,
                    timings={"train_s": 1.5},
                )
            )
    return out


def test_status_transitions_and_queries(tmp_path: Path) -> None:
    cells = make_cells(3)
    with ResultsStore(tmp_path) as store:
        store.add_cells("demo", cells)
        assert store.status_summary() == {"pending": 3, "running": 0, "done": 0, "failed": 0}
        store.mark_running(cells[0].cell_id, tmp_path / "runs" / "a")
        store.mark_running(cells[1].cell_id)
        store.mark_failed(cells[1].cell_id, "Traceback ...\nRuntimeError: out of memory")
        assert store.status_summary() == {"pending": 1, "running": 1, "done": 0, "failed": 1}
        store.mark_done(cells[0].cell_id, records(0))
        assert store.status_summary() == {"pending": 1, "running": 0, "done": 1, "failed": 1}

        (done,) = store.cells("done")
        assert done["fields"] == {"seed": 0} and done["run_dir"].endswith("runs/a")
        assert done["started"] and done["finished"] and done["error"] is None
        (failed,) = store.cells("failed")
        assert failed["error"].endswith("out of memory")

        rows = store.results()
        assert len(rows) == 6
        assert {r["task"] for r in rows} == {"rte", "mrpc"}
        first = next(r for r in rows if r["task"] == "rte" and r["restart"] == 0)
        assert first["degenerate"] is True and first["is_selected"] is False
        assert first["metrics"] == {"accuracy": 0.5} and first["timings"] == {"train_s": 1.5}
        assert len(store.results(selected_only=True)) == 2


def test_re_adding_cells_keeps_their_state(tmp_path: Path) -> None:
    cells = make_cells(2)
    with ResultsStore(tmp_path) as store:
        store.add_cells("demo", cells)
        store.mark_done(cells[0].cell_id, records(0))
        store.add_cells("demo", cells)
        assert store.status_summary()["done"] == 1
        assert len(store.results()) == 6


def test_re_recording_replaces_rows(tmp_path: Path) -> None:
    (cell,) = make_cells(1)
    with ResultsStore(tmp_path) as store:
        store.add_cells("demo", [cell])
        store.mark_done(cell.cell_id, records(0, restarts=3))
        store.mark_done(cell.cell_id, records(0, restarts=2, offset=0.01))
        rows = store.results()
        assert len(rows) == 4
        assert [r["score"] for r in rows if r["restart"] == 0] == pytest.approx([0.51, 0.51])


def test_running_cell_hides_old_results_and_failure_keeps_them(tmp_path: Path) -> None:
    (cell,) = make_cells(1)
    with ResultsStore(tmp_path) as store:
        store.add_cells("demo", [cell])
        store.mark_done(cell.cell_id, records(0))
        store.mark_running(cell.cell_id)
        assert store.results() == []
        store.mark_failed(cell.cell_id, "boom")
        assert store.results() == []
        assert store.cells()[0]["status"] == "failed"


def test_bad_writes_are_rejected_and_leave_nothing_behind(tmp_path: Path) -> None:
    (cell,) = make_cells(1)
    with ResultsStore(tmp_path) as store:
        with pytest.raises(StoreError, match="not in the store"):
            store.mark_running("unknown")
        store.add_cells("demo", [cell])
        two_selected = [r for r in records(0) if r.task == "rte"]
        two_selected = [ResultRecord(**{**vars(r), "is_selected": True}) for r in two_selected]
        with pytest.raises(StoreError, match="more than one selected restart for rte"):
            store.mark_done(cell.cell_id, two_selected)
        duplicate = records(0)[:1] * 2
        with pytest.raises(sqlite3.IntegrityError):
            store.mark_done(cell.cell_id, duplicate)
        assert store.results() == [] and store.status_summary()["pending"] == 1


def test_store_uses_wal_mode(tmp_path: Path) -> None:
    ResultsStore(tmp_path).close()
    db = sqlite3.connect(tmp_path / "results.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def _writer(study_dir: str, cells: list[Cell], worker: int, start: Any) -> None:
    """One runner process: records every cell three times, as a resumed study would."""
    with ResultsStore(study_dir) as store:
        start.wait()  # both processes write at the same time, not one after the other
        for round_ in range(3):
            for i, cell in enumerate(cells):
                store.mark_running(cell.cell_id, f"runs/{worker}/{i}")
                store.mark_done(cell.cell_id, records(i, offset=0.001 * (worker + round_)))


def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    cells = make_cells(40)
    with ResultsStore(tmp_path) as store:
        store.add_cells("demo", cells)
    # Both workers write the shared middle third; each also has cells of its own.
    shares = [cells[:27], cells[13:]]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(shares))
    workers = [
        context.Process(target=_writer, args=(str(tmp_path), share, w, start)) for w, share in enumerate(shares)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0]

    with ResultsStore(tmp_path) as store:
        assert store.integrity_ok()
        assert store.status_summary() == {"pending": 0, "running": 0, "done": 40, "failed": 0}
        rows = store.results()
    assert len(rows) == 40 * 2 * 3
    keys = [(r["cell_id"], r["task"], r["restart"]) for r in rows]
    assert len(set(keys)) == len(keys)
    assert {r["cell_id"] for r in rows} == {c.cell_id for c in cells}


def two_pipelines(seed: int) -> list[ResultRecord]:
    """A cell comparing `minilm` and `minilm → snli` on the same target task and restarts."""
    return [ResultRecord(**{**vars(r), "pipeline": pipeline})
            for pipeline in ("minilm", "minilm → snli") for r in records(seed) if r.task == "rte"]


def test_a_cell_may_record_one_selected_restart_per_pipeline(tmp_path: Path) -> None:
    (cell,) = make_cells(1)
    with ResultsStore(tmp_path) as store:
        store.add_cells("demo", [cell])
        store.mark_done(cell.cell_id, two_pipelines(0))
        selected = store.results(selected_only=True)
    assert sorted(r["pipeline"] for r in selected) == ["minilm", "minilm → snli"]


# The tables as the first store version wrote them: results unique per (cell, task, restart).
VERSION_0 = """
CREATE TABLE cells (cell_id TEXT PRIMARY KEY, study TEXT NOT NULL, fields TEXT NOT NULL, config_hash TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error TEXT, started TEXT, finished TEXT, run_dir TEXT);
CREATE TABLE results (cell_id TEXT NOT NULL REFERENCES cells(cell_id), pipeline TEXT NOT NULL, task TEXT NOT NULL,
    seed INTEGER, restart INTEGER NOT NULL, metrics TEXT NOT NULL, score REAL NOT NULL,
    degenerate INTEGER NOT NULL CHECK (degenerate IN (0, 1)), is_selected INTEGER NOT NULL CHECK (is_selected IN (0, 1)),
    max_train_examples INTEGER, timings TEXT NOT NULL, UNIQUE (cell_id, task, restart));
CREATE INDEX results_by_task ON results (task, pipeline);
INSERT INTO cells VALUES ('old', 'demo', '{"seed":9}', 'h', 'done', NULL, NULL, NULL, NULL);
INSERT INTO results VALUES ('old', 'minilm', 'rte', 9, 0, '{"accuracy":0.6}', 0.6, 0, 1, NULL, '{}');
"""


def test_a_version_0_store_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        db.executescript(VERSION_0)
    (cell,) = make_cells(1)
    with ResultsStore(tmp_path) as store:
        assert [(r["cell_id"], r["score"], r["stage_limits"]) for r in store.results()] == [("old", 0.6, ())]
        store.add_cells("demo", [cell])
        store.mark_done(cell.cell_id, two_pipelines(0))
        assert len(store.results()) == 1 + 2 * 3
        assert store.integrity_ok()
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    ResultsStore(tmp_path).close()  # opening a migrated file again changes nothing


def test_a_store_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    ResultsStore(tmp_path).close()
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer taskmix"):
        ResultsStore(tmp_path)
