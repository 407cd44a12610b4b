"""Shared by the kinds whose examples are one text or a text pair (classification, regression).

Their features are a `TokenizedSplit` and their head reads the pooled vector, so the two
kinds differ only in labels, metrics and baselines.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from taskmix.kinds.base import TaskKind
from taskmix.training.features import TokenizedSplit, tokenize_texts


class TextKind(TaskKind):
    """A kind over `Example`s with `text_a` and an optional `text_b`."""

    def featurize(self, examples: Sequence[Any], tokenizer, max_length: int) -> TokenizedSplit:
        pairs = bool(examples) and examples[0].text_b is not None
        return tokenize_texts([e.text_a for e in examples], [e.text_b for e in examples] if pairs else None,
                              self.label_array([e.label for e in examples]), [e.uid for e in examples],
                              tokenizer, max_length)

    def load_features(self, arrays: Mapping[str, np.ndarray], uids: list[str]) -> TokenizedSplit:
        return TokenizedSplit(uids=uids, **arrays)

    def concatenate(self, parts: list[TokenizedSplit]) -> TokenizedSplit:
        return TokenizedSplit.concatenate(parts)
