"""Seed 001's generation tasks: translation (Multi30k En-De), SkipThought and Reddit, plus the
YAML custom kind `seq2seq` (a source column and a target column).

- `multi30k-en-de`: WMT16 multimodal task 1 (stands in for WMT14 En-De, not available
  offline); the split file is the English side, the German twin has the same stem.  BPE
  output vocabulary of 20k types trained on `train.de`; no attention (App. B); scored by
  BLEU and perplexity; test translations are written as plain text, one line per sentence.
- `skipthought`: generate the next sentence of a WikiText document from the current one
  (pairs of consecutive sentences inside a document, sentences split as the pretraining
  corpus reader does).  WikiText-2's train file is not staged, so the task trains on
  `wiki.valid.raw` and validates on `wiki.test.raw`, like `examples/aux_pretraining.yaml`
  (seed 001 used WikiText-103).  Word-level 20k vocabulary, attention, perplexity.
- `reddit`: generate the reply to a comment (seed 001: 18M pushshift.io pairs).  No copy is
  available offline: the task reads `reddit/{train,dev,test}.tsv` (header `comment<TAB>reply`)
  or `.jsonl` files ({"comment": ..., "reply": ...}) that a user puts in the data directory,
  and a missing file's error says so.

Head settings: translation decodes with a beam of 4 and no attention; SkipThought and Reddit
use attention (App. B) and decode greedily (their score is perplexity; the decoded text
only fills the prediction files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from taskmix.errors import DataError
from taskmix.kinds.output_vocab import OutputVocabulary, Scheme
from taskmix.kinds.seq2seq import SEQ2SEQ, Seq2seqExample, TargetSide
from taskmix.tasks.base import SplitSource, Task
from taskmix.tasks.custom import TABLE_FORMATS, CustomKind, CustomTaskSpec, register_custom_kind
from taskmix.tasks.document_sentences import corpus_sentences
from taskmix.tasks.readers import Column, Columns, TableReader
from taskmix.tasks.registry import register_task


def _lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read: {exc}", path) from exc


@dataclass(frozen=True)
class ParallelFiles:
    """A split as two line-aligned files: the split's path is the source side, the target file
    has the same stem and `target_suffix`; the output vocabulary is trained on `train_target`
    (a file name beside the split files)."""

    task: str
    target_suffix: str
    train_target: str
    scheme: Scheme

    def companions(self, path: Path) -> list[Path]:
        return [path.with_suffix(self.target_suffix), path.parent / self.train_target]

    def __call__(self, path: Path) -> list[Seq2seqExample]:
        target_path = path.with_suffix(self.target_suffix)
        if not target_path.is_file():
            raise DataError(f"target side {target_path.name} of this parallel split is missing", path)
        sources, targets = _lines(path), _lines(target_path)
        if len(sources) != len(targets):
            raise DataError(f"{len(sources)} source lines but {len(targets)} in {target_path.name}", path)
        side = TargetSide(self.task, OutputVocabulary(self.scheme, path.parent / self.train_target, _lines))
        return [Seq2seqExample(s, t, side, str(i)) for i, (s, t) in enumerate(zip(sources, targets))]


@dataclass(frozen=True)
class NextSentences:
    """Every pair of consecutive sentences inside a document: (sentence, the one after it).

    The output vocabulary is trained on the targets of `train_file` (beside the split file).
    """

    task: str
    train_file: str

    def companions(self, path: Path) -> list[Path]:
        return [path.parent / self.train_file]

    def targets(self, path: Path) -> list[str]:
        return [pair.target or "" for pair in self._pairs(path, None)]

    def _pairs(self, path: Path, side: TargetSide | None) -> list[Seq2seqExample]:
        return [Seq2seqExample(doc[i], doc[i + 1], side, f"{d}-{i}")  # type: ignore[arg-type]
                for d, doc in enumerate(corpus_sentences(path)) for i in range(len(doc) - 1)]

    def __call__(self, path: Path) -> list[Seq2seqExample]:
        side = TargetSide(self.task, OutputVocabulary("word", path.parent / self.train_file, self.targets))
        return self._pairs(path, side)


@dataclass(frozen=True)
class TableSeq2seq:
    """Source and target columns of a TSV, CSV or JSONL file (the target is optional when unlabelled).

    The output vocabulary is trained on the target column of `train_file`.  A relative
    `train_file` and the `declared` split files are relative to one folder (a custom task's
    YAML folder); that folder is found as the part of a split's path before its declared file.
    """

    task: str
    format: str
    source: Column
    target: Column
    uid: Column | None
    train_file: str
    declared: tuple[str, ...]
    scheme: Scheme
    labelled: bool = True
    header: bool = True

    def _table(self, labelled: bool) -> TableReader:
        columns = Columns(text_a=self.source, text_b=self.target if labelled else None, uid=self.uid)
        return TableReader(self.format, columns, header=self.header)  # type: ignore[arg-type]

    def _train_path(self, path: Path) -> Path:
        train = Path(self.train_file).expanduser()
        if train.is_absolute():
            return train
        for own in sorted(self.declared, key=lambda f: -len(Path(f).parts)):  # the longest match is the file
            parts = Path(own).parts
            if path.parts[-len(parts):] == parts:
                return path.parents[len(parts) - 1] / train
        return path.parent / train

    def companions(self, path: Path) -> list[Path]:
        return [self._train_path(path)]

    def targets(self, path: Path) -> list[str]:
        return [e.text_b or "" for e in self._table(True)(path)]

    def __call__(self, path: Path) -> list[Seq2seqExample]:
        side = TargetSide(self.task, OutputVocabulary(self.scheme, self._train_path(path), self.targets))
        return [Seq2seqExample(e.text_a, e.text_b, side, e.uid) for e in self._table(self.labelled)(path)]


# -- benchmark tasks -----------------------------------------------------------------------------

_MULTI30K = ParallelFiles("multi30k-en-de", ".de", "train.de", "bpe")
MULTI30K = register_task(Task(
    name="multi30k-en-de",
    kind=SEQ2SEQ,
    metrics=("bleu", "perplexity"),
    splits={
        "train": SplitSource("multi30k/train.en", _MULTI30K),
        "dev": SplitSource("multi30k/val.en", _MULTI30K),
        "test": SplitSource("multi30k/test_2016_flickr.en", _MULTI30K),
    },
    submission_files={"test": "multi30k-en-de.test_2016_flickr.de.txt"},
    description="Multi30k English->German translation (WMT16 multimodal task 1), BPE 20k target vocabulary",
    head_settings={"attention": False, "beam_size": 4},
))

# SkipThought and Reddit: attention helps (App. B); perplexity is their score, so decode greedily.
ATTENTION_GREEDY = {"attention": True, "beam_size": 1}
_SKIPTHOUGHT = NextSentences("skipthought", "wiki.valid.raw")
SKIPTHOUGHT = register_task(Task(
    name="skipthought",
    kind=SEQ2SEQ,
    metrics=("perplexity",),
    splits={
        "train": SplitSource("wikitext-2-raw/wiki.valid.raw", _SKIPTHOUGHT),
        "dev": SplitSource("wikitext-2-raw/wiki.test.raw", _SKIPTHOUGHT),
    },
    test_splits=(),
    description="SkipThought: generate the next sentence (WikiText-2 valid for training, test for dev)",
    head_settings=ATTENTION_GREEDY,
))

REDDIT_NOTE = ("Reddit comment-reply data (seed 001: pushshift.io, 2008-2011) is not available offline; "
               "put reddit/train.tsv, reddit/dev.tsv (header comment<TAB>reply) and optionally reddit/test.tsv "
               "in the data directory")


def _reddit(split: str) -> TableSeq2seq:
    return TableSeq2seq("reddit", "tsv", "comment", "reply", None, "train.tsv", ("train.tsv", "dev.tsv", "test.tsv"),
                        "word", split != "test")


REDDIT = register_task(Task(
    name="reddit",
    kind=SEQ2SEQ,
    metrics=("perplexity",),
    splits={
        "train": SplitSource("reddit/train.tsv", _reddit("train")),
        "dev": SplitSource("reddit/dev.tsv", _reddit("dev")),
        "test": SplitSource("reddit/test.tsv", _reddit("test")),
    },
    submission_files={"test": "reddit.test.txt"},
    description="Reddit: generate the reply to a comment (data not available offline)",
    data_note=REDDIT_NOTE,
    head_settings=ATTENTION_GREEDY,
))


# -- YAML custom tasks -------------------------------------------------------------------------


class Seq2seqColumns(BaseModel):
    """The `columns:` of a custom seq2seq task: source and target columns, plus the output vocabulary.

    `vocabulary`: `word` (20k word types, English generation) or `bpe` (20k BPE types,
    translation), trained on the train split's targets.  Decoding (attention, beam size)
    is set by the task's `head_settings`.
    """

    model_config = ConfigDict(extra="forbid")

    source: Column
    target: Column
    uid: Column | None = None
    vocabulary: Literal["word", "bpe"] = "bpe"


def custom_reader(spec: CustomTaskSpec, columns: BaseModel, fmt: str, labelled: bool) -> TableSeq2seq:
    assert isinstance(columns, Seq2seqColumns)
    used = [c for c in (columns.source, columns.target, columns.uid) if c is not None]
    if fmt == "jsonl" and any(isinstance(c, int) for c in used):
        raise ValueError("JSONL columns must be key names, not indices")
    if fmt != "jsonl" and not spec.header and any(isinstance(c, str) for c in used):
        raise ValueError("with header: false, columns must be 0-based field indices")
    return TableSeq2seq(spec.name, fmt, columns.source, columns.target, columns.uid, spec.splits["train"],
                        tuple(spec.splits.values()), columns.vocabulary, labelled, spec.header)


register_custom_kind("seq2seq", CustomKind(SEQ2SEQ, Seq2seqColumns, TABLE_FORMATS, custom_reader))
