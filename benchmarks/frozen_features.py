"""Target-head training over a frozen MiniLM: cached encoder outputs against recomputing the encoder.

Both contenders are the real engine (`StageTrainer` on the experiment's own stage tasks
and sesame heads) with `frozen: true`; the baseline sets `cache_features: false`, so the
frozen encoder runs forward in every step (no backward: nothing in it is trainable), the
contender reads the states `taskmix.training.frozen_features` wrote once.  Each round runs
the baseline and then the contender in this process, from a cold feature cache, with the
same seed; the time of every optimizer step is stamped by a global post-step hook, and an
epoch's time is the stamps' span over its steps (the first epoch, which includes the
cached run's encoding, is reported apart).  Validation runs only after the last step, so
it falls outside the epochs; its dev score is printed to show both runs agree.

    TASKMIX_DATA=../shared/data python benchmarks/frozen_features.py
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import THREADS, StepClock, setup_process  # noqa: E402
from taskmix.config import parse_experiment  # noqa: E402
from taskmix.experiment import ExperimentRunner  # noqa: E402
from taskmix.tasks import resolve_data_dir  # noqa: E402
from taskmix.training.stage import StageTrainer  # noqa: E402


def stage(task: str, rows: int, epochs: int, cached: bool) -> dict:
    return {"name": "target", "tasks": [task], "frozen": True, "cache_features": cached, "head_model": "sesame",
            "max_epochs": epochs, "max_train_examples": rows, "max_dev_examples": 400, "batch_size": 32,
            "validate_every": 10**6, "optimizer": "amsgrad", "lr": 3e-4, "dropout": 0.2, "predict_test": False}


def run(task: str, rows: int, epochs: int, cached: bool, data_dir: Path, work: Path) -> dict:
    """One training run; returns the seconds of each epoch, the whole stage and the dev score."""
    cfg = parse_experiment({"encoder": "minilm", "threads": THREADS, "tensorboard": False,
                            "cache_dir": str(work / "cache"), "stages": [stage(task, rows, epochs, cached)]})
    exp = ExperimentRunner(cfg, data_dir, work / ("cached" if cached else "uncached"), work, progress=False)
    st = cfg.stages[0]
    tasks = exp.assembly.stage_tasks(st.tasks, st, np.random.default_rng(0))
    model = exp.assembly.fresh_model(None)
    torch.manual_seed(0)
    exp.assembly.add_heads(model, st.tasks, {}, st)
    trainer = StageTrainer(model, st, tasks, device=exp.rt.device, precision=exp.rt.precision, seed=0,
                           pad_id=exp.rt.pad_id, eval_batch_size=exp.rt.eval_batch_size, progress=False,
                           feature_cache=exp.rt.feature_cache)
    clock = StepClock()
    started = time.perf_counter()
    outcome = trainer.train()
    total = time.perf_counter() - started
    clock.close()
    per_epoch = math.ceil(outcome.steps / epochs)
    stamps = [started] + clock.times
    epochs_s = [stamps[min(len(stamps) - 1, (e + 1) * per_epoch)] - stamps[e * per_epoch] for e in range(epochs)]
    return {"epochs": epochs_s, "total": total, "score": outcome.best.score, "steps": outcome.steps,
            "precision": exp.rt.precision}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--task", default="mrpc")
    parser.add_argument("--rows", type=int, default=1000, help="training rows (max_train_examples)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    setup_process()
    data_dir = resolve_data_dir(str(args.data_dir) if args.data_dir else None)
    results: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(args.rounds):
        for cached in (False, True):
            with tempfile.TemporaryDirectory() as work:  # a cold feature cache every round
                results[cached].append(run(args.task, args.rows, args.epochs, cached, data_dir, Path(work)))
    print(f"task {args.task}, {args.rows} training rows, {args.epochs} epochs, batch 32, {THREADS} threads, "
          f"precision {results[True][0]['precision']}, {args.rounds} round(s); "
          f"{results[True][0]['steps']} steps per run\n")
    print("| run | first epoch (s) | later epochs, mean (s) | whole stage (s) | dev score |")
    print("|---|---:|---:|---:|---:|")
    later = {}
    for cached, label in ((False, "recompute the encoder every step"), (True, "cached frozen features")):
        runs = results[cached]
        later[cached] = mean(s for r in runs for s in r["epochs"][1:])
        first = mean(r["epochs"][0] for r in runs)
        scores = ", ".join(f"{100 * r['score']:.2f}" for r in runs)
        print(f"| {label} | {first:.2f} | {later[cached]:.3f} | {mean(r['total'] for r in runs):.2f} | {scores} |")
    print(f"\nlater epochs, recomputed ÷ cached: {later[False] / later[True]:.1f}× (goal ≥ 10×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
