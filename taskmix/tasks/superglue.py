"""SNLI and the SuperGLUE sentence-pair classification tasks (RTE, CB, BoolQ).

WiC and WSC are span-pair tasks (`span_pairs.py`).

All are JSONL files with one object per line.  SuperGLUE keeps its official file names
(`train.jsonl`, `val.jsonl`, `test.jsonl`), read as our splits train/dev/test; its test
splits are unlabelled and carry the official submission file name.  SNLI's test set is
labelled and used for evaluation; pairs without a gold label ("-") are skipped.
"""

from __future__ import annotations

from typing import Mapping

from taskmix.kinds.classification import CLASSIFICATION
from taskmix.tasks.base import NLI2, SUPERGLUE, HubSource, SplitSource, Task
from taskmix.tasks.readers import Columns, LabelSpec, TableReader
from taskmix.tasks.registry import register_task

NLI3 = ("entailment", "neutral", "contradiction")
BOOLEAN = ("False", "True")  # JSON false/true, in the hub's label order

SUPERGLUE_HUB = "aps/super_glue"
SUPERGLUE_FILES = {"train": "train.jsonl", "dev": "val.jsonl", "test": "test.jsonl"}
SUPERGLUE_HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


def superglue_task(
    name: str,
    folder: str,
    labels: tuple[str, ...],
    text_a: str,
    text_b: str,
    submission: str,
    metrics: tuple[str, ...] = ("accuracy",),
    description: str = "",
) -> Task:
    """Build a SuperGLUE pair-classification task from its folder and JSON keys."""
    labelled = TableReader(
        "jsonl",
        Columns(text_a=text_a, text_b=text_b, label="label", uid="idx"),
        LabelSpec(CLASSIFICATION, labels),
    )
    unlabelled = TableReader("jsonl", Columns(text_a=text_a, text_b=text_b, uid="idx"))
    splits = {
        split: SplitSource(
            f"superglue/{folder}/{file}", unlabelled if split == "test" else labelled
        )
        for split, file in SUPERGLUE_FILES.items()
    }
    hub_fields: Mapping[str, str] = {
        "text_a": text_a, "text_b": text_b, "label": "label", "uid": "idx"
    }
    return Task(
        name=name,
        kind=CLASSIFICATION,
        metrics=metrics,
        splits=splits,
        labels=labels,
        submission_files={"test": submission},
        hub=HubSource(SUPERGLUE_HUB, folder, SUPERGLUE_HUB_SPLITS, hub_fields),
        description=description,
        benchmark=SUPERGLUE,
    )


SNLI_READER = TableReader(
    "jsonl",
    Columns(text_a="sentence1", text_b="sentence2", label="gold_label", uid="pairID"),
    LabelSpec(CLASSIFICATION, NLI3, skip=frozenset({"-"})),
)

SNLI = Task(
    name="snli",
    kind=CLASSIFICATION,
    metrics=("accuracy",),
    splits={
        split: SplitSource(f"snli/snli_1.0_{split}.jsonl", SNLI_READER)
        for split in ("train", "train_0.01", "dev", "test")
    },
    labels=NLI3,
    hub=HubSource(
        "stanfordnlp/snli",
        None,
        {"train": "train", "dev": "validation", "test": "test"},
        {"text_a": "premise", "text_b": "hypothesis", "label": "label"},
    ),
    description="SNLI 1.0: three-way entailment on image captions",
)

SUPERGLUE_TASKS: tuple[Task, ...] = (
    superglue_task(
        "superglue-rte", "rte", NLI2, "premise", "hypothesis", "RTE.jsonl",
        description="SuperGLUE RTE: two-way textual entailment (JSONL release)",
    ),
    superglue_task(
        "cb", "cb", ("entailment", "contradiction", "neutral"), "premise", "hypothesis",
        "CB.jsonl", metrics=("accuracy", "f1_macro"),
        description="CommitmentBank: three-way entailment of embedded clauses",
    ),
    superglue_task(
        "boolq", "boolq", BOOLEAN, "passage", "question", "BoolQ.jsonl",
        description="BoolQ: yes/no questions answered from a passage",
    ),
)

for _task in (SNLI, *SUPERGLUE_TASKS):
    register_task(_task)
