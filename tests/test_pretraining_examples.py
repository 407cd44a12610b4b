"""Example construction of every pretraining task against its definition (seed 003 §3.2, seed 002 §3).

Most tests use a hand-built corpus whose sentences are made of distinct, recognisable ids:
sentence s of the corpus is the three ids 1000 + 10 * s + (0, 1, 2), so a run of text can be
read back as sentence numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from taskmix.models.encoder import load_tokenizer
from taskmix.pretraining import labels, perturb
from taskmix.pretraining.batching import IGNORE
from taskmix.pretraining.mlm import mask_tokens
from taskmix.pretraining.sentence_runs import Relation, Run, pair
from taskmix.pretraining.tasks import TASKS, PretrainingTask, DocumentSplit, TaskContext
from taskmix.pretraining.tokenized import TokenizedCorpus


def hand_corpus(doc_sizes: list[int]) -> TokenizedCorpus:
    """Documents of 3-token sentences; sentence s holds ids 1000 + 10 s + (0, 1, 2)."""
    count = sum(doc_sizes)
    ids = np.array([1000 + 10 * s + k for s in range(count) for k in range(3)], dtype=np.int32)
    return TokenizedCorpus(
        ids=ids,
        caps=np.zeros(len(ids), dtype=np.int8),
        word_starts=np.ones(len(ids), dtype=np.int8),
        sentence_bounds=np.arange(0, 3 * count + 1, 3),
        doc_bounds=np.concatenate([[0], np.cumsum(doc_sizes)]),
    )


def sentence_numbers(corpus: TokenizedCorpus, run: Run) -> list[int]:
    return list(range(run.first, run.end))


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --- token-level targets ---


def test_tf_counts_the_rest_of_the_document_rescaled_0_to_10():
    # ids 5 5 5 7 9 9: occurrences elsewhere in the document 2 2 2 0 1 1;
    # min 0 -> 0, max 2 -> 10, 1 -> 5.
    ids = np.array([5, 5, 5, 7, 9, 9])
    assert labels.term_frequency(ids).tolist() == [10, 10, 10, 0, 5, 5]
    assert labels.term_frequency(np.array([4, 4])).tolist() == [0, 0]  # all equal: no spread


def test_tf_idf_rescaled_per_document_reaches_0_and_10():
    # doc 0 = 5 5 7, doc 1 = 5 8 (one sentence each). N = 2; df(5) = 2, df(7) = df(8) = 1.
    # idf(5) = log(2/2) = 0, idf(7) = idf(8) = log 2.
    # doc 0: tf * idf = 2*0, 2*0, 1*log2 -> rescaled 0, 0, 10; doc 1: 0, log2 -> 0, 10.
    corpus = TokenizedCorpus(np.array([5, 5, 7, 5, 8], dtype=np.int32), np.zeros(5, np.int8), np.ones(5, np.int8),
                             np.array([0, 3, 5]), np.array([0, 1, 2]))
    idf = labels.inverse_document_frequency(corpus, [0, 1], vocab_size=10)
    assert idf[5] == 0 and idf[7] == pytest.approx(math.log(2))
    doc0 = labels.tf_idf(np.array([5, 5, 7]), idf)
    doc1 = labels.tf_idf(np.array([5, 8]), idf)
    assert doc0.tolist() == [0, 0, 10] and doc1.tolist() == [0, 10]
    for values in (doc0, doc1):
        assert values.min() == 0 and values.max() == 10


def test_token_length_of_wordpieces(tokenizer):
    # "gammarus" -> gamma ##rus: 5 and 3 characters ("##" is not text); [CLS] has no length.
    lengths = labels.wordpiece_lengths(tokenizer)
    ids = tokenizer.convert_tokens_to_ids(["gamma", "##rus", "the"])
    assert lengths[ids].tolist() == [5, 3, 3]
    assert lengths[tokenizer.cls_token_id] == IGNORE and lengths[tokenizer.unk_token_id] == IGNORE


def test_capitalisation_labels_come_from_the_raw_text(tokenizer, tmp_path):
    from taskmix.pretraining.tasks import build_pretraining_task

    path = tmp_path / "caps.txt"
    text = "The Cat sat in Paris today. It was Sunday then. We went home early. All of us did that."
    path.write_text(f"{text}\n\n{text}\n\n{text}\n\n{text}\n")
    task = build_pretraining_task("cap", path, tokenizer, max_len=64, cache_dir=tmp_path / "cache")
    batch = next(task.dev_batches(1))
    # [CLS] the cat sat in paris today . it was sunday then . ... : The, Cat, Paris, It, Sunday, We, All.
    assert batch["labels"][0, :14].tolist() == [IGNORE, 1, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1]


# --- corruption, trigram shuffling, word swaps ---


def test_trigram_order_classes():
    # 3! = 6 orders; class c shows original positions TRIGRAM_ORDERS[c]: class 4 = (2, 0, 1)
    # turns [a, b, c] into [c, a, b].
    assert perturb.TRIGRAM_ORDERS == ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
    a, b, c = 10, 11, 12
    assert [np.array([a, b, c])[p] for p in perturb.TRIGRAM_ORDERS[4]] == [c, a, b]


def test_trigram_shuffle_labels_name_the_order_applied(rng):
    ids = np.arange(100, 107)  # trigrams start at 0 and 3; position 6 has no full trigram
    new, orders = perturb.shuffle_trigrams(ids, rate=1.0, rng=rng)
    assert np.flatnonzero(orders != IGNORE).tolist() == [0, 3]
    for start in (0, 3):
        assert new[start:start + 3].tolist() == ids[start + np.array(perturb.TRIGRAM_ORDERS[orders[start]])].tolist()
    assert new[6] == 106


def test_token_corruption_labels(rng):
    ids = np.arange(2000, 2020)  # 20 tokens, rate 0.1 -> 2 tokens corrupted
    vocab = np.arange(3000, 4000)
    replaced, flags = perturb.corrupt(ids, "replace", 0.1, vocab, rng)
    assert flags.sum() == 2 and (replaced != ids).tolist() == flags.astype(bool).tolist()
    inserted, flags = perturb.corrupt(ids, "insert", 0.1, vocab, rng)
    assert len(inserted) == 22 and flags.sum() == 2
    assert inserted[flags == 0].tolist() == ids.tolist()  # removing the flagged tokens restores the text
    permuted, flags = perturb.corrupt(ids, "permute", 0.1, vocab, rng)
    assert sorted(permuted.tolist()) == ids.tolist() and flags.sum() == 2  # two tokens trade places
    assert (permuted != ids).tolist() == flags.astype(bool).tolist()


def test_real_fake_swaps_exactly_k_pairs_of_words(rng):
    # 12 one-piece words plus a two-piece word (ids 50, 51) at the end.
    ids = np.array(list(range(10, 22)) + [50, 51])
    starts = np.array([1] * 12 + [1, 0])
    wordlike = np.ones(100, dtype=bool)
    for pairs in (2, 3, 4):
        fake = perturb.swap_words(ids, starts, wordlike, pairs, rng)
        words_before = [tuple(w) for w in np.split(ids, np.flatnonzero(starts)[1:])]
        # Regroup the fake at the first pieces of the original words (all ids are unique).
        words_after = [tuple(w) for w in np.split(fake, np.flatnonzero(np.isin(fake, [w[0] for w in words_before]))[1:])]
        assert sorted(words_after) == sorted(words_before)  # same words, pieces kept together
        moved = [i for i, (x, y) in enumerate(zip(words_before, words_after)) if x != y]
        assert len(moved) == 2 * pairs
    assert perturb.swap_words(ids[:5], starts[:5], wordlike, 3, rng) is None  # 5 words < 6


# --- sentence pairs: NSP / ASP / SO / SDP ---


def test_asp_three_cases(rng):
    corpus = hand_corpus([6, 4])  # doc 0: sentences 0-5, doc 1: sentences 6-9
    anchor = Run(0, 2, 3)
    # A budget of 3 tokens holds exactly one sentence.
    a, b = pair(corpus, [0, 1], anchor, Relation.NEXT, 3, rng)  # class 0: B follows A
    assert (sentence_numbers(corpus, a), sentence_numbers(corpus, b)) == ([2], [3])
    a, b = pair(corpus, [0, 1], anchor, Relation.PREVIOUS, 3, rng)  # class 1: B precedes A
    assert (sentence_numbers(corpus, a), sentence_numbers(corpus, b)) == ([3], [2])
    a, b = pair(corpus, [0, 1], anchor, Relation.OTHER_DOCUMENT, 3, rng)  # class 2: other document
    assert sentence_numbers(corpus, a) == [2] and b.doc == 1 and 6 <= b.first < 10
    assert [r for r, _ in TASKS["asp"].relations] == [Relation.NEXT, Relation.PREVIOUS, Relation.OTHER_DOCUMENT]
    # At the last sentence there is nothing after A: the pair moves back one sentence.
    a, b = pair(corpus, [0, 1], Run(0, 5, 6), Relation.NEXT, 3, rng)
    assert (sentence_numbers(corpus, a), sentence_numbers(corpus, b)) == ([4], [5])


def test_sdp_classes(rng):
    corpus = hand_corpus([6, 4])
    assert [r for r, _ in TASKS["sdp"].relations] == [Relation.NEXT, Relation.NON_ADJACENT, Relation.OTHER_DOCUMENT]
    # Non-adjacent with A = sentence 2: B may start at 4 or 5 (after a gap of sentence 3)
    # or end before sentence 1, i.e. be sentence 0.  Never 1, 2 or 3.
    seen = set()
    for _ in range(200):
        a, b = pair(corpus, [0, 1], Run(0, 2, 3), Relation.NON_ADJACENT, 3, rng)
        assert sentence_numbers(corpus, a) == [2] and b.doc == 0
        seen.update(sentence_numbers(corpus, b))
    assert seen == {0, 4, 5}


def test_pair_batches_and_class_balance(tokenizer):
    corpus = hand_corpus([6, 6, 6, 6])
    ctx = TaskContext(DocumentSplit(corpus, [0, 1, 2, 3]), DocumentSplit(corpus, [0, 1]), tokenizer, max_len=9)
    task = PretrainingTask(TASKS["so"], ctx)
    batch = next(task.train_batches(4, seed=0))
    # budget (9 - 3) // 2 = 3 tokens per side: [CLS] A(3) [SEP] B(3) [SEP]
    assert batch["token_type_ids"][0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    for row, label in zip(batch["input_ids"], batch["labels"]):
        first, second = (row[1].item() - 1000) // 10, (row[5].item() - 1000) // 10
        assert second - first == (1 if label == 0 else -1)  # SO: in order, or swapped
    labels_seen = [int(x) for seed in range(40) for b in task.train_batches(4, seed) for x in b["labels"]]
    assert abs(np.mean(labels_seen) - 0.5) < 0.1


# --- in-batch continuation (QT, FS) ---


def test_qt_targets_inside_a_batch(tokenizer):
    corpus = hand_corpus([6, 6])
    ctx = TaskContext(DocumentSplit(corpus, [0, 1]), DocumentSplit(corpus, [0, 1]), tokenizer, max_len=5)
    batch = next(PretrainingTask(TASKS["qt"], ctx).train_batches(6, seed=3))
    # 3 pairs: rows 0-2 are first halves, rows 3-5 their continuations; target of row i is i.
    assert batch["labels"].tolist() == [0, 1, 2, IGNORE, IGNORE, IGNORE]
    sentence = (batch["input_ids"][:, 1] - 1000) // 10
    assert (sentence[3:] - sentence[:3]).tolist() == [1, 1, 1]


def test_fs_targets_are_the_text_tokens(tokenizer):
    corpus = hand_corpus([6, 6])
    ctx = TaskContext(DocumentSplit(corpus, [0, 1]), DocumentSplit(corpus, [0, 1]), tokenizer, max_len=5)
    batch = next(PretrainingTask(TASKS["fs"], ctx).dev_batches(2))
    # [CLS] t t t [SEP]: only the three text tokens are scored against 1.0.
    assert batch["labels"].tolist() == [[IGNORE, 1.0, 1.0, 1.0, IGNORE]] * 2


# --- sentence corruption and Real/Fake labels through their tasks ---


def test_scp_label_says_whether_anything_changed(tokenizer):
    corpus = hand_corpus([6, 6, 6])
    ctx = TaskContext(DocumentSplit(corpus, [0, 1, 2]), DocumentSplit(corpus, [0, 1]), tokenizer, max_len=11)
    labels_seen = []
    for batch in PretrainingTask(TASKS["scp"], ctx).train_batches(4, seed=1):
        for row, label in zip(batch["input_ids"], batch["labels"]):
            text = row[1: int(batch["attention_mask"][len(labels_seen) % 4].sum()) - 1].numpy()
            # Hand-corpus ids are unique: id 1000 + 10 s + k sits at position 3 s + k.
            position = (text[0] - 1000) // 10 * 3 + (text[0] - 1000) % 10
            untouched = text.tolist() == corpus.ids[position: position + len(text)].tolist()
            assert untouched == (label == 0)
            labels_seen.append(int(label))
    assert 0 < sum(labels_seen) < len(labels_seen)


def test_real_fake_task_is_balanced(tokenizer, tmp_path):
    from taskmix.pretraining.tasks import build_pretraining_task

    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    sentences = [" ".join(np.roll(words, k)) + "." for k in range(6)]
    path = tmp_path / "rf.txt"
    path.write_text("\n\n".join(" ".join(sentences) for _ in range(4)) + "\n")
    task = build_pretraining_task("real_fake", path, tokenizer, max_len=32, cache_dir=tmp_path / "cache")
    labels_seen = torch.cat([b["labels"] for seed in range(5) for b in task.train_batches(8, seed)])
    assert abs(labels_seen.float().mean().item() - 0.5) < 0.15
    batch = next(task.train_batches(16, 0))
    for row, label in zip(batch["input_ids"], batch["labels"]):
        text = tokenizer.decode(row, skip_special_tokens=True).replace(" .", ".")
        assert (text in sentences) == (label == 0)  # a fake is never one of the real sentences


# --- dynamic MLM masking ---


def test_mlm_masking_statistics():
    generator = torch.Generator().manual_seed(0)
    rows, width, mask_id = 400, 120, 103
    vocab = torch.arange(1000, 30000)
    ids = torch.randint(1000, 30000, (rows, width), generator=generator)
    maskable = torch.ones(rows, width, dtype=torch.bool)
    maskable[:, 0] = maskable[:, -1] = False  # [CLS] and [SEP]
    maskable[::2, 100:] = False  # padding on every other row
    masked, labels = mask_tokens(ids, maskable, mask_id, vocab, generator)
    chosen = labels != IGNORE
    assert not (chosen & ~maskable).any()
    # Exactly round(0.15 * n) per row: n = 118 -> 18, n = 99 -> 15.
    assert chosen.sum(1)[1::2].eq(18).all() and chosen.sum(1)[::2].eq(15).all()
    assert (labels[chosen] == ids[chosen]).all()
    total = chosen.sum().item()
    as_mask = (masked[chosen] == mask_id).sum().item() / total
    unchanged = (masked[chosen] == ids[chosen]).sum().item() / total
    random = 1 - as_mask - unchanged
    assert abs(as_mask - 0.8) < 0.02 and abs(random - 0.1) < 0.015 and abs(unchanged - 0.1) < 0.015
    assert (masked[~chosen] == ids[~chosen]).all()
    again, labels_again = mask_tokens(ids, maskable, mask_id, vocab, generator)
    assert not torch.equal(labels, labels_again)  # re-drawn on every call
