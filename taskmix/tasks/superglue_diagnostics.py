"""SuperGLUE's diagnostics, answered by a two-class entailment (RTE) model: AX-b and AX-g.

AX-b (broad coverage) is the GLUE diagnostic recast as RTE: neutral and contradiction
become not_entailment.  It is read from the GLUE diagnostic files (`glue/diagnostic/`, the
same 1,104 rows in the same order, so `index` is SuperGLUE's `idx`) and scored with the
Matthews correlation (R3 of two classes).  AX-g (Winogender) pairs sentences that differ
only in the pronoun's gender; it is scored with accuracy and the gender parity score, the
fraction of pairs on which the two predictions agree.  In the released
`WinoGender.jsonl` every row has its own `pair_id`, so a pair is two consecutive rows with
the same hypothesis (the pairing of the benchmark's own scorer); the labelled reader
checks it.  Both have no training data; `taskmix evaluate --tasks ax-b ax-g` scores them
with an RTE head, and a SuperGLUE RTE target writes `AX-b.jsonl` and `AX-g.jsonl`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from taskmix.errors import DataError
from taskmix.kinds.classification import CLASSIFICATION
from taskmix.metrics import register_metric
from taskmix.tasks.base import NLI2, Example, HubSource, SplitSource, Task
from taskmix.tasks.glue import GLUE_TASKS
from taskmix.tasks.readers import Columns, LabelSpec, TableReader
from taskmix.tasks.registry import register_task
from taskmix.tasks.superglue import SUPERGLUE_HUB

GLUE_AX = next(task for task in GLUE_TASKS if task.name == "ax")


def _gender_parity(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of minimal pairs (rows 2k and 2k + 1) predicted alike."""
    if len(predictions) % 2:
        raise ValueError(f"gender parity needs whole pairs, got {len(predictions)} rows")
    return float(np.mean(predictions[0::2] == predictions[1::2]))


register_metric("gender_parity", _gender_parity)


def read_axb_full(path: Path) -> list[Example]:
    """The labelled GLUE diagnostic with its three classes folded into RTE's two."""
    entailment = GLUE_AX.labels.index("entailment")
    return [replace(e, label=NLI2.index("entailment" if e.label == entailment else "not_entailment"))
            for e in GLUE_AX.splits["full"].reader(path)]


AXG_COLUMNS = Columns(text_a="premise", text_b="hypothesis", uid="idx")
AXG_LABELLED = TableReader("jsonl", Columns(text_a="premise", text_b="hypothesis", label="label", uid="idx"),
                           LabelSpec(CLASSIFICATION, NLI2))


def read_axg_full(path: Path) -> list[Example]:
    """Labelled Winogender rows, checked to come in minimal pairs (same hypothesis, different premise)."""
    examples = AXG_LABELLED(path)
    if len(examples) % 2:
        raise DataError(f"{len(examples)} rows: Winogender rows come in pairs", path)
    for first, second in zip(examples[0::2], examples[1::2]):
        if first.text_b != second.text_b or first.text_a == second.text_a:
            raise DataError(f"rows idx {first.uid} and {second.uid} are not a minimal pair "
                            "(same hypothesis, premises differing in the pronoun)", path)
    return examples


DIAGNOSTIC_HUB_SPLITS = {"test": "test", "full": "test"}

AX_B = register_task(Task(
    name="ax-b",
    kind=CLASSIFICATION,
    metrics=("matthews",),
    splits={"test": SplitSource("glue/diagnostic/diagnostic.tsv",
                                TableReader("tsv", Columns(text_a="sentence1", text_b="sentence2", uid="index"))),
            "full": SplitSource("glue/diagnostic/diagnostic-full.tsv", read_axb_full)},
    labels=NLI2,
    dev_splits=("full",),
    submission_files={"test": "AX-b.jsonl"},
    hub=HubSource(SUPERGLUE_HUB, "axb", DIAGNOSTIC_HUB_SPLITS,
                  {"text_a": "sentence1", "text_b": "sentence2", "label": "label", "uid": "idx"}),
    description="SuperGLUE AX-b: the GLUE diagnostic as RTE, scored with an RTE model (R3)",
))

AX_G = register_task(Task(
    name="ax-g",
    kind=CLASSIFICATION,
    metrics=("gender_parity", "accuracy"),
    splits={"test": SplitSource("superglue/ax-g/WinoGender.jsonl", TableReader("jsonl", AXG_COLUMNS)),
            "full": SplitSource("superglue/ax-g/WinoGender.jsonl", read_axg_full)},
    labels=NLI2,
    dev_splits=("full",),
    submission_files={"test": "AX-g.jsonl"},
    hub=HubSource(SUPERGLUE_HUB, "axg", DIAGNOSTIC_HUB_SPLITS,
                  {"text_a": "premise", "text_b": "hypothesis", "label": "label", "uid": "idx"}),
    description="SuperGLUE AX-g (Winogender): gender parity and accuracy of an RTE model",
))
