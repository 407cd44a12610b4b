"""A word-level fast tokenizer over a word-vector vocabulary, fed by the Moses tokenizer.

Seed 000 App. B tokenises the inputs of non-BERT encoders with Moses and keeps 40 tokens
per sentence.  The engine needs a fast Hugging Face tokenizer (pairs, truncation, sequence
ids, offsets), so Moses runs in Python first and hands its words to a `tokenizers`
word-level backend as pre-split input; the backend lower-cases (GloVe 6B is uncased),
maps unknown words to [UNK] and adds the special tokens.  Single texts become
`[CLS] words [SEP]`, pairs `[CLS] a [SEP] b [SEP]` with the second segment marked as
sequence 1, so batches carry the segment boundary the encoder and pair heads need.
Offsets point into the original text.

One departure from plain Moses: it splits "isn't" into "isn 't", but GloVe 6B's vocabulary
(built with the Stanford tokenizer) has "is n't" and no "'t", so a word ending in "n"
followed by "'t" is re-split the Penn Treebank way ("ca n't", "wo n't").
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import sacremoses
from tokenizers import Tokenizer, models, normalizers, processors
from transformers import PreTrainedTokenizerFast

from taskmix.cache import digest
from taskmix.models.word_vectors import load_vectors

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
Span = tuple[int, int]


MOSES = sacremoses.MosesTokenizer(lang="en")


def moses_words(text: str, max_words: int) -> tuple[list[str], list[Span]]:
    """The first `max_words` Moses tokens of `text` and their character spans in it."""
    words = MOSES.tokenize(text, escape=False)
    spans: list[Span] = []
    position = 0
    for word in words:
        start = text.find(word, position)
        # Moses keeps the characters with escape=False; a word it did change points at the gap instead
        spans.append((start, start + len(word)) if start >= 0 else (position, position))
        position = spans[-1][1]
    words, spans = penn_negations(words, spans)
    return words[:max_words], spans[:max_words]


def penn_negations(words: list[str], spans: list[Span]) -> tuple[list[str], list[Span]]:
    """Re-split Moses's "isn 't" as "is n't" (the GloVe 6B vocabulary has "n't" but not "'t")."""
    out_words: list[str] = []
    out_spans: list[Span] = []
    for word, span in zip(words, spans):
        previous = out_words[-1] if out_words else ""
        if word.lower() == "'t" and len(previous) > 1 and previous[-1] in "nN" and out_spans[-1][1] == span[0]:
            start = out_spans[-1][0]
            out_words[-1], out_spans[-1] = previous[:-1], (start, span[0] - 1)
            word, span = previous[-1] + word, (span[0] - 1, span[1])
        out_words.append(word)
        out_spans.append(span)
    return out_words, out_spans


class MosesWordTokenizer(PreTrainedTokenizerFast):
    """A fast word-level tokenizer that runs Moses (and the word cut) before its backend.

    `identity` is what `tokenizer_fingerprint` hashes: the Python-side step's settings and the
    backend's vocabulary and template, given by the builder, since serialising a 400k-word
    backend to hash it takes seconds.
    """

    def __init__(self, *args: Any, identity: dict[str, Any], max_words: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_words = max_words
        self.identity = {"class": type(self).__name__, "moses": "en", "sacremoses": sacremoses.__version__,
                         "max_words": max_words, "negations": "penn", **identity}

    def _encode_plus(self, text, text_pair=None, *, is_split_into_words: bool = False,
                     return_offsets_mapping: bool = False, **kwargs: Any):
        if is_split_into_words:  # already words: no Moses, no cut
            return super()._encode_plus(text, text_pair, is_split_into_words=True,
                                        return_offsets_mapping=return_offsets_mapping, **kwargs)
        batched = not isinstance(text, str)
        firsts = [moses_words(t, self.max_words) for t in (text if batched else [text])]
        seconds = None
        if text_pair is not None:
            seconds = [moses_words(t, self.max_words) for t in (text_pair if batched else [text_pair])]
        encoded = super()._encode_plus(
            [w for w, _ in firsts] if batched else firsts[0][0],
            None if seconds is None else ([w for w, _ in seconds] if batched else seconds[0][0]),
            is_split_into_words=True, return_offsets_mapping=return_offsets_mapping, **kwargs)
        if return_offsets_mapping:
            spans = [(a, None if seconds is None else seconds[i][1]) for i, (_, a) in enumerate(firsts)]
            text_offsets(encoded, spans, batched)
        return encoded


def text_offsets(encoded, spans: Sequence[tuple[list[Span], list[Span] | None]], batched: bool) -> None:
    """Replace the backend's per-word offsets with each word's span in its original text (special tokens: (0, 0))."""
    rows = []
    for i, (first, second) in enumerate(spans):
        encoding = encoded.encodings[i]
        by_sequence = (first, second)
        rows.append([(0, 0) if word is None or sequence is None else by_sequence[sequence][word]
                     for word, sequence in zip(encoding.word_ids, encoding.sequence_ids)])
    current = encoded["offset_mapping"]
    if hasattr(current, "new_tensor"):  # return_tensors="pt": rows were padded to one length
        width = current.shape[-2]
        padded = [row + [(0, 0)] * (width - len(row)) for row in rows]
        encoded["offset_mapping"] = current.new_tensor(padded if batched else padded[0])
    else:
        encoded["offset_mapping"] = rows if batched else rows[0]


@functools.lru_cache(maxsize=None)
def word_tokenizer(vectors: str, max_words: int) -> MosesWordTokenizer:
    """The tokenizer over a vectors package's vocabulary: the special tokens take ids 0-3 and word i
    (matrix row i) id i + 4.  Built once per process (about a second for 400k words)."""
    table = load_vectors(vectors)
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    vocab.update((word, i + len(SPECIAL_TOKENS)) for i, word in enumerate(table.words))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    if table.lowercase:
        backend.normalizer = normalizers.Lowercase()
    template = {"single": "[CLS] $A [SEP]", "pair": "[CLS] $A [SEP] $B:1 [SEP]:1"}
    backend.post_processor = processors.TemplateProcessing(
        **template, special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    identity = {"vocabulary": digest("\n".join(SPECIAL_TOKENS + table.words)), "lowercase": table.lowercase,
                "template": template}
    return MosesWordTokenizer(tokenizer_object=backend, identity=identity, max_words=max_words, pad_token="[PAD]",
                              unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")
