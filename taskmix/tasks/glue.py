"""The GLUE benchmark: nine tasks plus the diagnostic set (AX), as table entries.

Paths follow the layout written by the official GLUE download script under the data
directory (`glue/<task>/<split>.tsv`); columns are named by the header of each file,
except CoLA train/dev, which have no header.  Test splits are unlabelled and carry the
official submission file name.
"""

from __future__ import annotations

from typing import Mapping

from taskmix.kinds.base import TaskKind
from taskmix.kinds.classification import CLASSIFICATION
from taskmix.kinds.regression import REGRESSION
from taskmix.tasks.base import GLUE, NLI2, HubSource, SplitSource, Task
from taskmix.tasks.readers import Columns, LabelSpec, TableReader
from taskmix.tasks.registry import register_task

BINARY = ("0", "1")
NLI3 = ("entailment", "neutral", "contradiction")

HUB_PATH = "nyu-mll/glue"
STANDARD_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
STANDARD_HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
AX_CATEGORIES = ("Lexical Semantics", "Predicate-Argument Structure", "Logic", "Knowledge")


def glue_task(
    name: str,
    folder: str,
    labels: tuple[str, ...],
    metrics: tuple[str, ...],
    labelled: Columns,
    unlabelled: Columns,
    hub_config: str,
    hub_fields: Mapping[str, str],
    submission: Mapping[str, str],
    *,
    kind: TaskKind = CLASSIFICATION,
    files: Mapping[str, str] = STANDARD_FILES,
    hub_splits: Mapping[str, str] = STANDARD_HUB_SPLITS,
    labelled_header: bool = True,
    dev_splits: tuple[str, ...] = ("dev",),
    description: str = "",
    majority_floor: bool = False,
    benchmark: str = GLUE,
) -> Task:
    """Build a GLUE task: splits named in `submission` are the unlabelled test splits."""
    target = LabelSpec(kind, labels)
    splits = {
        split: SplitSource(
            f"glue/{folder}/{file}",
            TableReader("tsv", unlabelled)
            if split in submission
            else TableReader("tsv", labelled, target, header=labelled_header),
        )
        for split, file in files.items()
    }
    return Task(
        name=name,
        kind=kind,
        metrics=metrics,
        splits=splits,
        labels=labels,
        dev_splits=dev_splits,
        test_splits=tuple(submission),
        submission_files=dict(submission),
        hub=HubSource(HUB_PATH, hub_config, hub_splits, {"uid": "idx", **hub_fields}),
        description=description,
        majority_floor=majority_floor,
        benchmark=benchmark,
    )


PAIR_HUB = {"text_a": "sentence1", "text_b": "sentence2", "label": "label"}
PAIR_TEST = Columns(text_a="sentence1", text_b="sentence2", uid="index")
PAIR_TRAIN = Columns(text_a="sentence1", text_b="sentence2", label="label", uid="index")

GLUE_TASKS: tuple[Task, ...] = (
    glue_task(
        "cola", "cola", BINARY, ("matthews",),
        labelled=Columns(text_a=3, label=1),  # headerless: source, label, original mark, sentence
        unlabelled=Columns(text_a="sentence", uid="index"),
        labelled_header=False,
        hub_config="cola", hub_fields={"text_a": "sentence", "label": "label"},
        submission={"test": "CoLA.tsv"},
        description="CoLA: grammatical acceptability of single sentences",
    ),
    glue_task(
        "sst-2", "sst-2", BINARY, ("accuracy",),
        labelled=Columns(text_a="sentence", label="label"),
        unlabelled=Columns(text_a="sentence", uid="index"),
        hub_config="sst2", hub_fields={"text_a": "sentence", "label": "label"},
        submission={"test": "SST-2.tsv"},
        description="SST-2: binary sentiment of movie-review phrases",
    ),
    glue_task(
        "mrpc", "mrpc", BINARY, ("accuracy", "f1"),
        labelled=Columns(text_a="#1 String", text_b="#2 String", label="Quality"),
        unlabelled=Columns(text_a="#1 String", text_b="#2 String", uid="index"),
        hub_config="mrpc", hub_fields=PAIR_HUB,
        submission={"test": "MRPC.tsv"},
        description="MRPC: are two news sentences paraphrases",
    ),
    glue_task(
        "qqp", "qqp", BINARY, ("accuracy", "f1"),
        labelled=Columns(text_a="question1", text_b="question2", label="is_duplicate", uid="id"),
        unlabelled=Columns(text_a="question1", text_b="question2", uid="id"),
        hub_config="qqp",
        hub_fields={"text_a": "question1", "text_b": "question2", "label": "label"},
        submission={"test": "QQP.tsv"},
        description="QQP: are two Quora questions duplicates",
    ),
    glue_task(
        "sts-b", "sts-b", (), ("pearson", "spearman"),
        kind=REGRESSION,
        labelled=Columns(text_a="sentence1", text_b="sentence2", label="score", uid="index"),
        unlabelled=PAIR_TEST,
        hub_config="stsb", hub_fields=PAIR_HUB,
        submission={"test": "STS-B.tsv"},
        description="STS-B: semantic similarity of sentence pairs on a 0-5 scale",
    ),
    glue_task(
        "mnli", "mnli", NLI3, ("accuracy",),
        labelled=Columns(text_a="sentence1", text_b="sentence2", label="gold_label", uid="index"),
        unlabelled=PAIR_TEST,
        files={
            "train": "train.tsv",
            "dev_matched": "dev_matched.tsv",
            "dev_mismatched": "dev_mismatched.tsv",
            "test_matched": "test_matched.tsv",
            "test_mismatched": "test_mismatched.tsv",
        },
        hub_config="mnli",
        hub_fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"},
        hub_splits={
            "train": "train",
            "dev_matched": "validation_matched",
            "dev_mismatched": "validation_mismatched",
            "test_matched": "test_matched",
            "test_mismatched": "test_mismatched",
        },
        submission={"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"},
        dev_splits=("dev_matched", "dev_mismatched"),
        description="MNLI: three-way entailment across genres (matched and mismatched)",
    ),
    glue_task(
        "qnli", "qnli", NLI2, ("accuracy",),
        labelled=Columns(text_a="question", text_b="sentence", label="label", uid="index"),
        unlabelled=Columns(text_a="question", text_b="sentence", uid="index"),
        hub_config="qnli",
        hub_fields={"text_a": "question", "text_b": "sentence", "label": "label"},
        submission={"test": "QNLI.tsv"},
        description="QNLI: does a Wikipedia sentence answer the question",
    ),
    glue_task(
        "rte", "rte", NLI2, ("accuracy",),
        labelled=PAIR_TRAIN, unlabelled=PAIR_TEST,
        hub_config="rte", hub_fields=PAIR_HUB,
        submission={"test": "RTE.tsv"},
        description="RTE: two-way textual entailment",
    ),
    glue_task(
        "wnli", "wnli", BINARY, ("accuracy",),
        labelled=PAIR_TRAIN, unlabelled=PAIR_TEST,
        hub_config="wnli", hub_fields=PAIR_HUB,
        submission={"test": "WNLI.tsv"},
        description="WNLI: Winograd schemas recast as entailment",
        majority_floor=True,
    ),
    glue_task(
        "ax", "diagnostic", NLI3, ("matthews",),
        labelled=Columns(
            text_a="Premise", text_b="Hypothesis", label="Label", categories=AX_CATEGORIES
        ),
        unlabelled=PAIR_TEST,
        files={"test": "diagnostic.tsv", "full": "diagnostic-full.tsv"},
        hub_config="ax",
        hub_fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"},
        hub_splits={"test": "test"},
        submission={"test": "AX.tsv"},
        dev_splits=("full",),
        description="GLUE diagnostic: scored with an MNLI model (R3), overall and per category",
        benchmark="",  # analysis only: not part of the GLUE score
    ),
)

for _task in GLUE_TASKS:
    register_task(_task)
