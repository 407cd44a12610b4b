"""CommonsenseQA v1.11, and multiple-choice tasks declared in YAML (`kind: multiple_choice`).

CommonsenseQA: a question and five answers labelled A-E, one of them right.

The context is the question stem alone (the question concept is a word of the stem, so it
adds nothing); each answer is encoded with it as a text pair and the five scores compete
in a softmax.  Rows keep the official `id`.  The test split is unlabelled and has no
submission file here: the CommonsenseQA leaderboard takes predictions by e-mail in its own
format, not as a file a run could write, so test predictions are not written.

A custom multiple-choice task reads JSONL rows holding a context, a list of choices and a
label: `columns: {context, choices, label, uid?}` name the keys, and `labels:` name the
choice positions in order (["A", "B", "C"], or ["0", "1"] for index labels), so a row's
label cell is the name of its right choice.  Rows may have fewer choices than `labels` (at
least two); the missing ones get no probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from taskmix.errors import DataError
from taskmix.kinds.multiple_choice import MULTIPLE_CHOICE, ChoiceExample
from taskmix.tasks.base import SplitSource, Task
from taskmix.tasks.custom import CustomKind, CustomTaskSpec, register_custom_kind
from taskmix.tasks.readers import LabelSpec, jsonl_rows
from taskmix.tasks.registry import register_task

ANSWER_KEYS = ("A", "B", "C", "D", "E")
ANSWER_LABELS = LabelSpec(MULTIPLE_CHOICE, ANSWER_KEYS)


def read_commonsenseqa(path: Path, labelled: bool = True) -> list[ChoiceExample]:
    """CommonsenseQA JSONL rows as choice examples; every problem names the file and line."""
    examples = []
    for line, row in jsonl_rows(path):
        question = row.get("question")
        if not isinstance(question, dict) or "stem" not in question or "choices" not in question or "id" not in row:
            raise DataError("CommonsenseQA row needs id, question.stem and question.choices", path, line)
        try:
            keys = tuple(c["label"] for c in question["choices"])
            texts = tuple(str(c["text"]) for c in question["choices"])
        except (KeyError, TypeError):
            raise DataError("every choice needs a label and a text", path, line) from None
        if keys != ANSWER_KEYS:
            raise DataError(f"choices are labelled {list(keys)}, expected {list(ANSWER_KEYS)}", path, line)
        label = None
        if labelled:
            if "answerKey" not in row:
                raise DataError("labelled CommonsenseQA row lacks answerKey", path, line)
            label = ANSWER_LABELS.parse(row["answerKey"], path, line)
        examples.append(ChoiceExample(context=str(question["stem"]), choices=texts, label=label, uid=str(row["id"])))
    return examples


def read_unlabelled_commonsenseqa(path: Path) -> list[ChoiceExample]:
    return read_commonsenseqa(path, labelled=False)


COMMONSENSEQA = register_task(Task(
    name="commonsenseqa",
    kind=MULTIPLE_CHOICE,
    metrics=("accuracy",),
    splits={
        "train": SplitSource("commonsenseqa/train_rand_split.jsonl", read_commonsenseqa),
        "dev": SplitSource("commonsenseqa/dev_rand_split.jsonl", read_commonsenseqa),
        "test": SplitSource("commonsenseqa/test_rand_split_no_answers.jsonl", read_unlabelled_commonsenseqa),
    },
    labels=ANSWER_KEYS,
    description="CommonsenseQA v1.11: the right answer to a commonsense question, out of five",
))


class ChoiceColumns(BaseModel):
    """JSON keys of a custom multiple-choice task's rows."""

    model_config = ConfigDict(extra="forbid")

    context: str
    choices: str
    label: str
    uid: str | None = None


@dataclass(frozen=True)
class ChoiceReader:
    """Reads a custom multiple-choice JSONL file; every problem names the file and line."""

    columns: ChoiceColumns
    labels: tuple[str, ...]
    labelled: bool

    def __call__(self, path: Path) -> list[ChoiceExample]:
        columns, examples = self.columns, []
        wanted = [columns.context, columns.choices] + [c for c in (columns.uid,) if c is not None]
        wanted += [columns.label] if self.labelled else []
        labels = LabelSpec(MULTIPLE_CHOICE, self.labels)
        for position, (line, row) in enumerate(jsonl_rows(path)):
            missing = [key for key in wanted if key not in row]
            if missing:
                raise DataError(f"row lacks {', '.join(missing)}", path, line)
            choices = row[columns.choices]
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices) or \
                    not 2 <= len(choices) <= len(self.labels):
                raise DataError(f"{columns.choices!r} should be a list of 2 to {len(self.labels)} texts", path, line)
            label = None
            if self.labelled:
                label = labels.parse(row[columns.label], path, line)
                if label >= len(choices):
                    raise DataError(f"label {row[columns.label]!r} names choice {label + 1} of {len(choices)}",
                                    path, line)
            uid = str(position) if columns.uid is None else str(row[columns.uid])
            examples.append(ChoiceExample(context=str(row[columns.context]), choices=tuple(choices), label=label,
                                          uid=uid))
        return examples


def choice_reader(spec: CustomTaskSpec, columns: BaseModel, fmt: str, labelled: bool) -> ChoiceReader:
    assert isinstance(columns, ChoiceColumns)
    return ChoiceReader(columns, tuple(spec.labels or ()), labelled)


register_custom_kind("multiple_choice", CustomKind(MULTIPLE_CHOICE, ChoiceColumns, {".jsonl": "jsonl"}, choice_reader))
