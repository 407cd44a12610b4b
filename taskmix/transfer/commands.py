"""What `taskmix transfer` and `taskmix select` do, kept out of the CLI module so it stays a thin parser.

`taskmix transfer FILE` runs the matrix as an ordinary study (resumable, `taskmix study status`
and `taskmix report` work on its directory) and keeps the transfer file there, which tells the
report to add the matrix sections and tells `taskmix select --matrix DIR` the candidates'
stage settings.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from taskmix.config import TaskRef, check_name
from taskmix.errors import ConfigError
from taskmix.study.document import Figure, Table, to_markdown
from taskmix.study.report import FIGURE_DIR, write_report
from taskmix.study.store import STORE_FILE, ResultsStore
from taskmix.task_refs import labelled_task, pretraining_name
from taskmix.transfer.matrix import TransferMatrix, transfer_matrix
from taskmix.transfer.predictors import PREDICTORS, Selection, SelectionContext
from taskmix.transfer.quality import evaluate, quality_table, save_outcomes, summarise, target_entry
from taskmix.transfer.report import transfer_blocks
from taskmix.transfer.spec import INTERMEDIATE, TARGET, TransferSpec, load_transfer, parse_transfer, saved_transfer

log = logging.getLogger(__name__)


def check_tasks(spec: TransferSpec, targets: list[TaskRef] | None = None) -> None:
    """Unknown task names and corpus targets fail before anything runs (custom tasks are checked by the run).

    `targets` replaces the file's targets (`taskmix select` asks about one target of its own).
    """
    custom = {t.get("name") for t in spec.experiment.get("custom_tasks", []) if isinstance(t, dict)}
    for label, ref in spec.candidates.items():
        if ref.name not in custom:
            try:
                labelled_task(INTERMEDIATE, ref)
            except ConfigError as exc:
                raise ConfigError(f"candidates.{label}: {exc}") from None
    for ref in spec.targets if targets is None else targets:
        if pretraining_name(ref.name):
            raise ConfigError(f"targets: '{ref.name}' is a pretraining task; a target must be a labelled task")
        if ref.name not in custom:
            labelled_task(TARGET, ref)


def study_dir_of(path: Path, spec: TransferSpec, output_dir: str | None) -> Path:
    if output_dir:
        return Path(output_dir)
    try:
        check_name(spec.name)
    except ValueError as exc:
        raise ConfigError(f"{path}: name: {exc}") from None
    return Path("runs") / spec.name


def prepare_transfer(path: Path, data_dir: Path | None, output_dir: str | None, progress: bool):
    """The transfer file checked and expanded: its spec, study directory and the study runner of its cells."""
    from taskmix.study.runner import StudyRunner

    spec = load_transfer(path)
    check_tasks(spec)
    study_dir = study_dir_of(path, spec, output_dir)
    return spec, study_dir, StudyRunner(spec.to_study(), study_dir, data_dir, path.resolve().parent, progress=progress)


def matrix_markdown(study_dir: Path) -> str:
    """The matrix's tables as Markdown, to print when a transfer run ends."""
    with ResultsStore(study_dir) as store:
        blocks = [b for b in transfer_blocks(store, study_dir) if not isinstance(b, Figure)]
    return to_markdown(blocks, FIGURE_DIR)


def open_matrix(target: Path) -> tuple[TransferSpec, Path, TransferMatrix | None]:
    """A transfer study from its directory or its transfer file (directory runs/<name>), with its measured
    matrix when cells have finished."""
    if target.is_dir():
        spec = saved_transfer(target)
        if spec is None:
            raise ConfigError(f"{target}: not a transfer study (no transfer.json); run `taskmix transfer FILE` first")
        study_dir = target
    else:
        spec = load_transfer(target)
        study_dir = study_dir_of(target, spec, None)
    matrix = None
    if (study_dir / STORE_FILE).is_file():
        with ResultsStore(study_dir) as store:
            matrix = transfer_matrix(store.results(selected_only=True), store.cells())
        matrix = matrix if matrix.gains else None
    return spec, study_dir, matrix


def _methods(value: str) -> list[str]:
    methods = [m for m in value.split(",") if m]
    unknown = [m for m in methods if m not in PREDICTORS]
    if unknown or not methods:
        raise ConfigError(f"--method: unknown method(s) {', '.join(unknown) or '(none)'}; "
                          f"choose from {', '.join(PREDICTORS)}")
    return methods


def select(target: str, candidates: str | None, methods: str, matrix_arg: str | None, encoder: str,
           data_dir: Path | None, examples: int, seed: int, progress: bool) -> str:
    """Rank candidates for one target with each method; the printed table of scores and seconds."""
    if matrix_arg:
        spec, study_dir, matrix = open_matrix(Path(matrix_arg))
        labels = [c for c in (candidates or "").split(",") if c] or list(spec.candidates)
        unknown = [c for c in labels if c not in spec.candidates]
        if unknown:
            raise ConfigError(f"--candidates: {', '.join(unknown)} not in the transfer study's candidates "
                              f"({', '.join(spec.candidates)})")
        spec = spec.model_copy(update={"candidates": {c: spec.candidates[c] for c in labels}})
        config_dir = Path(matrix_arg).resolve().parent if Path(matrix_arg).is_file() else Path.cwd()
    else:
        if not candidates:
            raise ConfigError("--candidates is required without --matrix")
        spec = parse_transfer({"name": "select", "candidates": {c: c for c in candidates.split(",") if c},
                               "targets": [target], "experiment": {"encoder": encoder}}, "taskmix select")
        study_dir, matrix, config_dir = None, None, Path.cwd()
    entry = target_entry(spec.targets, target)
    check_tasks(spec, [entry])
    selection = Selection(entry, dict(spec.candidates))
    ctx = SelectionContext(spec, data_dir, config_dir, study_dir, matrix, examples, seed, progress)
    results = {m: ctx.run(m, selection) for m in _methods(methods)}
    return selection_table(selection, results)


def selection_table(selection: Selection, results: dict[str, tuple[dict[str, float], float]]) -> str:
    """Scores with each method's rank in brackets, then the seconds each method took and its ranking."""
    header = ["candidate", *results]
    ranks = {m: {c: i + 1 for i, c in enumerate(sorted(s, key=lambda c: -s[c]))} for m, (s, _) in results.items()}
    rows = [[c, *(f"{results[m][0][c]:.4g} ({ranks[m][c]})" for m in results)] for c in selection.candidates]
    lines = [f"target: {selection.target_task}", "", to_markdown([Table(header, rows)], FIGURE_DIR).strip(), ""]
    for method, (scores, seconds) in results.items():
        order = " > ".join(sorted(scores, key=lambda c: -scores[c]))
        lines.append(f"{method}: {seconds:.1f} s; {order}")
    return "\n".join(lines)


def evaluate_study(study_arg: str, methods: str, data_dir: Path | None, examples: int, seed: int,
                   progress: bool) -> str:
    """Leave-one-target-out quality of each method against the study's matrix; saved and added to the report."""
    spec, study_dir, matrix = open_matrix(Path(study_arg))
    if matrix is None:
        raise ConfigError(f"{study_dir}: no finished transfer cells to evaluate against")
    config_dir = Path(study_arg).resolve().parent if Path(study_arg).is_file() else Path.cwd()
    ctx = SelectionContext(spec, data_dir, config_dir, study_dir, matrix, examples, seed, progress)
    outcomes = evaluate(ctx, matrix, _methods(methods))
    summaries = summarise(outcomes, matrix)
    save_outcomes(study_dir, outcomes, summaries, matrix)
    write_report(study_dir)
    header, rows = quality_table(summaries)
    noise = matrix.seed_noise()
    noise_text = "unknown (one seed)" if math.isnan(noise) else f"{noise:.1f} points (std of a gain across seeds)"
    return "\n".join([to_markdown([Table(header, rows)], FIGURE_DIR).strip(), "",
                      f"matrix: {len(matrix.candidates)} candidates × {len(matrix.targets)} targets, "
                      f"{matrix.seconds:.0f} s; seed noise {noise_text}",
                      f"report: {study_dir / 'report.md'}"])
