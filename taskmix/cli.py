"""The `taskmix` command: run experiments, list tasks, evaluate checkpoints."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from taskmix.errors import ConfigError, TaskmixError
from taskmix.interrupts import Interrupted, signals_raise_interrupted

if TYPE_CHECKING:
    from taskmix.experiment import ExperimentRunner

log = logging.getLogger("taskmix")


def setup_logging(log_file: Path | None = None, main_process: bool = True) -> None:
    """Concise console messages; a timestamped log file in the run directory.

    Under torchrun only rank 0 (`main_process`) logs progress and owns the log file; the
    other ranks report warnings and errors only.
    """
    root = logging.getLogger()
    root.setLevel(logging.INFO if main_process else logging.WARNING)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(console)
    if log_file is not None and main_process:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    for noisy in ("transformers", "datasets", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def data_dir_arg(value: str | None) -> Path | None:
    from taskmix.tasks import resolve_data_dir

    return resolve_data_dir(value)


def cmd_run(args: argparse.Namespace) -> int:
    """Run an experiment; under `torchrun` every rank trains and rank 0 writes the outputs."""
    from taskmix.training import distributed

    distributed.init()
    try:
        return run_experiment(args, distributed.is_main())
    finally:
        distributed.shutdown()


def run_experiment(args: argparse.Namespace, main_process: bool) -> int:
    """Validate every input first, then own the run directory (lock) for as long as the run writes to it."""
    from taskmix.config import load_experiment
    from taskmix.experiment import ExperimentRunner
    from taskmix.preflight import check_run_inputs
    from taskmix.runlock import claim_run_dir

    config_path = Path(args.experiment)
    cfg = load_experiment(config_path, args.set or [])
    run_dir = Path(args.output_dir) if args.output_dir else Path("runs") / cfg.name
    setup_logging(None, main_process)
    data_dir = data_dir_arg(args.data_dir)
    runner = ExperimentRunner(cfg, data_dir, run_dir, config_path.resolve().parent, progress=not args.no_progress)
    check_run_inputs(cfg, runner.rt, data_dir)
    if not main_process:  # under torchrun rank 0 alone owns and writes the run directory
        runner.run()
        return 0
    with claim_run_dir(run_dir):
        return write_run(runner, run_dir, data_dir)


def write_run(runner: "ExperimentRunner", run_dir: Path, data_dir: Path | None) -> int:
    """Train and write the run directory's config, log and results (rank 0, holding the directory)."""
    import yaml

    from taskmix.results_table import render
    from taskmix.rundir import write_json, write_text
    from taskmix.training import distributed

    cfg = runner.cfg
    setup_logging(run_dir / "log.txt")
    write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    log.info("experiment '%s' → %s (data: %s)", cfg.name, run_dir, data_dir or "Hugging Face hub")
    log.info("device %s, precision %s, %d process(es)", runner.rt.device, runner.rt.precision,
             distributed.world_size())
    result = runner.run()
    table = render(result.targets)
    write_json(run_dir / "results.json", {
        "experiment": cfg.name, "config_hash": cfg.fingerprint(), "seconds": result.seconds,
        "targets": [dict(asdict(t), restart_scores=t.restart_scores, summary=t.summary) for t in result.targets],
    })
    write_text(run_dir / "results.md", table)
    print(table)
    log.info("finished in %.0f s; outputs in %s", result.seconds, run_dir)
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from taskmix.tasks import all_tasks

    data_dir = data_dir_arg(args.data_dir)
    print("| task | kind | labels | metrics | splits (rows) |")
    print("|---|---|---|---|---|")
    for task in all_tasks():
        sizes = []
        for split, source in task.splits.items():
            if data_dir is None:
                sizes.append(split)
                continue
            path = data_dir / source.path
            sizes.append(f"{split} ({_count_rows(task, split, data_dir)})" if path.exists() else f"{split} (absent)")
        labels = ", ".join(task.labels) if task.labels else "—"
        print(f"| {task.name} | {task.kind.name} | {labels} | {', '.join(task.metrics)} | {'; '.join(sizes)} |")
    return 0


def _count_rows(task, split: str, data_dir: Path) -> int | str:
    from taskmix.tasks import load_split

    try:
        return len(load_split(task, split, data_dir))
    except TaskmixError as exc:
        return f"error: {exc}"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from taskmix.evaluate import evaluate_checkpoint

    setup_logging()
    tasks = [t for item in args.tasks for t in item.split(",") if t]
    print(evaluate_checkpoint(Path(args.checkpoint), tasks, data_dir_arg(args.data_dir),
                              Path(args.output_dir) if args.output_dir else None))
    return 0


def study_dir_of(target: str, output_dir: str | None = None) -> Path:
    """A study directory from an explicit path, or runs/<study name> for a study file."""
    if output_dir:
        return Path(output_dir)
    path = Path(target)
    if path.is_dir():
        return path
    from taskmix.config import check_name
    from taskmix.study.grid import load_study

    name = load_study(path).name
    try:
        check_name(name)
    except ValueError as exc:
        raise ConfigError(f"{path}: name: {exc}") from None
    return Path("runs") / name


def cmd_study_run(args: argparse.Namespace) -> int:
    from taskmix.runlock import claim_run_dir
    from taskmix.study.grid import load_study
    from taskmix.study.runner import StudyRunner
    from taskmix.training import distributed

    if distributed.launched_by_torchrun():
        raise TaskmixError("`taskmix study run` runs cells one after another in one process; under torchrun, "
                           "launch `taskmix run` on a cell's experiment instead")

    spec = load_study(Path(args.study))
    study_dir = study_dir_of(args.study, args.output_dir)
    setup_logging()
    runner = StudyRunner(spec, study_dir, data_dir_arg(args.data_dir), Path(args.study).resolve().parent,
                         progress=not args.no_progress)
    with claim_run_dir(study_dir, "study directory"):
        setup_logging(study_dir / "log.txt")
        summary = runner.run()
    from taskmix.study.report import pivot_markdown

    tables = pivot_markdown(study_dir)
    if tables:
        print(tables)
    log.info("study '%s' in %s: %s", spec.name, study_dir, ", ".join(f"{k} {v}" for k, v in summary.items()))
    return 1 if summary.get("failed") else 0


def cmd_study_status(args: argparse.Namespace) -> int:
    from taskmix.study.store import ResultsStore

    study_dir = study_dir_of(args.study)
    if not (study_dir / "results.sqlite").exists():
        raise TaskmixError(f"{study_dir}: no study results here (expected results.sqlite)")
    with ResultsStore(study_dir) as store:
        print("| cell | status | fields | error |")
        print("|---|---|---|---|")
        for cell in store.cells():
            error = (cell.get("error") or "").strip().splitlines()[-1:] or [""]
            print(f"| {cell['cell_id']} | {cell['status']} | {cell['fields']} | {error[0]} |")
        print()
        print(", ".join(f"{k}: {v}" for k, v in store.status_summary().items()))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from taskmix.study.report import write_report

    markdown, html = write_report(Path(args.study_dir), args.baseline)
    print(f"wrote {markdown} and {html}")
    return 0


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def cmd_transfer(args: argparse.Namespace) -> int:
    from taskmix.runlock import claim_run_dir
    from taskmix.study.report import write_report
    from taskmix.transfer.commands import matrix_markdown, prepare_transfer
    from taskmix.transfer.spec import save_transfer

    setup_logging()
    spec, study_dir, runner = prepare_transfer(Path(args.transfer), data_dir_arg(args.data_dir), args.output_dir,
                                               not args.no_progress)
    with claim_run_dir(study_dir, "study directory"):
        setup_logging(study_dir / "log.txt")
        save_transfer(study_dir, spec)
        summary = runner.run()
    write_report(study_dir)
    print(matrix_markdown(study_dir))
    log.info("transfer matrix in %s: %s; report %s", study_dir, ", ".join(f"{k} {v}" for k, v in summary.items()),
             study_dir / "report.md")
    return 1 if summary.get("failed") else 0


def cmd_select(args: argparse.Namespace) -> int:
    from taskmix.transfer import commands

    setup_logging()
    data_dir = data_dir_arg(args.data_dir)
    if args.evaluate:
        if args.target or args.candidates or args.matrix:
            raise ConfigError("--evaluate STUDY_DIR takes its targets and candidates from the study; "
                              "leave out --target, --candidates and --matrix")
        print(commands.evaluate_study(args.evaluate, args.method, data_dir, args.examples, args.seed,
                                      not args.no_progress))
        return 0
    if not args.target:
        raise ConfigError("--target is required (or --evaluate STUDY_DIR)")
    print(commands.select(args.target, args.candidates, args.method, args.matrix, args.encoder, data_dir,
                          args.examples, args.seed, not args.no_progress))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskmix", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an experiment file")
    run.add_argument("experiment", help="experiment YAML")
    run.add_argument("--data-dir", help="data directory (default: $TASKMIX_DATA, else the Hugging Face hub)")
    run.add_argument("--output-dir", help="run directory (default: runs/<experiment name>)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a config value, e.g. stages.target.max_epochs=1 (repeatable)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.set_defaults(func=cmd_run)

    tasks = sub.add_parser("tasks", help="list the registered tasks with their split sizes")
    tasks.add_argument("--data-dir")
    tasks.set_defaults(func=cmd_tasks)

    evaluate = sub.add_parser("evaluate", help="evaluate a saved checkpoint on dev splits (and AX)")
    evaluate.add_argument("checkpoint", help="checkpoint.pt written by `taskmix run`")
    evaluate.add_argument("--tasks", nargs="+", required=True, help="task names (comma or space separated)")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--output-dir", help="also write test-set submission files here")
    evaluate.set_defaults(func=cmd_evaluate)
    study = sub.add_parser("study", help="run a grid of experiments, or show its status")
    study_sub = study.add_subparsers(dest="study_command", required=True)
    study_run = study_sub.add_parser("run", help="run every unfinished cell of a study file")
    study_run.add_argument("study", help="study YAML")
    study_run.add_argument("--data-dir")
    study_run.add_argument("--output-dir", help="study directory (default: runs/<study name>)")
    study_run.add_argument("--no-progress", action="store_true")
    study_run.set_defaults(func=cmd_study_run)
    study_status = study_sub.add_parser("status", help="show which cells are done, running or failed")
    study_status.add_argument("study", help="study directory or study YAML")
    study_status.set_defaults(func=cmd_study_status)

    report = sub.add_parser("report", help="write the Markdown and HTML report of a study directory")
    report.add_argument("study_dir")
    report.add_argument("--baseline", help="row (pipeline) to compute deltas against, e.g. 'minilm'")
    report.set_defaults(func=cmd_report)

    transfer = sub.add_parser("transfer", help="train every candidate intermediate task before every target "
                                               "and write the transfer matrix")
    transfer.add_argument("transfer", help="transfer YAML (candidates, targets, seeds, stage settings)")
    transfer.add_argument("--data-dir")
    transfer.add_argument("--output-dir", help="study directory (default: runs/<name>)")
    transfer.add_argument("--no-progress", action="store_true")
    transfer.set_defaults(func=cmd_transfer)

    select = sub.add_parser("select", help="rank candidate intermediate tasks for a target without "
                                           "fine-tuning every pair, or evaluate the methods against a matrix")
    select.add_argument("--target", help="target task")
    select.add_argument("--candidates", help="comma-separated candidates (task names; with --matrix, the "
                                             "transfer file's labels, default all)")
    select.add_argument("--method", default="textemb",
                        help="comma-separated methods: textemb, logme, prior, size, random (default textemb)")
    select.add_argument("--matrix", metavar="STUDY",
                        help="transfer study directory (or its transfer YAML): candidates' settings, "
                             "intermediate encoders (logme) and measured gains (prior)")
    select.add_argument("--evaluate", metavar="STUDY_DIR",
                        help="score every method leave-one-target-out against this study's matrix")
    select.add_argument("--encoder", default="minilm", help="encoder without --matrix (default minilm)")
    select.add_argument("--examples", type=positive_int, default=1000, help="inputs read per task (default 1000)")
    select.add_argument("--seed", type=int, default=0, help="seed of the input sample and of `random`")
    select.add_argument("--data-dir")
    select.add_argument("--no-progress", action="store_true")
    select.set_defaults(func=cmd_select)
    return parser


def describe_os_error(exc: OSError) -> str:
    """`path: reason (ENAME)` for a failed file operation, e.g. a full disk or a read-only directory."""
    code = errno.errorcode.get(exc.errno or 0)
    reason = f"{exc.strerror} ({code})" if exc.strerror and code else str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def report(line: str) -> None:
    """Print the line that ends the command, and keep it in the run's log file when there is one."""
    print(line, file=sys.stderr)
    record = logging.LogRecord("taskmix", logging.ERROR, __file__, 0, line, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def main(argv: list[str] | None = None) -> int:
    """Run a command; bad input, I/O faults and SIGINT/SIGTERM each end in one line and a non-zero exit."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        with signals_raise_interrupted():
            return args.func(args)
    except TaskmixError as exc:
        report(f"taskmix: error: {exc}")
        return 2
    except OSError as exc:
        report(f"taskmix: error: {describe_os_error(exc)}")
        return 1
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        report(f"taskmix: interrupted by {signal.Signals(signum).name}; rerun the same command to resume")
        return 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


if __name__ == "__main__":
    raise SystemExit(main())
