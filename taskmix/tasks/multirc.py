"""SuperGLUE MultiRC: which of a question's candidate answers about a paragraph are right.

The official JSONL has one paragraph per line: `{"idx", "passage": {"text", "questions":
[{"idx", "question", "answers": [{"idx", "text", "label"}]}]}}` (test answers have no
label); the hub gives the same content as one row per answer.  Both become one row per
answer: the paragraph and "question answer" as a text pair, the label 0/1, the id
"paragraph-question-answer" and the question as the row's group
(`taskmix.kinds.grouped_classification`).  The paragraph's markup (`<b>Sent 1: </b>`,
`<br>`) is replaced by spaces.  Data: `superglue/multirc/{train,val,test}.jsonl` under the
data directory, or the hub (`aps/super_glue`, config `multirc`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from taskmix.errors import DataError
from taskmix.kinds.grouped_classification import GROUPED_CLASSIFICATION
from taskmix.tasks.base import SUPERGLUE, Example, HubSource, SplitSource, Task
from taskmix.tasks.readers import jsonl_rows
from taskmix.tasks.registry import register_task
from taskmix.tasks.superglue import SUPERGLUE_FILES, SUPERGLUE_HUB, SUPERGLUE_HUB_SPLITS

LABELS = ("0", "1")
_MARKUP = re.compile(r"<[^>]+>")


def plain(text: str) -> str:
    """Paragraph text without its HTML markup."""
    return " ".join(_MARKUP.sub(" ", text).split())


def answer_example(paragraph: str, question: str, answer: str, path: tuple[int, int, int],
                   label: int | None) -> Example:
    p, q, a = path
    return Example(text_a=plain(paragraph), text_b=f"{question} {answer}", label=label, uid=f"{p}-{q}-{a}",
                   meta={"group": f"{p}-{q}"})


def _label(raw: Any, path: Path, line: int) -> int:
    try:
        return GROUPED_CLASSIFICATION.parse_label(str(raw), LABELS)
    except ValueError as error:
        raise DataError(f"answer {error}", path, line) from None


def read_multirc(path: Path, labelled: bool = True) -> list[Example]:
    """Every answer of every question of every paragraph; a malformed line is named by file and line."""
    examples = []
    for line, row in jsonl_rows(path):
        try:
            paragraph = row["passage"]["text"]
            answers = [(question, answer) for question in row["passage"]["questions"] for answer in question["answers"]]
            paths = [(int(row["idx"]), int(q["idx"]), int(a["idx"])) for q, a in answers]
            texts = [(str(q["question"]), str(a["text"]), a["label"] if labelled else None) for q, a in answers]
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"not a MultiRC paragraph (missing or bad {error})", path, line) from None
        for (question, answer, raw), where in zip(texts, paths):
            label = None if raw is None else _label(raw, path, line)
            examples.append(answer_example(paragraph, question, answer, where, label))
    return examples


def read_unlabelled_multirc(path: Path) -> list[Example]:
    return read_multirc(path, labelled=False)


def hub_row(row: Mapping[str, Any], labelled: bool) -> Example:
    """One answer row of the hub's `multirc` config."""
    idx = row["idx"]
    label = int(row["label"]) if labelled else None
    return answer_example(row["paragraph"], row["question"], row["answer"],
                          (int(idx["paragraph"]), int(idx["question"]), int(idx["answer"])), label)


MULTIRC = register_task(Task(
    name="multirc",
    kind=GROUPED_CLASSIFICATION,
    metrics=("multirc_f1a", "multirc_em"),
    splits={split: SplitSource(f"superglue/multirc/{file}", read_unlabelled_multirc if split == "test"
                               else read_multirc)
            for split, file in SUPERGLUE_FILES.items()},
    labels=LABELS,
    submission_files={"test": "MultiRC.jsonl"},
    hub=HubSource(SUPERGLUE_HUB, "multirc", SUPERGLUE_HUB_SPLITS, row=hub_row),
    description="MultiRC: which candidate answers to a question about a paragraph are right (F1a, EM)",
    benchmark=SUPERGLUE,
))
