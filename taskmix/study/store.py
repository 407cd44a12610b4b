"""The results store of a study: one SQLite file, safe for several runner processes.

WAL mode lets readers (status, reports) run while a runner writes; a busy timeout makes
concurrent writers wait instead of failing; every write is one `BEGIN IMMEDIATE`
transaction, so a cell's results appear all at once or not at all.  Recording a cell
again replaces its rows, so a re-run never duplicates results.

The file's schema version is SQLite's `user_version`; opening a file of an older version
migrates it in place (see `_MIGRATIONS`), and a newer one is refused rather than misread.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from taskmix.cache import canonical_json
from taskmix.study.grid import Cell

STORE_FILE = "results.sqlite"
STATUSES = ("pending", "running", "done", "failed")
BUSY_TIMEOUT_S = 60.0
SCHEMA_VERSION = 2
DIAGNOSTIC_TASK = "ax"  # the task of result rows holding a target head's AX diagnostic

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS cells (
    cell_id     TEXT PRIMARY KEY,
    study       TEXT NOT NULL,
    fields      TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error       TEXT,
    started     TEXT,
    finished    TEXT,
    run_dir     TEXT
);
CREATE TABLE IF NOT EXISTS results (
    cell_id            TEXT NOT NULL REFERENCES cells(cell_id),
    pipeline           TEXT NOT NULL,
    task               TEXT NOT NULL,
    seed               INTEGER,
    restart            INTEGER NOT NULL,
    metrics            TEXT NOT NULL,
    score              REAL NOT NULL,
    degenerate         INTEGER NOT NULL CHECK (degenerate IN (0, 1)),
    is_selected        INTEGER NOT NULL CHECK (is_selected IN (0, 1)),
    max_train_examples INTEGER,
    timings            TEXT NOT NULL,
    UNIQUE (cell_id, pipeline, task, restart)
);
CREATE INDEX IF NOT EXISTS results_by_task ON results (task, pipeline);
"""

# Version -> the script that brings a file of that version to the next one; a new file is
# created at version 1 and migrated from there.  Version 0 keyed results by (cell, task,
# restart), so a cell comparing pipelines on one target task could not be stored; the table
# is rebuilt with the pipeline in its key, keeping every row.  Version 2 adds the training-row
# limits of the stages before the target (learning curves over a pretraining stage's size).
_MIGRATIONS = {
    0: """
ALTER TABLE results RENAME TO results_v0;
DROP INDEX IF EXISTS results_by_task;
""" + _SCHEMA_V1 + """
INSERT INTO results SELECT * FROM results_v0;
DROP TABLE results_v0;
""",
    1: """
ALTER TABLE results ADD COLUMN stage_limits TEXT NOT NULL DEFAULT '[]';
""",
}


@dataclass(frozen=True)
class ResultRecord:
    """One evaluated run of a target task: one restart of one cell.

    `pipeline` names the table row: the encoder and the stages before the target task
    ('minilm → snli'), never the target itself.  `score` is the task score (mean of its metrics, in [0, 1] for most tasks);
    `is_selected` marks the restart chosen on dev; `max_train_examples` is None for full
    training data; `stage_limits` the training-row limits of the stages before the target, in
    pipeline order (None: all rows), so that a study varying a pretraining stage's data can
    draw scores against it.  For the diagnostic task "ax", `pipeline` ends with the NLI task whose head
    was scored, and `metrics` holds `r3` and a `categories` mapping of coarse category -> R3.
    """

    pipeline: str
    task: str
    seed: int | None
    restart: int
    score: float
    metrics: dict[str, Any] = field(default_factory=dict)
    degenerate: bool = False
    is_selected: bool = False
    max_train_examples: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    stage_limits: tuple[int | None, ...] = ()


class StoreError(RuntimeError):
    """A store call that the store's state does not allow (e.g. an unknown cell)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ResultsStore:
    """`<study_dir>/results.sqlite`.  Open one per process; do not share across a fork."""

    def __init__(self, study_dir: str | Path):
        self.path = Path(study_dir) / STORE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        try:
            self._create_or_migrate()
        except BaseException:
            self._db.close()
            raise

    def _create_or_migrate(self) -> None:
        """Create the tables of a new file, or migrate an older file's, in one transaction."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer taskmix (store version {version}, "
                             f"this one reads up to {SCHEMA_VERSION})")
        has_results = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'results'").fetchone() is not None
        start = version if has_results else 1
        steps = ([] if has_results else [_SCHEMA_V1]) + [_MIGRATIONS[v] for v in range(start, SCHEMA_VERSION)]
        self._db.executescript(f"BEGIN IMMEDIATE;{''.join(steps)}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction: takes the write lock up front, so it cannot deadlock."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def add_cells(self, study: str, cells: Iterable[Cell]) -> None:
        """Register cells as pending; cells already known keep their status and results."""
        rows = [(c.cell_id, study, canonical_json(c.fields), c.config_hash) for c in cells]
        with self._write() as db:
            db.executemany(
                "INSERT INTO cells (cell_id, study, fields, config_hash) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (cell_id) DO UPDATE SET study = excluded.study, fields = excluded.fields",
                rows,
            )

    def mark_running(self, cell_id: str, run_dir: str | Path | None = None) -> None:
        """The cell has started (again): clears the previous error and finish time."""
        self._set_status(
            cell_id,
            "status = 'running', started = ?, finished = NULL, error = NULL, run_dir = ?",
            (_now(), None if run_dir is None else str(run_dir)),
        )

    def mark_failed(self, cell_id: str, error: str) -> None:
        """The cell stopped with `error`; results recorded by an earlier run are kept."""
        self._set_status(cell_id, "status = 'failed', finished = ?, error = ?", (_now(), error))

    def mark_done(self, cell_id: str, results: Iterable[ResultRecord]) -> None:
        """Record the cell's results, replacing any earlier ones, and mark it done."""
        records = list(results)
        _check_selection(cell_id, records)
        rows = [
            (
                cell_id,
                r.pipeline,
                r.task,
                r.seed,
                r.restart,
                canonical_json(r.metrics),
                float(r.score),
                int(r.degenerate),
                int(r.is_selected),
                r.max_train_examples,
                canonical_json(r.timings),
                canonical_json(list(r.stage_limits)),
            )
            for r in records
        ]
        with self._write() as db:
            self._require(db, cell_id)
            db.execute("DELETE FROM results WHERE cell_id = ?", (cell_id,))
            db.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute(
                "UPDATE cells SET status = 'done', finished = ?, error = NULL WHERE cell_id = ?",
                (_now(), cell_id),
            )

    def _set_status(self, cell_id: str, assignments: str, params: tuple[Any, ...]) -> None:
        with self._write() as db:
            self._require(db, cell_id)
            db.execute(f"UPDATE cells SET {assignments} WHERE cell_id = ?", (*params, cell_id))

    @staticmethod
    def _require(db: sqlite3.Connection, cell_id: str) -> None:
        if db.execute("SELECT 1 FROM cells WHERE cell_id = ?", (cell_id,)).fetchone() is None:
            raise StoreError(f"cell {cell_id} is not in the store; add_cells first")

    def status_summary(self) -> dict[str, int]:
        """Number of cells per status (every status present, zero if none)."""
        counts = dict.fromkeys(STATUSES, 0)
        for status, n in self._db.execute("SELECT status, COUNT(*) FROM cells GROUP BY status"):
            counts[status] = n
        return counts

    def cells(self, status: str | None = None) -> list[dict[str, Any]]:
        """Cell rows as dicts (fields parsed), optionally only those with `status`."""
        query, params = "SELECT * FROM cells", ()
        if status is not None:
            query, params = query + " WHERE status = ?", (status,)
        rows = [dict(r) for r in self._db.execute(query + " ORDER BY rowid", params)]
        for row in rows:
            row["fields"] = json.loads(row["fields"])
        return rows

    def results(self, selected_only: bool = False) -> list[dict[str, Any]]:
        """Result rows of done cells as dicts with their cell's grid fields, JSON parsed and flags as bools."""
        query = (
            "SELECT results.*, cells.fields AS fields FROM results JOIN cells USING (cell_id)"
            " WHERE cells.status = 'done'"
            + (" AND is_selected = 1" if selected_only else "")
            + " ORDER BY results.rowid"
        )
        rows = [dict(r) for r in self._db.execute(query)]
        for row in rows:
            row["metrics"] = json.loads(row["metrics"])
            row["fields"] = json.loads(row["fields"])
            row["timings"] = json.loads(row["timings"])
            row["stage_limits"] = tuple(json.loads(row["stage_limits"]))
            row["degenerate"] = bool(row["degenerate"])
            row["is_selected"] = bool(row["is_selected"])
        return rows

    def integrity_ok(self) -> bool:
        """SQLite's own consistency check of the file."""
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _check_selection(cell_id: str, records: list[ResultRecord]) -> None:
    """At most one selected restart per (pipeline, task): the best-on-dev choice is unique."""
    selected = [(r.pipeline, r.task) for r in records if r.is_selected]
    repeated = sorted({key for key in selected if selected.count(key) > 1})
    if repeated:
        which = ", ".join(f"{task} in pipeline '{pipeline}'" for pipeline, task in repeated)
        raise StoreError(f"cell {cell_id}: more than one selected restart for {which}")

