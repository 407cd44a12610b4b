"""Corpus reading, the section 3.5 filter, long-document splitting and the token cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from taskmix.models.encoder import load_tokenizer
from taskmix.pretraining import corpus as raw
from taskmix.pretraining.tokenized import CorpusSettings, load_corpus

WIKI = """ 
 = First Article = 
 
 Alpha is a letter . It has a shape @-@ like form . 
 
 = = History = = 
 
 It came from Greece in 1 @,@ 000 BC . 
 = Second Article = 
 
 Beta follows alpha . 
"""


def test_wikitext_valid_has_60_articles(data_dir: Path):
    documents = raw.read_documents(data_dir / "wikitext-2-raw" / "wiki.valid.raw")
    assert len(documents) == 60
    assert documents[0].title == "Homarus gammarus"


def test_wikitext_titles_headings_and_joiners(tmp_path: Path):
    path = tmp_path / "wiki.raw"
    path.write_text(WIKI)
    first, second = raw.read_documents(path)
    assert (first.title, second.title) == ("First Article", "Second Article")
    # The ` = = History = = ` heading is dropped; ` @-@ ` and ` @,@ ` become `-` and `,`.
    assert first.paragraphs == ("Alpha is a letter . It has a shape-like form .", "It came from Greece in 1,000 BC .")
    assert second.paragraphs == ("Beta follows alpha .",)


def test_plain_text_blank_line_separates_documents(tmp_path: Path):
    path = tmp_path / "plain.txt"
    path.write_text("One line.\nwrapped here.\n\n\nSecond doc.\n")
    documents = raw.read_documents(path)
    assert [d.paragraphs for d in documents] == [("One line. wrapped here.",), ("Second doc.",)]


def test_filter_words_and_sentences():
    four = ["One two three.", "Four five.", "Six seven.", "Eight nine ten."]  # 10 words, 4 sentences
    assert raw.keep_document(four)
    assert not raw.keep_document(four[:3])  # 3 sentences
    assert not raw.keep_document(["A.", "B.", "C.", "D e f g h i."])  # 4 sentences, 9 words


def test_split_long_even_pieces_at_sentence_boundaries():
    # 2500 tokens -> ceil(2500 / 1024) = 3 pieces, each closing at >= 833.3 cumulative tokens.
    lengths = [500] * 5
    assert raw.split_long(lengths, 1024) == [(0, 2), (2, 4), (4, 5)]
    assert raw.split_long([100, 200], 1024) == [(0, 2)]


TEXT = """The Cat sat on the mat. It was a Sunny day. Birds sang in Paris. Nobody minded at all.

Short doc. Too few.

Rivers run to the sea. The sea is Wide. Ships sail on it. Fish swim below them.
"""


def test_tokenised_cache_filters_and_keeps_flags(tmp_path: Path):
    tokenizer = load_tokenizer("minilm")
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    corpus = load_corpus(path, tokenizer, CorpusSettings(), tmp_path / "cache")
    assert corpus.num_documents == 2  # "Short doc. Too few." has 2 sentences and 4 words
    assert len(corpus.sentence_bounds) - 1 == 8
    first = corpus.token_span(0, 1)
    pieces = tokenizer.convert_ids_to_tokens(corpus.ids[slice(*first)].tolist())
    assert pieces == ["the", "cat", "sat", "on", "the", "mat", "."]
    # "The Cat": both capitalised in the raw text although the tokenizer lower-cases.
    assert corpus.caps[slice(*first)].tolist() == [1, 1, 0, 0, 0, 0, 0]
    assert corpus.word_starts[slice(*first)].tolist() == [1] * 7
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()
    # Same file, tokenizer and settings: same cache entry; other settings: a new one.
    load_corpus(path, tokenizer, CorpusSettings(), tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 1
    looser = load_corpus(path, tokenizer, CorpusSettings(min_sentences=2, min_words=4), tmp_path / "cache")
    assert looser.num_documents == 3
    path.write_text(TEXT + "\nA new doc here. With four sentences. Really it has. Yes indeed four.\n")
    assert load_corpus(path, tokenizer, CorpusSettings(), tmp_path / "cache").num_documents == 3
    assert len(list((tmp_path / "cache").iterdir())) == 3


def test_the_same_tokenizer_from_another_path_shares_the_cache(tmp_path: Path, tiny_encoder: Path):
    """The tiny encoder's directory holds MiniLM's tokenizer: its corpus cache entry is MiniLM's."""
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    load_corpus(path, load_tokenizer("minilm"), CorpusSettings(), tmp_path / "cache")
    load_corpus(path, load_tokenizer(str(tiny_encoder)), CorpusSettings(), tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_missing_corpus_is_a_clear_error(tmp_path: Path):
    from taskmix.errors import ConfigError

    with pytest.raises(ConfigError, match="corpus file not found"):
        load_corpus(tmp_path / "nope.txt", load_tokenizer("minilm"))


def test_long_documents_are_cut(tmp_path: Path):
    tokenizer = load_tokenizer("minilm")
    sentence = "This sentence has exactly ten word pieces in it ."  # 10 tokens
    path = tmp_path / "long.txt"
    path.write_text(" ".join([sentence] * 30) + "\n")  # 300 tokens, 30 sentences
    corpus = load_corpus(path, tokenizer, CorpusSettings(piece_tokens=100), tmp_path / "cache")
    sizes = np.diff(corpus.doc_bounds).tolist()
    assert sizes == [10, 10, 10]  # 3 pieces of 100 tokens, cut between sentences
