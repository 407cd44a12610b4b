"""Decoder training: the engine against a plain PyTorch seq2seq loop with the same model and rows.

Contender: the real engine (`StageTrainer` on the experiment's own stage task) training
`multi30k-en-de`, MiniLM encoder plus the `seq2seq` LSTM decoder head.  Baseline: a plain
loop training the same model (the MiniLM module HFEncoder wraps, a `Seq2seqHead` built
from the same seed) on the same training rows, tokenised before timing (sources with the
encoder's tokenizer, targets with the task's output vocabulary), in batches grouped on
source then target length and padded to a multiple of 8 before timing; teacher-forced
cross-entropy, the engine's precision (bf16 autocast where native), gradient clipping and
fused AdamW with the stage's parameter groups and linear warm-up/decay (imported from the
engine, so both optimise exactly the same thing).  Both draw the same batches and the
same dropout masks from the same seeds, so their per-step losses agree.

The two run in lockstep: after every optimizer step of the engine (a global post-step
hook) the plain loop makes one step, with its own random state swapped in.  An engine
step is timed from the end of the previous plain step to the end of its own optimizer
step (so the engine's batch collation and bookkeeping count), a plain step from its
gradient reset to the end of its scheduler step.  On a shared machine whose speed drifts
by the minute, interleaving single steps puts both under the same conditions; whole runs
one after the other do not (see BENCHMARKS.md).  The plain loop resets its gradients at
the start of a step, as the engine does, so each step starts with the other model's
gradients held; resetting at the end made whichever model stepped second about 5% slower.
`--self-check` runs the plain loop against a copy of itself in the engine's place, which
measures what is left of such a bias.  Each round is a fresh pair of models; the first
step pair is a warm-up, and before the first round every batch shape is run forward and
backward once (oneDNN builds kernels per shape, and whichever model met a shape first
would pay for it).  Throughput is target tokens trained (non-padding, [EOS] included)
per second of step time.  The engine's one validation (4 dev rows, after the last step)
falls outside every step.

    TASKMIX_DATA=../shared/data python benchmarks/decoder_loop.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, median

import numpy as np
import torch
from torch.nn import functional as F
from torch.optim.optimizer import register_optimizer_step_post_hook

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare_loop import grouped_order  # noqa: E402
from common import BATCH_SIZE, THREADS, WARMUP_STEPS, load_examples, model_path, setup_process  # noqa: E402
from taskmix.config import parse_experiment  # noqa: E402
from taskmix.experiment import ExperimentRunner  # noqa: E402
from taskmix.kinds.output_vocab import BOS_ID, EOS_ID, PAD_ID  # noqa: E402
from taskmix.models.encoder import EncoderOutput  # noqa: E402
from taskmix.models.heads import IGNORE, build_head  # noqa: E402
from taskmix.tasks import resolve_data_dir  # noqa: E402
from taskmix.training.stage import StageTrainer, linear_warmup_decay, parameter_groups  # noqa: E402
from taskmix.training.stage_task import LabelledStageTask  # noqa: E402

TASK = "multi30k-en-de"
SEED = 1  # the stage seed: batch order and dropout
HEAD_SEED = 0  # the decoder head's initial weights
LR = 3e-4
WARMUP = 0.1


@dataclass
class Run:
    """Per-step losses, target tokens and seconds of one contender in one round."""

    losses: list[float]
    tokens: list[int]
    seconds: list[float]

    @property
    def timed_tokens(self) -> int:
        return sum(self.tokens[WARMUP_STEPS:])

    @property
    def timed_seconds(self) -> float:
        return sum(self.seconds[WARMUP_STEPS:])

    @property
    def tok_s(self) -> float:
        return self.timed_tokens / self.timed_seconds


# -- the plain loop --------------------------------------------------------------------------
@dataclass
class Rows:
    """Pre-tokenised training rows: encoder ids of the sources, output-vocabulary ids of the targets."""

    sources: list[list[int]]
    targets: list[list[int]]
    pad_id: int

    def lengths(self) -> np.ndarray:
        """Grouping key: source length, ties broken by target length."""
        src = np.array([len(s) for s in self.sources])
        tgt = np.array([len(t) for t in self.targets])
        return src * (int(tgt.max()) + 2) + tgt


def pad_batch(rows: Rows, batch: np.ndarray) -> dict[str, torch.Tensor]:
    """Sources padded to a multiple of 8; decoder input [BOS] y and labels y [EOS], padded likewise."""
    src_width = -(-max(len(rows.sources[i]) for i in batch) // 8) * 8
    tgt_width = -(-max(len(rows.targets[i]) + 1 for i in batch) // 8) * 8
    input_ids = torch.full((len(batch), src_width), rows.pad_id, dtype=torch.long)
    mask = torch.zeros(len(batch), src_width, dtype=torch.long)
    decoder_input = torch.full((len(batch), tgt_width), PAD_ID, dtype=torch.long)
    labels = torch.full((len(batch), tgt_width), IGNORE, dtype=torch.long)
    for row, i in enumerate(batch):
        src, tgt = torch.tensor(rows.sources[i]), torch.tensor(rows.targets[i], dtype=torch.long)
        input_ids[row, :len(src)], mask[row, :len(src)] = src, 1
        decoder_input[row, 0], decoder_input[row, 1:len(tgt) + 1] = BOS_ID, tgt
        labels[row, :len(tgt)], labels[row, len(tgt)] = tgt, EOS_ID
    return {"input_ids": input_ids, "attention_mask": mask, "decoder_input": decoder_input, "labels": labels}


def plain_batches(rows: Rows, count: int) -> list[dict[str, torch.Tensor]]:
    """`count` padded batches, pass after pass, each pass length-grouped and shuffled."""
    lengths, rng, out = rows.lengths(), np.random.default_rng(SEED), []
    while len(out) < count:
        out += [pad_batch(rows, b) for b in grouped_order(lengths, rng)]
    return out[:count]


def plain_model(exp: ExperimentRunner) -> torch.nn.ModuleDict:
    """The pretrained MiniLM module and a fresh decoder head drawn from the engine's head seed."""
    from transformers import AutoModel

    st = exp.cfg.stages[0]
    encoder = AutoModel.from_pretrained(model_path(), local_files_only=True)
    torch.manual_seed(HEAD_SEED)
    head = build_head("seq2seq", encoder.config.hidden_size, exp.assembly.head_spec(st.tasks[0])[2], st.dropout)
    return torch.nn.ModuleDict({"encoder": encoder, "head": head}).train()


def autocast_for(exp: ExperimentRunner):
    return torch.autocast("cpu", dtype=torch.bfloat16) if exp.rt.precision == "bf16" else contextlib.nullcontext()


def plain_loss(model: torch.nn.ModuleDict, batch: dict[str, torch.Tensor], cast) -> torch.Tensor:
    """Teacher-forced cross-entropy per target token of one batch."""
    with cast:
        hidden = model["encoder"](input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        logits = model["head"](EncoderOutput(hidden, hidden[:, 0], batch["attention_mask"]), batch)
        return F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE)


class PlainLoop:
    """The plain loop, one step per call, with its own random state for dropout."""

    def __init__(self, exp: ExperimentRunner, rows: Rows, steps: int):
        st = exp.cfg.stages[0]
        self.model = plain_model(exp)
        self.batches = plain_batches(rows, steps)
        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, st.weight_decay), lr=st.lr,
                                           weight_decay=st.weight_decay, fused=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, linear_warmup_decay(steps, st.warmup))
        self.cast = autocast_for(exp)
        self.max_grad_norm = st.max_grad_norm
        self.rng = torch.Generator().manual_seed(SEED).get_state()
        self.losses: list[float] = []

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = plain_loss(self.model, self.batches[len(self.losses)], self.cast)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.losses.append(float(loss.detach()))

    def tokens(self) -> list[int]:
        return [int((b["labels"] != IGNORE).sum()) for b in self.batches[:len(self.losses)]]


def plain_rows(exp: ExperimentRunner, data_dir: Path) -> Rows:
    """The rows the engine trains on, tokenised here; checked against the engine's own features."""
    split = engine_tasks(exp)[0].train
    examples = {e.uid: e for e in load_examples(TASK, "train", data_dir)}
    chosen = [examples[uid] for uid in split.uids]
    max_length = exp.cfg.max_length
    tokenizer = exp.rt.tokenizer
    sources = tokenizer([e.source for e in chosen], truncation=True, max_length=max_length)["input_ids"]
    vocabulary = chosen[0].side.vocabulary.load()
    encoded = vocabulary.encode_batch([e.target for e in chosen], add_special_tokens=False)
    targets = [t.ids[:max_length - 1] for t in encoded]  # room for [EOS]
    for i, (src, tgt) in enumerate(zip(sources, targets)):
        engine_tgt = split.target_ids[split.target_offsets[i]:split.target_offsets[i + 1]]
        if list(split.source.input_ids(i)) != src or list(engine_tgt) != tgt:
            raise RuntimeError(f"row {split.uids[i]}: the plain loop's tokens differ from the engine's")
    return Rows(sources, targets, tokenizer.pad_token_id)


def warm_shapes(exp: ExperimentRunner, rows: Rows, steps: int) -> int:
    """Forward and backward once per distinct batch shape of a round, untimed; returns the shape count."""
    model, cast, seen = plain_model(exp), autocast_for(exp), set()
    for batch in plain_batches(rows, steps):
        shape = (*batch["input_ids"].shape, batch["decoder_input"].shape[1])
        if shape not in seen:
            seen.add(shape)
            plain_loss(model, batch, cast).backward()
    return len(seen)


# -- the engine, with the plain loop in lockstep ---------------------------------------------
@dataclass
class CountedStageTask(LabelledStageTask):
    """The stage task, also counting each training batch's target tokens (labels that are not IGNORE)."""

    tokens: list[int] = field(default_factory=list)

    def to_batch(self, key: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        batch = super().to_batch(key, pad_id)
        self.tokens.append(int((batch["labels"] != IGNORE).sum()))
        return batch


class LossTracker:
    """A tracker keeping the per-step training loss the engine reports."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if "train/loss" in values:
            self.losses.append(float(values["train/loss"]))

    def close(self) -> None:
        pass


class Lockstep:
    """After each engine optimizer step, one plain step; the seconds of both, timed apart."""

    def __init__(self, plain: PlainLoop):
        self.plain = plain
        self.engine_s: list[float] = []
        self.plain_s: list[float] = []
        self.resumed = time.perf_counter()
        self._handle = register_optimizer_step_post_hook(self._after_step)

    def _after_step(self, optimizer, args, kwargs) -> None:
        if optimizer is self.plain.optimizer:
            return
        self.engine_s.append(time.perf_counter() - self.resumed)
        engine_rng = torch.get_rng_state()
        torch.set_rng_state(self.plain.rng)
        started = time.perf_counter()
        self.plain.step()
        self.plain_s.append(time.perf_counter() - started)
        self.plain.rng = torch.get_rng_state()
        torch.set_rng_state(engine_rng)
        self.resumed = time.perf_counter()

    def close(self) -> None:
        self._handle.remove()


def experiment(rows: int, steps: int, max_length: int, threads: int, work: Path, data_dir: Path) -> ExperimentRunner:
    stage = {"name": "translate", "tasks": [TASK], "max_steps": steps, "max_train_examples": rows,
             "max_dev_examples": 4, "batch_size": BATCH_SIZE, "lr": LR, "warmup": WARMUP,
             "validate_every": 10**6, "predict_test": False}
    cfg = parse_experiment({"encoder": "minilm", "threads": threads, "tensorboard": False, "max_length": max_length,
                            "seed": SEED, "cache_dir": str(work / "cache"), "stages": [stage]})
    return ExperimentRunner(cfg, data_dir, work / "run", work, progress=False)


def engine_tasks(exp: ExperimentRunner) -> list[CountedStageTask]:
    st = exp.cfg.stages[0]
    return [CountedStageTask(task=t.task, head=t.head, train=t.train, dev=t.dev)
            for t in exp.assembly.stage_tasks(st.tasks, st, np.random.default_rng(0))]


def round_pair(exp: ExperimentRunner, rows: Rows) -> tuple[Run, Run]:
    """One round: the engine's stage with the plain loop stepping in lockstep; (plain, engine)."""
    st = exp.cfg.stages[0]
    plain = PlainLoop(exp, rows, st.max_steps)
    tasks = engine_tasks(exp)
    model = exp.assembly.fresh_model(None)
    torch.manual_seed(HEAD_SEED)
    exp.assembly.add_heads(model, st.tasks, {}, st)
    tracker = LossTracker()
    trainer = StageTrainer(model, st, tasks, device=exp.rt.device, precision=exp.rt.precision, seed=exp.cfg.seed,
                           pad_id=exp.rt.pad_id, eval_batch_size=exp.rt.eval_batch_size, progress=False,
                           tracker=tracker)
    lockstep = Lockstep(plain)
    try:
        trainer.train()
    finally:
        lockstep.close()
    return Run(plain.losses, plain.tokens(), lockstep.plain_s), Run(tracker.losses, tasks[0].tokens, lockstep.engine_s)


def self_check_pair(exp: ExperimentRunner, rows: Rows) -> tuple[Run, Run]:
    """The plain loop against a copy of itself, the copy in the engine's place: the method's own bias."""
    total = exp.cfg.stages[0].max_steps
    driver, follower = PlainLoop(exp, rows, total), PlainLoop(exp, rows, total)
    lockstep = Lockstep(follower)
    torch.set_rng_state(driver.rng)
    try:
        for _ in range(total):
            driver.step()
    finally:
        lockstep.close()
    return (Run(follower.losses, follower.tokens(), lockstep.plain_s),
            Run(driver.losses, driver.tokens(), lockstep.engine_s))


# -- the report ------------------------------------------------------------------------------
def loss_text(run: Run) -> str:
    return f"{run.losses[0]:.3f} → {mean(run.losses[-5:]):.3f}"


def report(rounds: list[tuple[Run, Run]], names: tuple[str, str]) -> None:
    """The table (tok/s per round and pooled, the ratio, losses) and every timed step's seconds."""
    base, contender = names
    print(f"| round | {base} tok/s | {contender} tok/s | {contender} ÷ {base} | median per-step ratio "
          f"| loss {base} (first → mean of last 5) | loss {contender} |")
    print("|---|---:|---:|---:|---:|---|---|")
    step_ratios = []
    for r, (plain, other) in enumerate(rounds, 1):
        if plain.tokens != other.tokens:
            raise RuntimeError(f"round {r}: the two loops trained different batches")
        ratios = [p / e for p, e in zip(plain.seconds[WARMUP_STEPS:], other.seconds[WARMUP_STEPS:])]
        step_ratios += ratios
        print(f"| {r} | {plain.tok_s:,.0f} | {other.tok_s:,.0f} | {other.tok_s / plain.tok_s:.2f}× | "
              f"{median(ratios):.2f}× | {loss_text(plain)} | {loss_text(other)} |")
    pooled = [sum(run.timed_tokens for run in side) / sum(run.timed_seconds for run in side) for side in zip(*rounds)]
    print(f"| pooled | {pooled[0]:,.0f} | {pooled[1]:,.0f} | **{pooled[1] / pooled[0]:.2f}×** | "
          f"{median(step_ratios):.2f}× | | |")
    gap = max(abs(a - b) for plain, other in rounds for a, b in zip(plain.losses, other.losses))
    print(f"\ntarget tokens per round: {rounds[0][0].timed_tokens:,} timed (same batches in both); "
          f"largest per-step loss difference {gap:.2g}")
    print(f"{contender} ÷ {base}, pooled: {pooled[1] / pooled[0]:.2f}×\n\nseconds of each timed step:")
    for r, pair in enumerate(rounds, 1):
        for name, run in zip(names, pair):
            print(f"  round {r} {name}: " + " ".join(f"{s:.2f}" for s in run.seconds[WARMUP_STEPS:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--rows", type=int, default=400, help="training rows (max_train_examples)")
    parser.add_argument("--steps", type=int, default=10, help="timed step pairs per round (after one warm-up pair)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--self-check", action="store_true",
                        help="the plain loop against a copy of itself in the engine's place (the method's own bias)")
    args = parser.parse_args(argv)
    setup_process()
    data_dir = resolve_data_dir(str(args.data_dir) if args.data_dir else None)
    load = [os.getloadavg()[0]]
    started = time.perf_counter()
    total = args.steps + WARMUP_STEPS
    pair = self_check_pair if args.self_check else round_pair
    with tempfile.TemporaryDirectory() as work:
        exp = experiment(args.rows, total, args.max_length, args.threads, Path(work), data_dir)
        rows = plain_rows(exp, data_dir)  # also featurises the task once, before any timing
        shapes = warm_shapes(exp, rows, total)
        rounds = []
        for _ in range(args.rounds):
            rounds.append(pair(exp, rows))
            load.append(os.getloadavg()[0])
    print(f"task {TASK}, {args.rows} training rows, max length {args.max_length}, batch {BATCH_SIZE}, "
          f"{args.threads} threads, precision {exp.rt.precision}, lr {LR}; {args.rounds} rounds of {args.steps} "
          f"timed step pairs after {WARMUP_STEPS} warm-up pair; {shapes} batch shapes warmed up first; "
          f"1-min load average {min(load):.1f}–{max(load):.1f}; whole run {time.perf_counter() - started:.0f} s\n")
    report(rounds, ("plain loop", "plain loop copy") if args.self_check else ("plain loop", "engine"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
