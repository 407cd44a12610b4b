"""Per-token regression targets of the word-importance tasks (TF, TF-IDF, TLP).

Targets are computed over a whole document and then cut to the window a model sees, because
the paper defines TF and TF-IDF relative to the document and rescales them per document.
"""

from __future__ import annotations

import numpy as np

from taskmix.models.heads import IGNORE
from taskmix.pretraining.tokenized import TokenizedCorpus

SCALE = 10.0


def rescale(values: np.ndarray) -> np.ndarray:
    """Min-max rescale to [0, 10] within one document (all zeros when every value is equal)."""
    values = values.astype(np.float64)
    if values.size == 0 or values.max() == values.min():
        return np.zeros(values.shape, dtype=np.float32)
    low, high = values.min(), values.max()
    return (SCALE * (values - low) / (high - low)).astype(np.float32)


def _counts(ids: np.ndarray) -> np.ndarray:
    """How often each token's id occurs in the document, per token."""
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return counts[inverse]


def term_frequency(ids: np.ndarray) -> np.ndarray:
    """TF target: occurrences of the token in the *rest* of the document (count - 1), rescaled."""
    return rescale(_counts(ids) - 1)


def tf_idf(ids: np.ndarray, idf: np.ndarray) -> np.ndarray:
    """TF-IDF target: count in the document times the corpus idf of the id, rescaled."""
    return rescale(_counts(ids) * idf[ids])


def inverse_document_frequency(corpus: TokenizedCorpus, documents: list[int], vocab_size: int) -> np.ndarray:
    """idf(t) = log(N / df(t)) over the given documents; ids never seen count as df = 1."""
    df = np.zeros(vocab_size, dtype=np.int64)
    for doc in documents:
        lo, hi = corpus.document_span(doc)
        df[np.unique(corpus.ids[lo:hi])] += 1
    return np.log(max(len(documents), 1) / np.maximum(df, 1)).astype(np.float64)


def wordpiece_lengths(tokenizer) -> np.ndarray:
    """TLP target per vocabulary id: characters of the WordPiece without its `##` marker.

    Special and unknown tokens get IGNORE: their written form is not a piece of text.
    """
    lengths = np.full(len(tokenizer), IGNORE, dtype=np.float32)
    special = set(tokenizer.all_special_ids)
    for token, index in tokenizer.get_vocab().items():
        if index not in special and index < len(lengths):
            lengths[index] = len(token.removeprefix("##"))
    return lengths
