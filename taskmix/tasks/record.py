"""SuperGLUE ReCoRD: which entity of a news passage fills the `@placeholder` of a cloze query.

The official JSONL has one passage per line: `{"idx", "passage": {"text", "entities":
[{"start", "end"}]}, "qas": [{"idx", "query", "answers": [{"start", "end", "text"}]}]}`,
entity offsets being character positions with an inclusive end; test queries have no
answers.  Each query becomes one example whose candidates are the passage's entity texts,
one per distinct text in order of first mention (`taskmix.kinds.entity_choice`).  The
passage's "@highlight" markers become "- " (as the hub's copy has them), after the entity
texts are cut out.  Rows are identified by the query `idx`; test predictions go to
`ReCoRD.jsonl` as `{"idx": query, "label": entity text}`.  Data:
`superglue/record/{train,val,test}.jsonl` under the data directory, or the hub
(`aps/super_glue`, config `record`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from taskmix.errors import DataError
from taskmix.kinds.entity_choice import ENTITY_CHOICE, PLACEHOLDER, EntityChoiceExample
from taskmix.tasks.base import SUPERGLUE, HubSource, SplitSource, Task
from taskmix.tasks.readers import jsonl_rows
from taskmix.tasks.registry import register_task
from taskmix.tasks.superglue import SUPERGLUE_FILES, SUPERGLUE_HUB, SUPERGLUE_HUB_SPLITS

HIGHLIGHT = "@highlight\n"


def _passage_and_entities(row: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    text = row["passage"]["text"]
    spans = [(int(e["start"]), int(e["end"])) for e in row["passage"]["entities"]]
    if any(not 0 <= start <= end < len(text) for start, end in spans):
        raise ValueError("an entity span lies outside the passage")
    entities = tuple(dict.fromkeys(text[start:end + 1] for start, end in spans))
    return text.replace(HIGHLIGHT, "- "), entities


def read_record(path: Path, labelled: bool = True) -> list[EntityChoiceExample]:
    """One example per query; a malformed line is named by file and line."""
    examples = []
    for line, row in jsonl_rows(path):
        try:
            passage, entities = _passage_and_entities(row)
            queries = [(str(qa["query"]), str(qa["idx"]),
                        tuple(str(a["text"]) for a in qa["answers"]) if labelled else None) for qa in row["qas"]]
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"not a ReCoRD passage (missing or bad {error})", path, line) from None
        if not entities:
            raise DataError("passage has no entities to choose from", path, line)
        for query, uid, answers in queries:
            if PLACEHOLDER not in query:
                raise DataError(f"query {uid} has no {PLACEHOLDER}", path, line)
            if answers is not None and not answers:
                raise DataError(f"labelled query {uid} has no answers", path, line)
            examples.append(EntityChoiceExample(passage, query, entities, answers, uid))
    return examples


def read_unlabelled_record(path: Path) -> list[EntityChoiceExample]:
    return read_record(path, labelled=False)


def hub_row(row: Mapping[str, Any], labelled: bool) -> EntityChoiceExample:
    """One query row of the hub's `record` config (entities are already texts there)."""
    return EntityChoiceExample(row["passage"], row["query"], tuple(dict.fromkeys(row["entities"])),
                               tuple(row["answers"]) if labelled else None, str(row["idx"]["query"]))


RECORD = register_task(Task(
    name="record",
    kind=ENTITY_CHOICE,
    metrics=("record_f1", "record_em"),
    splits={split: SplitSource(f"superglue/record/{file}", read_unlabelled_record if split == "test"
                               else read_record)
            for split, file in SUPERGLUE_FILES.items()},
    submission_files={"test": "ReCoRD.jsonl"},
    hub=HubSource(SUPERGLUE_HUB, "record", SUPERGLUE_HUB_SPLITS, row=hub_row),
    description="ReCoRD: the passage entity that fills a cloze query (max over answers of token F1 / EM)",
    benchmark=SUPERGLUE,
))
