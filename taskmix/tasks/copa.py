"""SuperGLUE COPA: choose the more plausible cause or effect of a premise (two choices).

The context is the premise followed by a question naming what is asked for, so the encoder
sees each candidate as the answer to it; the two question texts are the ones jiant uses
for COPA ("What was the cause of this?", "What happened as a result?").  Rows keep
SuperGLUE's `idx`, and test predictions go to `COPA.jsonl` as choice indices (0 or 1).
COPA is read from local files only: its hub rows are not text pairs.
"""

from __future__ import annotations

from pathlib import Path

from taskmix.errors import DataError
from taskmix.kinds.multiple_choice import MULTIPLE_CHOICE, ChoiceExample
from taskmix.tasks.base import SUPERGLUE, SplitSource, Task
from taskmix.tasks.readers import jsonl_rows
from taskmix.tasks.registry import register_task

QUESTIONS = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}
CHOICES = ("0", "1")
FIELDS = ("premise", "question", "choice1", "choice2", "idx")


def read_copa(path: Path, labelled: bool = True) -> list[ChoiceExample]:
    """COPA JSONL rows as choice examples; every problem names the file and line."""
    examples = []
    for line, row in jsonl_rows(path):
        missing = [f for f in FIELDS + (("label",) if labelled else ()) if f not in row]
        if missing:
            raise DataError(f"COPA row lacks {', '.join(missing)}", path, line)
        if row["question"] not in QUESTIONS:
            raise DataError(f"question {row['question']!r} is not one of {sorted(QUESTIONS)}", path, line)
        label = None
        if labelled:
            try:
                label = MULTIPLE_CHOICE.parse_label(str(row["label"]), CHOICES)
            except ValueError as error:
                raise DataError(str(error), path, line) from None
        examples.append(ChoiceExample(context=f"{row['premise']} {QUESTIONS[row['question']]}",
                                      choices=(row["choice1"], row["choice2"]), label=label, uid=str(row["idx"])))
    return examples


def read_unlabelled_copa(path: Path) -> list[ChoiceExample]:
    return read_copa(path, labelled=False)


COPA = register_task(Task(
    name="copa",
    kind=MULTIPLE_CHOICE,
    metrics=("accuracy",),
    splits={
        "train": SplitSource("superglue/copa/train.jsonl", read_copa),
        "dev": SplitSource("superglue/copa/val.jsonl", read_copa),
        "test": SplitSource("superglue/copa/test.jsonl", read_unlabelled_copa),
    },
    labels=CHOICES,
    submission_files={"test": "COPA.jsonl"},
    description="COPA: the more plausible cause or effect of a premise, out of two",
    benchmark=SUPERGLUE,
))
