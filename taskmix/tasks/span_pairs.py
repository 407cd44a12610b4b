"""SuperGLUE's span-pair tasks: WSC (does the pronoun refer to the noun phrase?) and WiC (same word sense?).

Both are read from SuperGLUE JSONL (train/val/test as our train/dev/test, test unlabelled,
submissions `WSC.jsonl` / `WiC.jsonl` with JSON booleans) or from the hub, whose rows
have the same fields (WSC's `target` fields are top-level there).

WiC marks its target word by character offsets (`start1`/`end1` in sentence 1,
`start2`/`end2` in sentence 2), used as they are.  WSC marks the noun phrase (span 1) and
the pronoun (span 2) by the index of their first whitespace-separated word plus their
text.  The staged release (the official one) has quirks, so a span text is located by
these rules, in order:

1. Words are compared without case, without surrounding punctuation and without a
   possessive 's: "the lawyer" matches "The lawyer", "him" matches `him,"`, "Emma" matches
   "Emma's", "the tape." matches "the tape".  Whitespace inside a span text (one has a
   newline) separates words like any other.
2. The whole span text at its word index; else one word before or after it (validation
   row idx 42 points at "use" for the "it" that follows).
3. Else the first word of the span text at the index or next to it: the span names
   several people mentioned apart ("Kamenev and Zinoviev", test rows idx 80-82), and the
   span becomes the first one's mention.

Anything else is a DataError naming the file and line.  The character span runs from the
first matched word's core to the end of the last one's, so it excludes the punctuation
and possessives rule 1 ignores.

A YAML custom task of `kind: span_pair` reads JSONL rows that give both spans as
character offsets (`SpanPairColumns`, example in examples/span_pair_custom_task.yaml).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from taskmix.errors import DataError
from taskmix.kinds.span_pair import SPAN_PAIR, CharSpan, SpanPairExample
from taskmix.tasks.base import SUPERGLUE, HubSource, SplitSource, Task
from taskmix.tasks.loading import HUB_NO_LABEL
from taskmix.tasks.custom import CustomKind, CustomTaskSpec, register_custom_kind
from taskmix.tasks.readers import jsonl_rows
from taskmix.tasks.registry import register_task
from taskmix.tasks.superglue import BOOLEAN, SUPERGLUE_FILES, SUPERGLUE_HUB, SUPERGLUE_HUB_SPLITS

PUNCTUATION = "\"'`.,;:!?()[]{}“”‘’"
POSSESSIVES = ("'s", "’s")

# (row, label index or None, uid) -> example; raises KeyError/ValueError/TypeError on a bad row.
RowBuilder = Callable[[Mapping[str, Any], Any, str], SpanPairExample]


def _core(word: str) -> tuple[int, str]:
    """A word without surrounding punctuation and possessive 's, and where that core starts in it."""
    lead = len(word) - len(word.lstrip(PUNCTUATION))
    core = word.strip(PUNCTUATION)
    for suffix in POSSESSIVES:
        if core.lower().endswith(suffix) and len(core) > len(suffix):
            core = core[: -len(suffix)]
    return lead, core


def _match(words: Sequence[re.Match], start: int, wanted: Sequence[str]) -> CharSpan | None:
    """The character span of `wanted` (lower-cased cores) as the words from `start`, or None."""
    if start < 0 or start + len(wanted) > len(words):
        return None
    cores = [_core(w.group()) for w in words[start:start + len(wanted)]]
    if [core.lower() for _, core in cores] != list(wanted):
        return None
    (first_lead, _), (last_lead, last_core) = cores[0], cores[-1]
    last = words[start + len(wanted) - 1]
    return CharSpan(words[start].start() + first_lead, last.start() + last_lead + len(last_core))


def locate_words(text: str, index: int, span_text: str) -> CharSpan:
    """The characters of `span_text` given as starting at whitespace word `index` (rules in the module docstring)."""
    words = list(re.finditer(r"\S+", text))
    wanted = [_core(w)[1].lower() for w in span_text.split()]
    if not wanted:
        raise ValueError("span text is empty")
    for phrase in (wanted, wanted[:1]):
        for start in (index, index - 1, index + 1):
            found = _match(words, start, phrase)
            if found is not None and found.end > found.start:
                return found
    at = repr(words[index].group()) if 0 <= index < len(words) else f"none: the text has {len(words)} words"
    raise ValueError(f"span text {span_text!r} is not at word {index} ({at}) nor next to it")


def wsc_example(text: str, target: Mapping[str, Any], label: Any, uid: str) -> SpanPairExample:
    """A WSC example from its text and the four target fields (nested in files, top-level on the hub)."""
    spans = []
    for k in (1, 2):
        try:
            spans.append(locate_words(text, int(target[f"span{k}_index"]), str(target[f"span{k}_text"])))
        except ValueError as error:
            raise ValueError(f"span{k}: {error}") from None
    return SpanPairExample(text_a=text, text_b=None, span1=spans[0], span2=spans[1], label=label, uid=uid)


def wsc_row(row: Mapping[str, Any], label: Any, uid: str) -> SpanPairExample:
    if not isinstance(row["target"], Mapping):
        raise ValueError(f"target should be an object, got {row['target']!r}")
    return wsc_example(row["text"], row["target"], label, uid)


def wsc_hub_row(row: Mapping[str, Any], label: Any, uid: str) -> SpanPairExample:
    return wsc_example(row["text"], row, label, uid)


def offset(row: Mapping[str, Any], key: str) -> int:
    """A character offset cell: a JSON integer."""
    value = row[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"field {key!r} should be a character offset (an integer), got {value!r}")
    return value


@dataclass(frozen=True)
class OffsetSpans:
    """Builds an example from text columns and four character-offset columns.

    Span 1 lies in `text_a`; span 2 in `text_b` when there is one (a word in each sentence,
    as in WiC), else in `text_a` too (two mentions in one text, as in WSC).
    """

    text_a: str
    text_b: str | None
    span1: tuple[str, str]
    span2: tuple[str, str]

    def __call__(self, row: Mapping[str, Any], label: Any, uid: str) -> SpanPairExample:
        texts = [row[self.text_a]] + ([] if self.text_b is None else [row[self.text_b]])
        for key, text in zip((self.text_a, self.text_b), texts):
            if not isinstance(text, str):
                raise ValueError(f"field {key!r} should be text, got {text!r}")
        second = len(texts) - 1
        return SpanPairExample(text_a=texts[0], text_b=texts[1] if second else None,
                               span1=CharSpan(offset(row, self.span1[0]), offset(row, self.span1[1]), 0),
                               span2=CharSpan(offset(row, self.span2[0]), offset(row, self.span2[1]), second),
                               label=label, uid=uid)


# WiC's target word in both sentences (the same fields in files and on the hub).
wic_row = OffsetSpans("sentence1", "sentence2", ("start1", "end1"), ("start2", "end2"))


@dataclass(frozen=True)
class SpanPairJsonl:
    """A JSONL split read row by row with `build`; `labelled=False` for a test split.

    `uid` is the id key (None: the 0-based row number); labels are parsed against `labels`
    (JSON booleans read as "True"/"False").
    """

    build: RowBuilder
    labelled: bool = True
    labels: tuple[str, ...] = BOOLEAN
    label: str = "label"
    uid: str | None = "idx"

    def __call__(self, path: Path) -> list[SpanPairExample]:
        examples = []
        for position, (line, row) in enumerate(jsonl_rows(path)):
            try:
                label = SPAN_PAIR.parse_label(str(row[self.label]), self.labels) if self.labelled else None
                examples.append(self.build(row, label, str(position if self.uid is None else row[self.uid])))
            except KeyError as missing:
                raise DataError(f"row has no field {missing}", path, line) from None
            except (TypeError, ValueError) as error:
                raise DataError(str(error), path, line) from None
        return examples


def hub_rows(build: RowBuilder) -> Callable[[Mapping[str, Any], bool], SpanPairExample | None]:
    """The hub-row hook of a span-pair task: the hub's label index and idx, then the task's row builder.

    The hub marks rows without a label by -1; such a row of a labelled split is skipped.
    """

    def read(row: Mapping[str, Any], labelled: bool) -> SpanPairExample | None:
        label = int(row["label"]) if labelled else None
        if label == HUB_NO_LABEL:
            return None
        return build(row, label, str(row["idx"]))

    return read


def span_pair_task(name: str, folder: str, build: RowBuilder, hub_build: RowBuilder, submission: str,
                   description: str) -> Task:
    splits = {split: SplitSource(f"superglue/{folder}/{file}", SpanPairJsonl(build, labelled=split != "test"))
              for split, file in SUPERGLUE_FILES.items()}
    return Task(
        name=name,
        kind=SPAN_PAIR,
        metrics=("accuracy",),
        splits=splits,
        labels=BOOLEAN,
        submission_files={"test": submission},
        hub=HubSource(SUPERGLUE_HUB, folder, SUPERGLUE_HUB_SPLITS, row=hub_rows(hub_build)),
        benchmark=SUPERGLUE,
        description=description,
    )


WSC = register_task(span_pair_task(
    "wsc", "wsc", wsc_row, wsc_hub_row, "WSC.jsonl",
    description="Winograd Schema Challenge (SuperGLUE): does the pronoun refer to the noun phrase",
))
WIC = register_task(span_pair_task(
    "wic", "wic", wic_row, wic_row, "WiC.jsonl",
    description="WiC: is the marked word used in the same sense in two sentences",
))


# -- custom YAML tasks of kind span_pair: JSONL rows with character offsets -------------------


class SpanPairColumns(BaseModel):
    """JSON keys of a span_pair custom task: text(s), each span's character offsets [start, end), label, id."""

    model_config = ConfigDict(extra="forbid")

    text_a: str
    text_b: str | None = None
    span1_start: str
    span1_end: str
    span2_start: str
    span2_end: str
    label: str
    uid: str | None = None


def custom_span_reader(spec: CustomTaskSpec, columns: BaseModel, fmt: str, labelled: bool) -> SpanPairJsonl:
    """The JSONL reader of one split of a span_pair custom task (span placement as `OffsetSpans`)."""
    assert isinstance(columns, SpanPairColumns)
    build = OffsetSpans(columns.text_a, columns.text_b, (columns.span1_start, columns.span1_end),
                        (columns.span2_start, columns.span2_end))
    return SpanPairJsonl(build, labelled, tuple(spec.labels or ()), columns.label, columns.uid)


register_custom_kind("span_pair", CustomKind(SPAN_PAIR, SpanPairColumns, {".jsonl": "jsonl"}, custom_span_reader))
