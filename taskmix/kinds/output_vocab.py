"""Output vocabularies of generation tasks: trained on a task's training targets, cached on disk.

Seed 001 (App. B) decodes English generation tasks over a word-level vocabulary of 20,000
types and translation over a BPE vocabulary of 20,000 types; the decoder's embeddings are
its own, not the encoder's.  Both are trained here with the `tokenizers` library on the
target texts of the task's training split and stored as one `tokenizer.json` under
`$TASKMIX_CACHE/vocab/<key>`, the key hashing the scheme, the size and the contents
(sha256) of the training file, so another data file trains another vocabulary.

Word level splits on whitespace and punctuation (`tokenizers`' `Whitespace`, a stand-in for
the Moses tokenizer the paper names) and decodes by joining words with spaces; BPE uses a
`Metaspace` pre-tokenizer, so decoding restores the original spacing.  Ids 0-3 are the
special tokens below in both schemes; the vocabulary size includes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from taskmix.cache import atomic_directory, cache_root, digest, file_digest

Scheme = Literal["word", "bpe"]
PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
VOCAB_SIZE = 20_000  # seed 001, App. B: both the word-level and the BPE output vocabularies
VERSION = 1  # raise when training or pre-tokenisation changes, so cached vocabularies retrain


@dataclass(frozen=True)
class OutputVocabulary:
    """A generation task's target vocabulary: how to train it and on which file.

    `read_targets` returns the target texts of the training split (the task's own reader);
    the vocabulary is trained on them once per file contents.
    """

    scheme: Scheme
    train_file: Path
    read_targets: Callable[[Path], list[str]] = field(compare=False)
    size: int = VOCAB_SIZE

    def cache_key(self) -> str:
        return digest([VERSION, self.scheme, self.size, file_digest(self.train_file)], 24)

    def load(self):
        """The trained `tokenizers.Tokenizer` (trained and cached on first use)."""
        from tokenizers import Tokenizer

        folder = cache_root("vocab") / self.cache_key()
        path = folder / "tokenizer.json"
        if not path.is_file():
            tokenizer = train_vocabulary(self.scheme, self.read_targets(self.train_file), self.size)
            with atomic_directory(folder) as staging:
                tokenizer.save(str(staging / "tokenizer.json"))
        return Tokenizer.from_file(str(path))


def train_vocabulary(scheme: Scheme, texts: list[str], size: int = VOCAB_SIZE):
    """A word-level or BPE tokenizer of at most `size` types (specials included) trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if scheme == "word":
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(vocab_size=size, special_tokens=list(SPECIALS), show_progress=False)
    elif scheme == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=list(SPECIALS), show_progress=False)
    else:
        raise ValueError(f"unknown output vocabulary scheme {scheme!r} (expected word or bpe)")
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def decode(tokenizer, ids) -> str:
    """Text of generated ids (specials dropped): words joined by spaces, BPE pieces re-spaced.

    The decoder has `VOCAB_SIZE` outputs; a vocabulary trained on little text has fewer types,
    and an id past its end (which training never targets) reads as [UNK].
    """
    size = tokenizer.get_vocab_size()
    ids = [int(i) if int(i) < size else UNK_ID for i in ids]
    ids = [i for i in ids if i >= len(SPECIALS) or i == UNK_ID]
    if tokenizer.decoder is None:
        return " ".join(tokenizer.id_to_token(i) for i in ids)
    return tokenizer.decode(ids)
