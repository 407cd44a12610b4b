"""Documents of sentences from a corpus file, split as the pretraining corpus reader splits them.

SkipThought and DisSent read WikiText through the corpus reader (`taskmix.pretraining.corpus`:
articles, headings dropped, pysbd sentences inside paragraphs).  Sentence splitting takes
tens of seconds per WikiText-2 file, and `taskmix tasks`, the output vocabulary and every
split read it, so the result is cached on disk keyed by the file's contents.
"""

from __future__ import annotations

import json
from pathlib import Path

from taskmix.cache import atomic_directory, cache_root, digest, file_digest
from taskmix.pretraining.corpus import document_sentences, read_documents

VERSION = 1


def corpus_sentences(path: Path) -> list[list[str]]:
    """The sentences of every document of `path`, in order."""
    folder = cache_root("sentences") / digest([VERSION, file_digest(path)], 24)
    cached = folder / "sentences.json"
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    documents = [document_sentences(d) for d in read_documents(path)]
    with atomic_directory(folder) as staging:
        (staging / "sentences.json").write_text(json.dumps(documents), encoding="utf-8")
    return documents
