"""CommonsenseQA v1.11: a question and five answers labelled A-E, one of them right.

The context is the question stem alone (the question concept is a word of the stem, so it
adds nothing); each answer is encoded with it as a text pair and the five scores compete
in a softmax.  Rows keep the official `id`.  The test split is unlabelled and has no
submission file here: the CommonsenseQA leaderboard takes predictions by e-mail in its own
format, not as a file a run could write, so test predictions are not written.
"""

from __future__ import annotations

from pathlib import Path

from taskmix.errors import DataError
from taskmix.kinds.multiple_choice import MULTIPLE_CHOICE, ChoiceExample
from taskmix.tasks.base import SplitSource, Task
from taskmix.tasks.readers import jsonl_rows
from taskmix.tasks.registry import register_task

ANSWER_KEYS = ("A", "B", "C", "D", "E")


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
            try:
                label = MULTIPLE_CHOICE.parse_label(str(row["answerKey"]), ANSWER_KEYS)
            except ValueError as error:
                raise DataError(str(error), path, line) from None
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
