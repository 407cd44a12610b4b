"""Ways of damaging a token sequence that the corruption, shuffling and Real/Fake tasks detect.

Each function takes the token ids of one window and returns new ids plus the labels that
say what was changed, so the task definitions only decide when to call them.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np

from taskmix.models.heads import IGNORE

CORRUPTIONS = ("insert", "replace", "permute")
# Trigram orders of TGS: class c shows original positions TRIGRAM_ORDERS[c], e.g. class 4
# (2, 0, 1) turns [a, b, c] into [c, a, b]. Class 0 is the unshuffled order.
TRIGRAM_ORDERS = tuple(permutations(range(3)))


def ordinary_ids(tokenizer) -> np.ndarray:
    """Vocabulary ids usable as random replacements: not special, not `[unusedN]` placeholders."""
    special = set(tokenizer.all_special_ids)
    return np.array(sorted(i for t, i in tokenizer.get_vocab().items()
                           if i not in special and not (t.startswith("[") and t.endswith("]"))), dtype=np.int64)


def corrupt(ids: np.ndarray, kind: str, rate: float, vocab: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt about `rate` of the tokens by one kind; returns new ids and 0/1 flags per token.

    insert: a random token goes in before each chosen position (the new token is flagged);
    replace: each chosen token becomes a different random token;
    permute: the chosen tokens are rotated one step among their positions (every moved token
    whose id changed is flagged).  At least one token (two for permute) is chosen.
    """
    n = len(ids)
    count = min(n, max(2 if kind == "permute" else 1, round(rate * n)))
    chosen = np.sort(rng.choice(n, size=count, replace=False))
    if kind == "insert":
        new = np.insert(ids, chosen, rng.choice(vocab, size=count))
        flags = np.zeros(len(new), dtype=np.int64)
        flags[chosen + np.arange(count)] = 1
        return new, flags
    new = ids.copy()
    if kind == "replace":
        replacement = rng.choice(vocab, size=count)
        clash = replacement == ids[chosen]
        replacement[clash] = vocab[(np.searchsorted(vocab, replacement[clash]) + 1) % len(vocab)]
        new[chosen] = replacement
    elif kind == "permute":
        new[chosen] = ids[np.roll(chosen, 1)]
    else:
        raise ValueError(f"unknown corruption '{kind}'")
    return new, (new != ids).astype(np.int64)


def shuffle_trigrams(ids: np.ndarray, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """TGS: tile the window into trigrams, reorder a `rate` share of them by a random order class.

    The label (the order class, 0-5) sits on the first position of each chosen trigram and
    IGNORE elsewhere.  At least one trigram is chosen when the window has one.
    """
    new, labels = ids.copy(), np.full(len(ids), IGNORE, dtype=np.int64)
    starts = np.arange(0, len(ids) - 2, 3)
    if len(starts) == 0:
        return new, labels
    chosen = starts[rng.random(len(starts)) < rate]
    if len(chosen) == 0:
        chosen = rng.choice(starts, size=1)
    for start in chosen:
        order = int(rng.integers(len(TRIGRAM_ORDERS)))
        new[start:start + 3] = ids[start + np.array(TRIGRAM_ORDERS[order])]
        labels[start] = order
    return new, labels


def swap_words(ids: np.ndarray, word_starts: np.ndarray, wordlike: np.ndarray, pairs: int,
               rng: np.random.Generator, attempts: int = 8) -> np.ndarray | None:
    """Real/Fake: swap `pairs` disjoint pairs of words; None if the sentence has too few words.

    A word is a run of WordPieces opened by a word start; only words with a letter or digit
    (`wordlike[id]`) are swapped, and the two words of a pair must differ, so exactly
    `pairs` visible swaps are made.
    """
    bounds = [0, *(np.flatnonzero(word_starts[1:]) + 1).tolist(), len(ids)]
    words = [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    eligible = [i for i, w in enumerate(words) if wordlike[w].any()]
    if len(eligible) < 2 * pairs:
        return None
    for _ in range(attempts):
        picked = rng.choice(eligible, size=2 * pairs, replace=False).reshape(pairs, 2)
        if all(not np.array_equal(words[a], words[b]) for a, b in picked):
            for a, b in picked:
                words[a], words[b] = words[b], words[a]
            return np.concatenate(words)
    return None
