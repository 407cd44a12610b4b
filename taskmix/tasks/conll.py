"""CoNLL column files (one word per line, blank line between sentences) and the CoNLL-2000 tasks.

`ConllReader` reads any such file given which 0-based whitespace-separated column holds the
word and which the tag; YAML custom tasks of kind `tagging` use it too.  A line whose word
is `-DOCSTART-` (CoNLL-2003's document marker) is skipped.

CoNLL-2000 (`conll2000/train.txt`, `test.txt`; columns word, POS, chunk) serves two tasks:
chunking (chunk F1) and POS tagging (word accuracy).  It has no development set, so a fixed
set of DEV_SENTENCES sentences is held out of train.txt (chosen by a seeded permutation, the
same for every run and both tasks) as `dev`, and `train` is the rest.  test.txt is the
labelled `test` split: it is evaluated like SNLI's labelled test, with `dev_split: test` in
a stage (or `taskmix evaluate`), never used for model selection by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from taskmix.errors import DataError
from taskmix.kinds.tagging import TAGGING, TagExample
from taskmix.tasks.base import SplitSource, Task
from taskmix.tasks.custom import CustomKind, CustomTaskSpec, register_custom_kind
from taskmix.tasks.readers import open_lines
from taskmix.tasks.registry import register_task

DOCUMENT_MARKER = "-DOCSTART-"

Part = Literal["all", "train", "dev"]


@dataclass(frozen=True)
class ConllReader:
    """Sentences of a CoNLL column file as `TagExample`s; `tag_column=None` reads them unlabelled.

    `part` keeps every sentence ("all") or splits off `dev_sentences` of them: "dev" keeps
    those, "train" the others.  Which sentences are held out depends only on the sentence
    count and `seed`.  Uids are 0-based sentence numbers in the file.  Every problem (too few
    columns, a tag outside `tags`) is a DataError naming the file and line.
    """

    word_column: int
    tag_column: int | None
    tags: tuple[str, ...] = ()
    part: Part = "all"
    dev_sentences: int = 0
    seed: int = 0

    VERSION: ClassVar[int] = 1  # raise when the same file starts to read differently

    def __call__(self, path: Path) -> list[TagExample]:
        sentences = list(self._sentences(path))
        if self.part == "all":
            return sentences
        if self.dev_sentences >= len(sentences):
            raise DataError(f"cannot hold out {self.dev_sentences} dev sentences of {len(sentences)}", path)
        held_out = np.zeros(len(sentences), dtype=bool)
        held_out[np.random.default_rng(self.seed).permutation(len(sentences))[: self.dev_sentences]] = True
        return [s for s, dev in zip(sentences, held_out) if dev == (self.part == "dev")]

    def _sentences(self, path: Path):
        words: list[str] = []
        tags: list[int] = []
        count = 0
        width = max(self.word_column, -1 if self.tag_column is None else self.tag_column) + 1
        for line, text in open_lines(path):
            fields = text.split()
            if not fields:
                if words:
                    yield TagExample(tuple(words), None if self.tag_column is None else tuple(tags), str(count))
                    count += 1
                    words, tags = [], []
                continue
            if len(fields) < width:
                raise DataError(f"expected at least {width} whitespace-separated columns, found {len(fields)}",
                                path, line)
            if fields[0] == DOCUMENT_MARKER:
                continue
            words.append(fields[self.word_column])
            if self.tag_column is not None:
                try:
                    tags.append(TAGGING.parse_label(fields[self.tag_column], self.tags))
                except ValueError:
                    raise DataError(f"tag {fields[self.tag_column]!r} is not one of the task's {len(self.tags)} "
                                    f"tags", path, line) from None
        if words:
            yield TagExample(tuple(words), None if self.tag_column is None else tuple(tags), str(count))


# The tag sets of CoNLL-2000, sorted: every tag of train.txt and test.txt (I-LST occurs in
# test.txt only, SYM in train.txt only).
CHUNK_TAGS = (
    "B-ADJP", "B-ADVP", "B-CONJP", "B-INTJ", "B-LST", "B-NP", "B-PP", "B-PRT", "B-SBAR", "B-UCP", "B-VP",
    "I-ADJP", "I-ADVP", "I-CONJP", "I-INTJ", "I-LST", "I-NP", "I-PP", "I-PRT", "I-SBAR", "I-UCP", "I-VP", "O",
)
POS_TAGS = (
    "#", "$", "''", "(", ")", ",", ".", ":", "CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR", "JJS", "MD", "NN",
    "NNP", "NNPS", "NNS", "PDT", "POS", "PRP", "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO", "UH", "VB", "VBD",
    "VBG", "VBN", "VBP", "VBZ", "WDT", "WP", "WP$", "WRB", "``",
)
CONLL2000_COLUMNS = {"pos": 1, "chunk": 2}
DEV_SENTENCES = 1000  # of train.txt's 8,936; test.txt has 2,012
DEV_SEED = 0


def conll2000_task(name: str, column: str, tags: tuple[str, ...], metric: str, what: str) -> Task:
    """One CoNLL-2000 task: its tag column, tag set and metric over the fixed train/dev/test splits."""

    def reader(part: Part) -> ConllReader:
        return ConllReader(0, CONLL2000_COLUMNS[column], tags, part, DEV_SENTENCES if part != "all" else 0, DEV_SEED)

    return Task(
        name=name,
        kind=TAGGING,
        metrics=(metric,),
        splits={
            "train": SplitSource("conll2000/train.txt", reader("train")),
            "dev": SplitSource("conll2000/train.txt", reader("dev")),
            "test": SplitSource("conll2000/test.txt", reader("all")),
        },
        labels=tags,
        description=f"CoNLL-2000 {what}; dev = {DEV_SENTENCES} sentences held out of train.txt (seed {DEV_SEED}), "
                    f"test = the labelled test.txt",
    )


CONLL2000_CHUNK = register_task(conll2000_task("conll2000-chunk", "chunk", CHUNK_TAGS, "chunk_f1",
                                               "chunking (B-/I-/O chunk tags, conlleval chunk F1)"))
CONLL2000_POS = register_task(conll2000_task("conll2000-pos", "pos", POS_TAGS, "token_accuracy",
                                             "part-of-speech tagging (Penn Treebank tags, word accuracy)"))


# -- YAML custom tasks of kind `tagging` -----------------------------------------------------

class ConllColumns(BaseModel):
    """0-based whitespace-separated columns of the word and of its tag."""

    model_config = ConfigDict(extra="forbid")

    word: int = Field(ge=0)
    tag: int = Field(ge=0)


def conll_reader(spec: CustomTaskSpec, columns: BaseModel, fmt: str, labelled: bool) -> ConllReader:
    """A reader of one custom split; an unlabelled (test) file needs only the word column."""
    assert isinstance(columns, ConllColumns)
    if "header" in spec.model_fields_set and spec.header:
        raise ValueError("CoNLL column files have no header line; remove header: true")
    return ConllReader(columns.word, columns.tag if labelled else None, tuple(spec.labels or ()))


register_custom_kind("tagging", CustomKind(TAGGING, ConllColumns, {".txt": "conll", ".conll": "conll"}, conll_reader))
