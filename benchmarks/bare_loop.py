"""The compute limit: a plain PyTorch loop with nothing but the work itself.

Training: pre-tokenised rows, length-grouped batches padded to a multiple of 8, bf16
autocast, gradient clipping (part of the recipe every contender runs) and fused AdamW.
Evaluation: pre-tokenised dev rows in length-sorted batches padded before timing, bf16
autocast under `inference_mode`, argmax of the logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from common import (BATCH_SIZE, EVAL_BATCH_SIZE, MAX_LENGTH, BatchLog, StepClock, labelled, load_examples, model_path,
                    timed, train_result)

GROUP_SPAN = 50  # batches per length-sorted pool


def tokenize(tokenizer, examples: list) -> tuple[list[list[int]], list[list[int]], np.ndarray]:
    """Input ids, token types and labels of the labelled rows, unpadded."""
    rows = labelled(examples)
    second = [e.text_b for e in rows] if rows and rows[0].text_b is not None else None
    enc = tokenizer([e.text_a for e in rows], second, truncation=True, max_length=MAX_LENGTH)
    return enc["input_ids"], enc["token_type_ids"], np.array([int(e.label) for e in rows])


def grouped_order(lengths: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, sort pools of GROUP_SPAN batches by length, cut into batches, shuffle the batches."""
    order = rng.permutation(len(lengths))
    span = BATCH_SIZE * GROUP_SPAN
    batches = []
    for begin in range(0, len(order), span):
        pool = order[begin : begin + span]
        pool = pool[np.argsort(-lengths[pool], kind="stable")]
        batches += [pool[i : i + BATCH_SIZE] for i in range(0, len(pool), BATCH_SIZE)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad(ids: list, types: list, labels: np.ndarray, batch: np.ndarray) -> dict[str, torch.Tensor]:
    """One batch of rows as tensors padded to a multiple of 8."""
    width = -(-max(len(ids[i]) for i in batch) // 8) * 8
    input_ids = torch.zeros(len(batch), width, dtype=torch.long)
    token_types = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    for row, i in enumerate(batch):
        n = len(ids[i])
        input_ids[row, :n] = torch.tensor(ids[i])
        token_types[row, :n] = torch.tensor(types[i])
        mask[row, :n] = 1
    return {"input_ids": input_ids, "token_type_ids": token_types, "attention_mask": mask,
            "labels": torch.from_numpy(labels[batch])}


def padded_batches(ids: list, types: list, labels: np.ndarray, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Padded tensors, epoch after epoch."""
    lengths = np.array([len(x) for x in ids])
    rng = np.random.default_rng(seed)
    while True:
        for batch in grouped_order(lengths, rng):
            yield pad(ids, types, labels, batch)


def sorted_padded_batches(ids: list, types: list, labels: np.ndarray) -> list[dict[str, torch.Tensor]]:
    """Every dev row once, longest first, in inference batches."""
    order = np.argsort(-np.array([len(x) for x in ids]), kind="stable")
    return [pad(ids, types, labels, order[i : i + EVAL_BATCH_SIZE]) for i in range(0, len(order), EVAL_BATCH_SIZE)]


@torch.inference_mode()
def predict(model, batches: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    model.eval()
    out = []
    for batch in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                           attention_mask=batch["attention_mask"]).logits
        out.append(logits.float().argmax(-1))
    return out


def train(model, batches: Iterator[dict[str, torch.Tensor]], steps: int, log: BatchLog) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, fused=True)
    model.train()
    for _ in range(steps):
        batch = next(batches)
        log.add(*batch["input_ids"].shape)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def throughput(spec: dict[str, Any]) -> dict[str, Any]:
    """Training and evaluation ex/s of the bare loop per task; tokenising and padding happen before timing."""
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    results: dict[str, Any] = {}
    for name in spec["tasks"]:
        ids, types, labels = tokenize(tokenizer, load_examples(name, "train", Path(spec["data_dir"])))
        model = AutoModelForSequenceClassification.from_pretrained(model_path(), num_labels=2)
        stream = padded_batches(ids, types, labels, seed=1)
        ready = iter([next(stream) for _ in range(spec["steps"] + 1)])  # padded before timing
        log = BatchLog()
        clock = StepClock()
        try:
            train(model, ready, spec["steps"] + 1, log)
        finally:
            clock.close()
        dev_ids, dev_types, dev_labels = tokenize(tokenizer, load_examples(name, "dev", Path(spec["data_dir"])))
        limit = spec.get("eval_limit") or len(dev_ids)
        batches = sorted_padded_batches(dev_ids[:limit], dev_types[:limit], dev_labels[:limit])
        _, seconds = timed(predict, model, batches)
        rows = min(limit, len(dev_ids))
        results[name] = {**train_result(clock, log), "eval_examples": rows, "eval_seconds": seconds,
                         "eval_ex_s": rows / seconds}
    return results
