"""Raw text -> documents of sentences, filtered and split as the pretraining corpus needs.

Two layouts are read: WikiText (a ` = Title = ` line opens an article, ` = = Section = = `
lines are headings inside it) and plain text (a blank line ends a document).  Headings are
dropped, as the pretraining recipe ignores headers, and sentences never cross a paragraph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from taskmix.errors import DataError

Layout = Literal["auto", "wikitext", "plain"]

ARTICLE_TITLE = re.compile(r"^ = (?!=)(.+) = $")
HEADING = re.compile(r"^ (= )+.*( =)+ $")
# WikiText writes in-number hyphens and separators as ` @-@ `, ` @,@ `, ` @.@ `; undo them so
# sentence splitting and capitalisation see ordinary text.
WIKITEXT_JOINERS = re.compile(r" @([-,.])@ ")


@dataclass(frozen=True)
class RawDocument:
    """One document before sentence splitting: a title (may be empty) and its paragraphs."""

    title: str
    paragraphs: tuple[str, ...]


def detect_layout(lines: list[str]) -> Literal["wikitext", "plain"]:
    """WikiText if any line is an article title, else plain text."""
    return "wikitext" if any(ARTICLE_TITLE.match(line) for line in lines) else "plain"


def read_documents(path: str | Path, layout: Layout = "auto") -> list[RawDocument]:
    """Read a corpus file into documents (no sentence splitting yet)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read corpus: {exc}", path) from exc
    chosen = detect_layout(lines) if layout == "auto" else layout
    if chosen == "wikitext":
        return _read_wikitext(lines)
    if chosen == "plain":
        return _read_plain(lines)
    raise DataError(f"unknown corpus layout '{layout}' (expected auto, wikitext or plain)", path)


def _read_wikitext(lines: list[str]) -> list[RawDocument]:
    documents: list[RawDocument] = []
    title, paragraphs = "", []
    for line in lines:
        match = ARTICLE_TITLE.match(line)
        if match:
            if title or paragraphs:
                documents.append(RawDocument(title, tuple(paragraphs)))
            title, paragraphs = match.group(1), []
        elif line.strip() and not HEADING.match(line):
            paragraphs.append(WIKITEXT_JOINERS.sub(r"\1", line).strip())
    if title or paragraphs:
        documents.append(RawDocument(title, tuple(paragraphs)))
    return documents


def _read_plain(lines: list[str]) -> list[RawDocument]:
    """Blank lines end documents; the lines of one document form one paragraph (hard wraps)."""
    documents: list[RawDocument] = []
    block: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            block.append(line.strip())
        elif block:
            documents.append(RawDocument("", (" ".join(block),)))
            block = []
    return documents


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph (pysbd's rule-based English segmenter; works offline)."""
    return [s.strip() for s in _segmenter().segment(paragraph) if s.strip()]


def document_sentences(document: RawDocument) -> list[str]:
    """All sentences of a document in order; a sentence never spans two paragraphs."""
    return [s for paragraph in document.paragraphs for s in split_sentences(paragraph)]


def keep_document(sentences: list[str], min_words: int = 10, min_sentences: int = 4) -> bool:
    """The pretraining filter: drop documents with too few words or too few sentences."""
    words = sum(len(s.split()) for s in sentences)
    return words >= min_words and len(sentences) >= min_sentences


def split_long(lengths: list[int], piece_tokens: int = 1024) -> list[tuple[int, int]]:
    """Cut a document (its sentence token lengths) into pieces of about `piece_tokens` tokens.

    Cuts fall on sentence boundaries. The number of pieces is ceil(total / piece_tokens) and
    each piece closes once it reaches the even share total / pieces, so pieces come out of
    similar size rather than leaving a short remainder at the end.  Returns sentence ranges.
    """
    total = sum(lengths)
    pieces = max(1, -(-total // piece_tokens))
    share = total / pieces
    ranges, start, filled = [], 0, 0
    for index, length in enumerate(lengths):
        filled += length
        if filled >= share * (len(ranges) + 1) and len(ranges) < pieces - 1:
            ranges.append((start, index + 1))
            start = index + 1
    if start < len(lengths):
        ranges.append((start, len(lengths)))
    return ranges
