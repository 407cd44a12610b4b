"""The Hugging Face `Trainer` baselines, written against its public API.

`defaults` is the run_glue setup: every example padded to 128 tokens, fp32, default
`TrainingArguments`.  `best` is the Trainer with every speed option a user can switch on
for this job on CPU: dynamic padding, length-grouped sampling, bf16 autocast, fused AdamW
and large evaluation batches.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments, default_data_collator)

from common import (BATCH_SIZE, EVAL_BATCH_SIZE, MAX_LENGTH, BatchLog, StepClock, labelled, load_examples,
                    model_path, timed, train_result)


class EncodedDataset(torch.utils.data.Dataset):
    """Tokenised rows as the dicts a Trainer collator expects."""

    def __init__(self, encoded: dict[str, list], labels: list):
        self.encoded = encoded
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{k: v[i] for k, v in self.encoded.items()}, "labels": self.labels[i]}


def encode(tokenizer, examples: list, pad_to_max: bool) -> EncodedDataset:
    """Batch-tokenise pairs (or single sentences) the way run_glue does."""
    rows = labelled(examples)
    second = [e.text_b for e in rows] if rows and rows[0].text_b is not None else None
    encoded = tokenizer([e.text_a for e in rows], second, truncation=True, max_length=MAX_LENGTH,
                        padding="max_length" if pad_to_max else False)
    return EncodedDataset(dict(encoded), [int(e.label) for e in rows])


class LoggingCollator:
    """Wraps a collator to log each batch's rows and padded width."""

    def __init__(self, collator, log: BatchLog):
        self.collator = collator
        self.log = log

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.collator(features)
        self.log.add(int(batch["input_ids"].shape[0]), int(batch["input_ids"].shape[1]))
        return batch


def training_args(kind: str, out_dir: Path, **overrides: Any) -> TrainingArguments:
    """Default arguments (plus batch size) or the fastest options the Trainer offers here."""
    base: dict[str, Any] = {"output_dir": str(out_dir), "per_device_train_batch_size": BATCH_SIZE,
                            "disable_tqdm": True, "report_to": "none", "save_strategy": "no"}
    if kind == "best":
        base.update(bf16=True, use_cpu=True, train_sampling_strategy="group_by_length", optim="adamw_torch_fused",
                    per_device_eval_batch_size=EVAL_BATCH_SIZE)
    return TrainingArguments(**{**base, **overrides})


def collator(kind: str, tokenizer):
    if kind == "best":
        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)
    return default_data_collator


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def throughput(spec: dict[str, Any]) -> dict[str, Any]:
    """Trainer training ex/s over `steps` timed steps and `evaluate()` ex/s, per task."""
    kind = spec["kind"]
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    results: dict[str, Any] = {"optim": None}
    for name in spec["tasks"]:
        train = encode(tokenizer, load_examples(name, "train", Path(spec["data_dir"])), kind == "defaults")
        dev = encode(tokenizer, load_examples(name, "dev", Path(spec["data_dir"])), kind == "defaults")
        if spec.get("eval_limit"):
            dev = EncodedDataset({k: v[: spec["eval_limit"]] for k, v in dev.encoded.items()},
                                 dev.labels[: spec["eval_limit"]])
        model = AutoModelForSequenceClassification.from_pretrained(model_path(), num_labels=2)
        log = BatchLog()
        args = training_args(kind, Path(spec["out_dir"]) / f"{kind}-{name}", max_steps=spec["steps"] + 1)
        results["optim"] = str(args.optim)
        trainer = Trainer(model=model, args=args, data_collator=LoggingCollator(collator(kind, tokenizer), log),
                          train_dataset=train, eval_dataset=dev, processing_class=tokenizer)
        clock = StepClock()
        try:
            trainer.train()
        finally:
            clock.close()
        _, seconds = timed(trainer.evaluate)
        results[name] = {**train_result(clock, log), "eval_examples": len(dev), "eval_seconds": seconds,
                         "eval_ex_s": len(dev) / seconds}
    return results


def stage_args(out_dir: Path, epochs: float, lr: float) -> TrainingArguments:
    """The best-case Trainer with per-epoch evaluation and checkpoints, keeping the best model."""
    return training_args("best", out_dir, num_train_epochs=epochs, eval_strategy="epoch", save_strategy="epoch",
                         load_best_model_at_end=True, metric_for_best_model="accuracy", learning_rate=lr, warmup_steps=0.1)


def train_stage(model, tokenizer, train: EncodedDataset, dev: EncodedDataset, out_dir: Path, epochs: float,
                lr: float) -> Trainer:
    """Train with evaluation and a checkpoint every epoch, then save the best model."""
    trainer = Trainer(model=model, args=stage_args(out_dir, epochs, lr), data_collator=collator("best", tokenizer),
                      train_dataset=train, eval_dataset=dev, processing_class=tokenizer, compute_metrics=accuracy)
    trainer.train()
    trainer.save_model(str(out_dir / "final"))
    return trainer


def sample(examples: list, size: int, seed: int) -> list:
    rows = labelled(examples)
    if len(rows) <= size:
        return rows
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=size, replace=False))
    return [rows[i] for i in keep]


def stilts(spec: dict[str, Any]) -> dict[str, Any]:
    """SNLI → RTE with the best-case Trainer, from raw rows to the saved final model."""
    data_dir, out_dir = Path(spec["data_dir"]), Path(spec["out_dir"])
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    snli_train = sample(load_examples("snli", "dev", data_dir) + load_examples("snli", "test", data_dir),
                        spec["snli_train"], 1)
    snli_dev = sample(load_examples("snli", "train_0.01", data_dir), spec["snli_dev"], 0)
    model = AutoModelForSequenceClassification.from_pretrained(model_path(), num_labels=3)
    train_stage(model, tokenizer, encode(tokenizer, snli_train, False), encode(tokenizer, snli_dev, False),
                out_dir / "snli", 1, 5e-5)
    rte_train = sample(load_examples("rte", "train", data_dir), spec["rte_train"], 1)
    rte_dev = load_examples("rte", "dev", data_dir)
    model = AutoModelForSequenceClassification.from_pretrained(str(out_dir / "snli" / "final"), num_labels=2,
                                                               ignore_mismatched_sizes=True)
    trainer = train_stage(model, tokenizer, encode(tokenizer, rte_train, False), encode(tokenizer, rte_dev, False),
                          out_dir / "rte", spec["rte_epochs"], 1e-4)
    return {"seconds_in_process": time.perf_counter() - started, "rte_dev": trainer.evaluate()}
