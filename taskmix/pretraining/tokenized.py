"""The tokenised corpus: flat token arrays with sentence and document bounds, cached on disk.

Tokenising and sentence-splitting a corpus is the slow part of building a pretraining task,
so it is done once per (corpus bytes, tokenizer, settings) and stored as memory-mapped
`.npy` files in a directory whose name is the hash of all three; any change gives a new key.
The directory is written under a temporary name and renamed, so a reader never sees half.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from taskmix.errors import ConfigError
from taskmix.pretraining import corpus as raw

CACHE_VERSION = 1
ARRAYS = ("ids", "caps", "word_starts", "sentence_bounds", "doc_bounds")


@dataclass(frozen=True)
class CorpusSettings:
    """How raw text becomes pretraining documents (seed 003, section 3.5)."""

    layout: raw.Layout = "auto"
    min_words: int = 10
    min_sentences: int = 4
    piece_tokens: int = 1024


@dataclass(frozen=True)
class TokenizedCorpus:
    """All tokens of the corpus in one array, with per-token flags kept from the raw text.

    `caps[i]` is 1 when token i starts with an upper-case character in the original text
    (the tokenizer may lower-case); `word_starts[i]` is 1 when token i begins a word.
    `sentence_bounds` has one entry per sentence plus one (token offsets);
    `doc_bounds` has one entry per document plus one (sentence offsets).
    """

    ids: np.ndarray
    caps: np.ndarray
    word_starts: np.ndarray
    sentence_bounds: np.ndarray
    doc_bounds: np.ndarray

    @property
    def num_documents(self) -> int:
        return len(self.doc_bounds) - 1

    def sentence_range(self, doc: int) -> tuple[int, int]:
        """First and one-past-last sentence index of a document."""
        return int(self.doc_bounds[doc]), int(self.doc_bounds[doc + 1])

    def token_span(self, first_sentence: int, end_sentence: int) -> tuple[int, int]:
        """Token offsets covering sentences [first_sentence, end_sentence)."""
        return int(self.sentence_bounds[first_sentence]), int(self.sentence_bounds[end_sentence])

    def span_length(self, first_sentence: int, end_sentence: int) -> int:
        """Number of tokens in sentences [first_sentence, end_sentence)."""
        return int(self.sentence_bounds[end_sentence] - self.sentence_bounds[first_sentence])

    def document_span(self, doc: int) -> tuple[int, int]:
        return self.token_span(*self.sentence_range(doc))


def tokenizer_fingerprint(tokenizer) -> str:
    """Identity of a tokenizer: its class and serialised pipeline (vocab included), not where it was loaded
    from, so the same tokenizer saved under another path shares the cache (as the task-split cache does)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"tokenizer '{tokenizer.name_or_path}': a fast tokenizer (with offsets) is required")
    pipeline = json.loads(tokenizer.backend_tokenizer.to_str())
    for state in ("truncation", "padding"):  # call-time settings, changed by every call
        pipeline.pop(state, None)
    spec = f"{type(tokenizer).__name__}|{json.dumps(pipeline, sort_keys=True)}"
    return hashlib.sha256(spec.encode()).hexdigest()


def cache_key(path: Path, tokenizer, settings: CorpusSettings) -> str:
    import pysbd

    digest = hashlib.sha256()
    digest.update(path.read_bytes())
    digest.update(tokenizer_fingerprint(tokenizer).encode())
    digest.update(json.dumps({**asdict(settings), "version": CACHE_VERSION, "pysbd": pysbd.__version__}).encode())
    return digest.hexdigest()[:24]


def default_cache_dir() -> Path:
    return Path(os.environ.get("TASKMIX_CACHE") or Path.home() / ".cache" / "taskmix") / "corpus"


_LOADED: dict[Path, TokenizedCorpus] = {}


def load_corpus(path: str | Path, tokenizer, settings: CorpusSettings = CorpusSettings(),
                cache_dir: str | Path | None = None) -> TokenizedCorpus:
    """The tokenised corpus for a file, built once and then read from the disk cache."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"corpus file not found: {path}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"{path.stem}-{cache_key(path, tokenizer, settings)}"
    if target not in _LOADED:
        if not (target / "meta.json").is_file():
            _write(target, tokenize_corpus(path, tokenizer, settings), path, settings)
        _LOADED[target] = TokenizedCorpus(**{n: np.load(target / f"{n}.npy", mmap_mode="r") for n in ARRAYS})
    return _LOADED[target]


def _write(target: Path, corpus: TokenizedCorpus, source: Path, settings: CorpusSettings) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
    for name in ARRAYS:
        np.save(staging / f"{name}.npy", getattr(corpus, name))
    meta = {"source": str(source), "settings": asdict(settings), "documents": corpus.num_documents}
    (staging / "meta.json").write_text(json.dumps(meta, indent=1))
    try:
        os.rename(staging, target)
    except OSError:  # another process finished the same cache first
        shutil.rmtree(staging, ignore_errors=True)


def tokenize_corpus(path: Path, tokenizer, settings: CorpusSettings) -> TokenizedCorpus:
    """Split, filter, tokenise and cut the documents of one file."""
    tokenizer_fingerprint(tokenizer)
    ids, caps, starts, sentence_lengths, doc_sizes = [], [], [], [], []
    for document in raw.read_documents(path, settings.layout):
        sentences = raw.document_sentences(document)
        if not sentences:
            continue
        encoded = tokenizer(sentences, add_special_tokens=False, return_offsets_mapping=True)
        kept = [i for i, tokens in enumerate(encoded["input_ids"]) if tokens]
        texts = [sentences[i] for i in kept]
        if not raw.keep_document(texts, settings.min_words, settings.min_sentences):
            continue
        lengths = [len(encoded["input_ids"][i]) for i in kept]
        for lo, hi in raw.split_long(lengths, settings.piece_tokens):
            if not raw.keep_document(texts[lo:hi], settings.min_words, settings.min_sentences):
                continue
            for i in kept[lo:hi]:
                ids.extend(encoded["input_ids"][i])
                caps.extend(sentences[i][a:b][:1].isupper() for a, b in encoded["offset_mapping"][i])
                words = encoded.word_ids(i)
                starts.extend(w is not None and (j == 0 or words[j - 1] != w) for j, w in enumerate(words))
                sentence_lengths.append(len(encoded["input_ids"][i]))
            doc_sizes.append(hi - lo)
    return TokenizedCorpus(
        ids=np.asarray(ids, dtype=np.int32),
        caps=np.asarray(caps, dtype=np.int8),
        word_starts=np.asarray(starts, dtype=np.int8),
        sentence_bounds=np.concatenate([[0], np.cumsum(sentence_lengths, dtype=np.int64)]),
        doc_bounds=np.concatenate([[0], np.cumsum(doc_sizes, dtype=np.int64)]),
    )
