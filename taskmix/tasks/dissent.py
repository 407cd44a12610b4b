"""DisSent (Nie et al. 2019; seed 001 §4): which discourse marker joined two clauses.

Seed 001 extracts clause pairs from WikiText-103 with dependency parses (Nie et al.'s
patterns, Stanford CoreNLP).  No parser is available offline, so the pairs here come from a
simpler, documented rule over WikiText-2 raw sentences (split as the pretraining corpus
reader splits them):

- a sentence qualifies when exactly one of its words is a marker of Nie et al.'s "ALL" set
  directly preceded by a comma (WikiText is tokenised, so the comma is its own word);
- S1 is the text before that comma, S2 the text after the marker without the sentence's
  final punctuation; both must have at least `MIN_WORDS` words;
- the label is the marker (lower-cased).  Sentence-initial markers (which relate to the
  previous sentence) and markers without a comma before them are not used, which keeps
  prepositional "after", "before" and "as" out at the cost of recall.

The input is the pair (S1, S2), a text-pair classification task.  WikiText-2's train file is
not staged, so the task trains on pairs from `wiki.valid.raw` and validates on `wiki.test.raw`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taskmix.kinds.classification import CLASSIFICATION
from taskmix.tasks.base import Example, SplitSource, Task
from taskmix.tasks.document_sentences import corpus_sentences
from taskmix.tasks.registry import register_task

# Nie et al. (2019), the "ALL" marker set (15 markers), alphabetical.
MARKERS = ("after", "also", "although", "and", "as", "because", "before", "but", "if", "so", "still", "then",
           "though", "when", "while")
MIN_WORDS = 4
FINAL_PUNCTUATION = {".", "!", "?", ";", ":"}


def extract_pair(sentence: str) -> tuple[str, str, str] | None:
    """(S1, S2, marker) of a sentence with exactly one comma-preceded marker, else None."""
    words = sentence.split()
    hits = [i for i in range(1, len(words)) if words[i - 1] == "," and words[i].lower() in MARKERS]
    if len(hits) != 1:
        return None
    at = hits[0]
    first, second = words[:at - 1], words[at + 1:]
    while second and second[-1] in FINAL_PUNCTUATION:
        second = second[:-1]
    if len(first) < MIN_WORDS or len(second) < MIN_WORDS:
        return None
    return " ".join(first), " ".join(second), words[at].lower()


@dataclass(frozen=True)
class DisSentReader:
    """Clause pairs of every sentence of a corpus file that `extract_pair` accepts."""

    VERSION = 1

    def __call__(self, path: Path) -> list[Example]:
        examples = []
        for d, document in enumerate(corpus_sentences(path)):
            for s, sentence in enumerate(document):
                pair = extract_pair(sentence)
                if pair is not None:
                    examples.append(Example(pair[0], pair[1], MARKERS.index(pair[2]), f"{d}-{s}"))
        return examples


DISSENT = register_task(Task(
    name="dissent",
    kind=CLASSIFICATION,
    metrics=("accuracy",),
    labels=MARKERS,
    splits={
        "train": SplitSource("wikitext-2-raw/wiki.valid.raw", DisSentReader()),
        "dev": SplitSource("wikitext-2-raw/wiki.test.raw", DisSentReader()),
    },
    test_splits=(),
    description="DisSent: the discourse marker between two clauses (WikiText-2, comma rule, 15 markers)",
))
