"""SQuAD v1.1 JSON files (data → articles → paragraphs → qas), XQuAD-en split by article, and
custom tasks of kind `extractive_qa` on SQuAD JSON files.

XQuAD's English file is 1,190 questions of the SQuAD v1.1 dev set (48 articles, one gold
answer each) and has no training split of its own.  It is split by article, so no context is
shared between train and dev: the first 36 articles (180 paragraphs, 925 questions) train, the
last 12 (60 paragraphs, 265 questions) are dev; there is no test split.  Scores on this dev
split are NOT comparable with published SQuAD dev numbers (other questions, one reference
answer instead of three).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from taskmix.errors import DataError
from taskmix.kinds.extractive_qa import EXTRACTIVE_QA, Answer, QAExample
from taskmix.tasks.base import SplitSource, Task
from taskmix.tasks.custom import CustomKind, CustomTaskSpec, register_custom_kind
from taskmix.tasks.registry import register_task

XQUAD_FILE = "xquad/xquad.en.json"
XQUAD_TRAIN_ARTICLES = 36  # of 48: the first 75% of the articles train


@dataclass(frozen=True)
class SquadReader:
    """Reads a SQuAD v1.1 JSON file into `QAExample`s, one per question.

    `first_article`/`end_article` select articles by position (XQuAD's train/dev split);
    `labelled=False` reads questions without answers (a test file).  Every gold answer must be
    found at its `answer_start` in the context, so a predicted span can be compared with it;
    a problem names the file and the question id.
    """

    first_article: int = 0
    end_article: int | None = None
    labelled: bool = True

    def __call__(self, path: Path) -> list[QAExample]:
        examples: list[QAExample] = []
        seen: set[str] = set()
        for a, article in enumerate(_articles(path)[self.first_article : self.end_article], self.first_article):
            for p, paragraph in enumerate(_field(article, "paragraphs", list, path, f"article {a}")):
                where = f"article {a} paragraph {p}"
                context = _field(paragraph, "context", str, path, where)
                for q, qa in enumerate(_field(paragraph, "qas", list, path, where)):
                    example = self._example(qa, context, path, f"{where} question {q}")
                    if example.uid in seen:
                        raise DataError(f"question id {example.uid!r} appears twice", path)
                    seen.add(example.uid)
                    examples.append(example)
        return examples

    def _example(self, qa: Any, context: str, path: Path, where: str) -> QAExample:
        uid = str(_field(qa, "id", (str, int), path, where))
        where = f"question {uid!r}"
        question = _field(qa, "question", str, path, where)
        if not self.labelled:
            return QAExample(question=question, context=context, uid=uid)
        answers = []
        for raw in _field(qa, "answers", list, path, where):
            text = _field(raw, "text", str, path, where)
            start = _field(raw, "answer_start", int, path, where)
            if context[start : start + len(text)] != text or start < 0:
                found = context[max(start, 0) : max(start, 0) + len(text)]
                raise DataError(f"{where}: answer {text!r} is not at answer_start {start} of its context "
                                f"(found {found!r} there)", path)
            answers.append(Answer(text, start))
        if not answers:
            raise DataError(f"{where} has no answers", path)
        return QAExample(question=question, context=context, answers=tuple(answers), uid=uid)


def _articles(path: Path) -> list[Any]:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            document = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(f"bad JSON: {error.msg} (column {error.colno})", path, error.lineno) from None
    except UnicodeDecodeError as error:
        raise DataError(f"not valid UTF-8 ({error.reason} at byte {error.start})", path) from None
    return _field(document, "data", list, path, "the top level")


def _field(node: Any, key: str, kind: type | tuple[type, ...], path: Path, where: str) -> Any:
    """`node[key]`, which must exist and be of `kind` (a bool is not an int here)."""
    if not isinstance(node, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(node).__name__}", path)
    if key not in node:
        raise DataError(f"{where} has no {key!r}", path)
    value = node[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataError(f"{where}: {key!r} should be {_names(kind)}, got {type(value).__name__}", path)
    return value


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({str: "text", int: "an integer", list: "a list"}.get(k, k.__name__) for k in kinds)


XQUAD_EN = register_task(Task(
    name="xquad-en",
    kind=EXTRACTIVE_QA,
    metrics=("squad_em", "squad_f1"),
    splits={
        "train": SplitSource(XQUAD_FILE, SquadReader(end_article=XQUAD_TRAIN_ARTICLES)),
        "dev": SplitSource(XQUAD_FILE, SquadReader(first_article=XQUAD_TRAIN_ARTICLES)),
    },
    test_splits=(),
    description="XQuAD-en: SQuAD v1.1 extractive QA on 48 articles, split by article "
                "(36 train / 12 dev); not comparable with SQuAD dev scores",
))


class SquadColumns(BaseModel):
    """A SQuAD JSON file names its own fields, so a custom task's `columns:` is empty (`{}`)."""

    model_config = ConfigDict(extra="forbid")


def custom_squad_reader(spec: CustomTaskSpec, columns: BaseModel, fmt: str, labelled: bool) -> SquadReader:
    """Every article of the file; a test split's answers, if any, are not read."""
    return SquadReader(labelled=labelled)


register_custom_kind("extractive_qa", CustomKind(EXTRACTIVE_QA, SquadColumns, {".json": "squad"}, custom_squad_reader))
