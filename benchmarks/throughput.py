"""Training and evaluation throughput of taskmix against the Hugging Face Trainer and a bare loop.

One run measures, on the bundled MiniLM, batch 32, max length 128 and 2 threads:
taskmix's engine, the Trainer with run_glue defaults, the Trainer at its best and a bare
PyTorch loop (RTE and MRPC); STILTs SNLI→RTE end to end with `taskmix run` and with the
Trainer; a 5-task mixture against single tasks; the wall time of a one-step run with a
cold and a warm token cache; and the peak RSS of a 10-task mixture.  Each configuration
runs in its own process (clean peak RSS, no shared warm state) for the same number of
timed steps after one untimed warm-up step.  See BENCHMARKS.md for the method.

    python benchmarks/throughput.py --data-dir ../shared/data --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ChildRun, run_worker, setup_process  # noqa: E402

SCRIPT = Path(__file__).resolve()
TASKS = ["rte", "mrpc"]
MIXTURE_TASKS = ["rte", "mrpc", "sts-b", "cola", "sst-2"]
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"


def sizes(steps: int, rounds: int, quick: bool) -> dict[str, Any]:
    """Data sizes of each measurement; `--quick` shrinks everything to check the script runs."""
    if quick:
        return {"steps": steps, "rounds": rounds, "tasks": TASKS[:1], "eval_limit": 32, "single_steps": steps,
                "ten_steps": 2, "stilts": {"snli_train": 96, "snli_dev": 32, "rte_train": 64, "rte_epochs": 1}}
    return {"steps": steps, "rounds": rounds, "tasks": TASKS, "eval_limit": None, "single_steps": max(2, steps // 2),
            "ten_steps": 20, "stilts": {"snli_train": 2000, "snli_dev": 500, "rte_train": 1000, "rte_epochs": 2}}


def as_dict(child: ChildRun) -> dict[str, Any]:
    return {"result": child.result, "wall_seconds": child.wall_seconds, "peak_rss_mib": child.peak_rss_mib}


def measure(data_dir: Path, work: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """Every measurement, one child process each.

    The throughput configurations, the two STILTs pipelines and the start-up pair run in
    interleaved rounds, so that a slow spell of the machine does not fall on one contender;
    each one's rounds are then combined.
    """
    from pipelines import first_step_experiment, stilts_experiment, taskmix_run, ten_task_experiment

    common = {"data_dir": str(data_dir), "cache_dir": str(work / "tokens"), "out_dir": str(work / "trainer"),
              "steps": plan["steps"], "tasks": plan["tasks"], "eval_limit": plan["eval_limit"]}

    def worker(label: str, worker_kind: str, **extra: Any) -> dict[str, Any]:
        started = time.perf_counter()
        run = as_dict(run_worker(SCRIPT, worker_kind, {**common, **extra}, work))
        print(f"  {label}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        return run

    def cli(label: str, config: dict[str, Any], cache: str) -> dict[str, Any]:
        run = as_dict(taskmix_run(config, work / "cli", label, data_dir, work / cache))
        print(f"  {label}: {run['wall_seconds']:.0f} s", file=sys.stderr, flush=True)
        return run

    # Each contender is a callable of the round number; whole commands start from an empty token cache per round.
    throughput = {
        "taskmix": lambda r: worker(f"taskmix #{r}", "taskmix"),
        "trainer_defaults": lambda r: worker(f"trainer_defaults #{r}", "trainer", kind="defaults"),
        "trainer_best": lambda r: worker(f"trainer_best #{r}", "trainer", kind="best"),
        "bare": lambda r: worker(f"bare #{r}", "bare"),
    }
    commands = {
        "stilts_taskmix": lambda r: cli(f"stilts_taskmix-{r}", stilts_experiment(plan["stilts"]), f"tokens-stilts-{r}"),
        "stilts_trainer": lambda r: worker(f"stilts_trainer #{r}", "trainer_stilts",
                                           out_dir=str(work / f"trainer-stilts-{r}"), **plan["stilts"]),
        "first_cold": lambda r: cli(f"first_cold-{r}", first_step_experiment(), f"tokens-first-{r}"),
        "first_warm": lambda r: cli(f"first_warm-{r}", first_step_experiment(), f"tokens-first-{r}"),
    }
    res: dict[str, Any] = {key: pooled(runs, plan["tasks"]) for key, runs in interleaved(throughput, plan["rounds"]).items()}
    res.update({key: averaged(runs) for key, runs in interleaved(commands, plan["rounds"]).items()})
    res["mixture"] = worker("mixture", "mixture", tasks=MIXTURE_TASKS, single_steps=plan["single_steps"])
    res["ten_cold"] = cli("ten_cold", ten_task_experiment(plan["ten_steps"]), "tokens-ten")
    res["ten_warm"] = cli("ten_warm", ten_task_experiment(plan["ten_steps"]), "tokens-ten")
    return res


def interleaved(contenders: dict[str, Callable[[int], dict[str, Any]]], rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Every contender once per round, in turn, so a slow spell of the machine is shared out."""
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in contenders}
    for r in range(1, rounds + 1):
        for key, run in contenders.items():
            runs[key].append(run(r))
    return runs


def averaged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one whole command: mean wall time (and first-step time, where stamped), with each round's value."""
    out: dict[str, Any] = {"peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}
    timings = {"wall_seconds": [r["wall_seconds"] for r in runs],
               "first_step_seconds": [r["result"].get("first_step_seconds") for r in runs]}
    for key, values in timings.items():
        if None not in values:
            out.update({key: mean(values), f"each_{key}": values})
    return out


def pooled(runs: list[dict[str, Any]], tasks: list[str]) -> dict[str, Any]:
    """One configuration's rounds as one measurement: steps, seconds, examples and tokens summed."""
    result: dict[str, Any] = {"rounds": len(runs)}
    for task in tasks:
        parts = [run["result"][task] for run in runs]
        seconds = sum(p["train_seconds"] for p in parts)
        merged = {"steps": sum(p["steps"] for p in parts), "train_seconds": seconds,
                  "train_examples": sum(p["train_examples"] for p in parts),
                  "train_tok_s": sum(p["train_tok_s"] * p["train_seconds"] for p in parts) / seconds}
        merged["train_ex_s"] = merged["train_examples"] / seconds
        if "eval_seconds" in parts[0]:
            merged["eval_ex_s"] = sum(p["eval_examples"] for p in parts) / sum(p["eval_seconds"] for p in parts)
        result[task] = merged
    return {"result": result, "wall_seconds": sum(r["wall_seconds"] for r in runs),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}


def run_in_worker(kind: str, spec: dict[str, Any], result_path: Path) -> None:
    """Child side: run one configuration and write its JSON result."""
    setup_process()
    if kind == "taskmix":
        from engine_runs import single_task as fn
    elif kind == "mixture":
        from engine_runs import mixture as fn
    elif kind == "trainer":
        from hf_runs import throughput as fn
    elif kind == "trainer_stilts":
        from hf_runs import stilts as fn
    elif kind == "bare":
        from bare_loop import throughput as fn
    else:
        raise SystemExit(f"unknown worker kind {kind!r}")
    result_path.write_text(json.dumps(fn(spec), default=str))


def header(args: argparse.Namespace, seconds: float) -> str:
    import torch
    import transformers

    return (f"Measured with `{' '.join(['python', 'benchmarks/throughput.py'] + sys.argv[1:])}` "
            f"({'quick mode: sizes too small to mean anything' if args.quick else f'{args.steps} timed steps'}"
            f"{'' if args.quick else f' per configuration and round, {args.rounds} interleaved rounds'}; "
            f"torch {torch.__version__}, transformers {transformers.__version__}, {os.cpu_count()} CPUs; "
            f"whole benchmark {seconds / 60:.1f} min).")


def write_out(path: Path, markdown: str) -> None:
    """Replace the results block of an existing file (between the markers), or write the file."""
    block = f"{MARK_START}\n{markdown}{MARK_END}"
    if path.exists() and MARK_START in path.read_text():
        text = re.sub(re.escape(MARK_START) + ".*?" + re.escape(MARK_END), lambda _: block, path.read_text(),
                      flags=re.S)
        path.write_text(text)
    else:
        path.write_text(markdown)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=None, help="timed optimizer steps per configuration (default 50)")
    p.add_argument("--rounds", type=int, default=2,
                   help="runs of each throughput configuration, interleaved and pooled (default 2)")
    p.add_argument("--quick", action="store_true", help="RTE only, tiny sizes, 2 steps: checks the script, measures nothing")
    p.add_argument("--data-dir", default=os.environ.get("TASKMIX_DATA"), help="data directory (default $TASKMIX_DATA)")
    p.add_argument("--out", type=Path, help="write the Markdown results here (fills the results block if present)")
    p.add_argument("--work-dir", type=Path, help="where runs, logs and token caches go (default: a new temp dir)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 2 if args.quick else 50
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        run_in_worker(args.worker, json.loads(args.spec), args.result)
        return 0
    if not args.data_dir or not Path(args.data_dir).is_dir():
        raise SystemExit("give --data-dir (or set TASKMIX_DATA) to the directory holding glue/ and snli/")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="taskmix-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work directory (logs, runs, caches): {work}", file=sys.stderr)
    started = time.perf_counter()
    plan = sizes(args.steps, args.rounds, args.quick)
    res = measure(Path(args.data_dir).resolve(), work, plan)
    (work / "results.json").write_text(json.dumps(res, indent=1, default=str))
    from report import render

    markdown = render(res, plan["tasks"], header(args, time.perf_counter() - started))
    print(markdown)
    if args.out:
        write_out(args.out, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
