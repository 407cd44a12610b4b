"""The pretraining tasks of seed 003 (MLM + 14 auxiliary tasks), Real/Fake (seed 002) and seed 001's LMs, by name.

Each task is one line in `TASKS`: a family (window, pair, continuation, sentence) plus what
is particular to it.  `build_pretraining_task` binds a definition to a tokenised corpus and
returns the object the engine trains: name, head kind, outputs, metric and batch iterators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from taskmix.errors import ConfigError
from taskmix.models.heads import IGNORE
from taskmix.pretraining import heads as _heads  # noqa: F401  (registers the head kinds)
from taskmix.pretraining import labels, perturb
from taskmix.pretraining.batching import Example, collate
from taskmix.pretraining.metrics import ACCURACY, CROSS_ENTROPY, MSE, PERPLEXITY, Metric
from taskmix.pretraining.mlm import MASK_RATE, mask_tokens
from taskmix.pretraining.sentence_runs import Relation, Run, pair, tokens, windows
from taskmix.pretraining.tokenized import CorpusSettings, TokenizedCorpus, load_corpus

FAKE_PAIRS = (2, 3, 4)  # Real/Fake: a fake sentence has 2-4 pairs of words swapped
# Output classes of the language models' softmax (option `lm_vocab`): the most frequent ids of
# the training corpus plus [CLS]/[SEP]; every other id shares one last class.  Seed 001 does not
# give its LM softmax size; 20k matches its generation vocabularies (App. B) and keeps a word-level
# encoder's softmax (GloVe: 400k types) affordable.  Perplexities are over these classes.
LM_VOCAB = 20_000


@dataclass(frozen=True)
class DocumentSplit:
    """The documents of a corpus that one side (train or dev) of a pretraining task draws from."""

    corpus: TokenizedCorpus
    docs: list[int]


@dataclass
class TaskContext:
    """A corpus split in train/dev plus the tokenizer facts the tasks need."""

    train: DocumentSplit
    dev: DocumentSplit
    tokenizer: Any
    max_len: int
    with_mlm: bool = False
    mask_rate: float = MASK_RATE
    corrupt_rate: float = 0.1
    shuffle_rate: float = 0.15
    corrupt_prob: float = 0.5
    lm_vocab: float = LM_VOCAB

    @cached_property
    def lm_classes(self) -> np.ndarray:
        """Per tokenizer id, its class in the LM softmax (see LM_VOCAB); the last class is "any other id"."""
        if self.lm_vocab < 2 or self.lm_vocab != int(self.lm_vocab):
            raise ConfigError(f"lm_vocab must be a whole number of at least 2, got {self.lm_vocab}")
        corpus = self.train.corpus
        ids = [np.asarray(corpus.ids[slice(*corpus.document_span(d))], dtype=np.int64) for d in self.train.docs]
        counts = np.bincount(np.concatenate(ids), minlength=len(self.tokenizer))
        counts[[self.tokenizer.cls_token_id, self.tokenizer.sep_token_id]] = np.iinfo(np.int64).max
        frequent = np.argsort(-counts, kind="stable")[: int(self.lm_vocab) - 1]
        frequent = frequent[counts[frequent] > 0]
        classes = np.full(len(self.tokenizer), len(frequent), dtype=np.int64)
        classes[frequent] = np.arange(len(frequent))
        return classes

    @cached_property
    def vocab(self) -> np.ndarray:
        return perturb.ordinary_ids(self.tokenizer)

    @cached_property
    def special_ids(self) -> torch.Tensor:
        return torch.tensor(sorted(self.tokenizer.all_special_ids))

    @cached_property
    def idf(self) -> np.ndarray:
        return labels.inverse_document_frequency(self.train.corpus, self.train.docs, len(self.tokenizer))

    @cached_property
    def piece_lengths(self) -> np.ndarray:
        return labels.wordpiece_lengths(self.tokenizer)

    @cached_property
    def wordlike(self) -> np.ndarray:
        """Per vocabulary id: does the piece contain a letter or digit."""
        table = np.zeros(len(self.tokenizer), dtype=bool)
        for token, index in self.tokenizer.get_vocab().items():
            table[index] = any(ch.isalnum() for ch in token.removeprefix("##"))
        table[list(self.tokenizer.all_special_ids)] = False
        return table


# --- window tasks: one run of sentences, optionally changed, with token or sentence labels ---

WindowBuilder = Callable[[TaskContext, DocumentSplit, Run, np.ndarray, int, np.random.Generator], Example]


def plain(ctx, split, run, ids, lo, rng) -> Example:
    return Example([ids])


def document_labels(target: Callable[[TaskContext, np.ndarray], np.ndarray]) -> WindowBuilder:
    """Token labels computed over the whole document, then cut to the window."""

    def build(ctx, split, run, ids, lo, rng) -> Example:
        doc_lo, doc_hi = split.corpus.document_span(run.doc)
        values = target(ctx, np.asarray(split.corpus.ids[doc_lo:doc_hi], dtype=np.int64))
        return Example([ids], [values[lo - doc_lo: lo - doc_lo + len(ids)]])

    return build


def capitalised(ctx, split, run, ids, lo, rng) -> Example:
    return Example([ids], [np.asarray(split.corpus.caps[lo: lo + len(ids)], dtype=np.int64)])


def piece_length(ctx, split, run, ids, lo, rng) -> Example:
    return Example([ids], [ctx.piece_lengths[ids]])


def corrupted_tokens(ctx, split, run, ids, lo, rng) -> Example:
    """TCP: every window is corrupted by one kind; each token says whether it was changed."""
    new, flags = perturb.corrupt(ids, rng.choice(perturb.CORRUPTIONS), ctx.corrupt_rate, ctx.vocab, rng)
    return Example([new], [flags], protected=[flags.astype(bool)])


def corrupted_sentence(ctx, split, run, ids, lo, rng) -> Example:
    """SCP: half of the windows are corrupted; the label is 1 when any token changed."""
    if rng.random() >= ctx.corrupt_prob:
        return Example([ids], label=0)
    new, flags = perturb.corrupt(ids, rng.choice(perturb.CORRUPTIONS), ctx.corrupt_rate, ctx.vocab, rng)
    return Example([new], label=int(flags.any()), protected=[flags.astype(bool)])


def shuffled_trigrams(ctx, split, run, ids, lo, rng) -> Example:
    new, orders = perturb.shuffle_trigrams(ids, ctx.shuffle_rate, rng)
    starts = np.flatnonzero(orders != IGNORE)
    moved = np.zeros(len(ids), dtype=bool)
    moved[(starts[:, None] + np.arange(3)).ravel()] = True
    return Example([new], [orders], protected=[moved])


# --- definitions ---


@dataclass(frozen=True)
class TaskDefinition:
    """What every family shares: the name, head, metric and dynamic MLM masking at batch time.

    `mask_key` names the label tensor masking writes (MLM: `mlm_labels`, SBO: `labels`);
    with `with_mlm` every task also carries `mlm_labels`, so MLM can be summed on the same
    input as the auxiliary loss (the paper's MLM + auxiliary setting).
    """

    name: str
    head_kind: str
    metric: Metric
    rows_per_anchor = 1
    mask_key: str | None = None

    def num_outputs(self, ctx: TaskContext) -> int:
        raise NotImplementedError

    def anchors(self, ctx: TaskContext, split: DocumentSplit) -> list:
        raise NotImplementedError

    def make(self, ctx: TaskContext, split: DocumentSplit, anchor, rng: np.random.Generator) -> list[Example]:
        raise NotImplementedError

    def finish(self, ctx: TaskContext, batch: dict, protected: torch.Tensor, generator: torch.Generator) -> None:
        key = self.mask_key or ("mlm_labels" if ctx.with_mlm else None)
        if key is None:
            return
        ids = batch["input_ids"]
        maskable = batch["attention_mask"].bool() & ~torch.isin(ids, ctx.special_ids) & ~protected
        batch["input_ids"], batch[key] = mask_tokens(ids, maskable, ctx.tokenizer.mask_token_id,
                                                    torch.from_numpy(ctx.vocab), generator, ctx.mask_rate)
        if ctx.with_mlm:
            batch["mlm_labels"] = batch[key]


@dataclass(frozen=True)
class WindowTask(TaskDefinition):
    """One run of whole sentences filling the input (token-level tasks, MLM, SCP)."""

    outputs: int = 0  # 0: the vocabulary size
    build: WindowBuilder = plain

    def num_outputs(self, ctx):
        return self.outputs or len(ctx.tokenizer)

    def anchors(self, ctx, split):
        return windows(split.corpus, split.docs, ctx.max_len - 2)

    def make(self, ctx, split, anchor, rng):
        lo, _ = split.corpus.token_span(anchor.first, anchor.end)
        return [self.build(ctx, split, anchor, tokens(split.corpus, anchor)[: ctx.max_len - 2], lo, rng)]


@dataclass(frozen=True)
class LanguageModelTask(WindowTask):
    """Window rows whose LM targets are classes of the LM softmax (`lm_ids`, see LM_VOCAB)."""

    def num_outputs(self, ctx):
        return int(ctx.lm_classes.max()) + 1

    def finish(self, ctx, batch, protected, generator):
        super().finish(ctx, batch, protected, generator)
        batch["lm_ids"] = torch.from_numpy(ctx.lm_classes)[batch["input_ids"]]


@dataclass(frozen=True)
class PairTask(TaskDefinition):
    """Two runs A, B as [CLS] A [SEP] B [SEP]; the class is the index of B's relation to A."""

    relations: tuple[tuple[Relation, float], ...] = ()

    def num_outputs(self, ctx):
        return len(self.relations)

    def anchors(self, ctx, split):
        return windows(split.corpus, split.docs, ctx.max_len - 3)

    def make(self, ctx, split, anchor, rng):
        label = int(rng.choice(len(self.relations), p=[p for _, p in self.relations]))
        a, b = pair(split.corpus, split.docs, anchor, self.relations[label][0], (ctx.max_len - 3) // 2, rng)
        return [Example([tokens(split.corpus, a), tokens(split.corpus, b)], label=label)]


def continuation_index(batch: dict) -> torch.Tensor:
    """QT targets: row i < n continues as row n + i, i.e. candidate i of the second half."""
    half = batch["input_ids"].shape[0] // 2
    return torch.cat([torch.arange(half), torch.full((half,), IGNORE)])


def content_tokens(batch: dict) -> torch.Tensor:
    """FS targets: 1.0 at every text token (not [CLS], [SEP] or padding), -100 elsewhere."""
    text = batch["attention_mask"].bool() & (torch.arange(batch["input_ids"].shape[1]) > 0)
    last = batch["attention_mask"].sum(dim=1, keepdim=True) - 1
    text &= torch.arange(batch["input_ids"].shape[1]) != last
    return torch.where(text, 1.0, float(IGNORE))


@dataclass(frozen=True)
class ContinuationTask(TaskDefinition):
    """QT / FS batches: the first half holds runs, the second half the run after each one."""

    rows_per_anchor = 2
    target: Callable[[dict], torch.Tensor] = continuation_index

    def num_outputs(self, ctx):
        return 1

    def anchors(self, ctx, split):
        return windows(split.corpus, split.docs, ctx.max_len - 2)

    def make(self, ctx, split, anchor, rng):
        runs = pair(split.corpus, split.docs, anchor, Relation.NEXT, ctx.max_len - 2, rng)
        return [Example([tokens(split.corpus, run)]) for run in runs]

    def finish(self, ctx, batch, protected, generator):
        batch["labels"] = self.target(batch)
        super().finish(ctx, batch, protected, generator)


@dataclass(frozen=True)
class RealFakeTask(TaskDefinition):
    """Seed 002: one sentence, real or with 2-4 pairs of its words swapped (label 1 = fake), 50/50.

    Only sentences with enough words for four swaps are used, so sentence length tells
    nothing about the label.  A sentence whose drawn words keep pairing identical words
    (see `swap_words`) stays real; that is rare and only shifts the balance slightly.
    """

    def num_outputs(self, ctx):
        return 2

    def anchors(self, ctx, split):
        corpus, needed = split.corpus, 2 * max(FAKE_PAIRS)
        sentences = [s for d in split.docs for s in range(*corpus.sentence_range(d))]
        return [s for s in sentences if self._words(ctx, corpus, s) >= needed]

    @staticmethod
    def _words(ctx, corpus, sentence: int) -> int:
        lo, hi = corpus.token_span(sentence, sentence + 1)
        word = np.cumsum(corpus.word_starts[lo:hi])
        return len(np.unique(word[ctx.wordlike[corpus.ids[lo:hi]]]))

    def make(self, ctx, split, anchor, rng):
        lo, hi = split.corpus.token_span(anchor, anchor + 1)
        hi = min(hi, lo + ctx.max_len - 2)
        ids = np.asarray(split.corpus.ids[lo:hi], dtype=np.int64)
        if rng.random() < 0.5:
            fake = perturb.swap_words(ids, split.corpus.word_starts[lo:hi], ctx.wordlike,
                                      int(rng.choice(FAKE_PAIRS)), rng)
            if fake is not None:
                return [Example([fake], label=1)]
        return [Example([ids], label=0)]


def _tf(ctx, ids):
    return labels.term_frequency(ids)


def _tf_idf(ctx, ids):
    return labels.tf_idf(ids, ctx.idf)


THIRD = 1 / 3
# Seed 003, section 3.2, in the paper's order after MLM, then seed 001's LMs; the list index is the task id.
DEFINITIONS: tuple[TaskDefinition, ...] = (
    WindowTask("mlm", "masked_lm", PERPLEXITY, mask_key="mlm_labels"),
    WindowTask("tf", "token_regression", MSE, outputs=1, build=document_labels(_tf)),
    WindowTask("tf_idf", "token_regression", MSE, outputs=1, build=document_labels(_tf_idf)),
    WindowTask("sbo", "span_boundary", PERPLEXITY, mask_key="labels"),
    WindowTask("tgs", "trigram_order", ACCURACY, outputs=len(perturb.TRIGRAM_ORDERS), build=shuffled_trigrams),
    WindowTask("tcp", "token_classification", ACCURACY, outputs=2, build=corrupted_tokens),
    WindowTask("cap", "token_classification", ACCURACY, outputs=2, build=capitalised),
    WindowTask("tlp", "token_regression", MSE, outputs=1, build=piece_length),
    PairTask("nsp", "classification", ACCURACY, relations=((Relation.NEXT, 0.5), (Relation.OTHER_DOCUMENT, 0.5))),
    PairTask("asp", "classification", ACCURACY,
             relations=((Relation.NEXT, THIRD), (Relation.PREVIOUS, THIRD), (Relation.OTHER_DOCUMENT, THIRD))),
    PairTask("so", "classification", ACCURACY, relations=((Relation.NEXT, 0.5), (Relation.PREVIOUS, 0.5))),
    PairTask("sdp", "classification", ACCURACY,
             relations=((Relation.NEXT, 0.5), (Relation.NON_ADJACENT, 0.25), (Relation.OTHER_DOCUMENT, 0.25))),
    WindowTask("scp", "classification", ACCURACY, outputs=2, build=corrupted_sentence),
    ContinuationTask("qt", "quick_thoughts", ACCURACY, target=continuation_index),
    ContinuationTask("fs", "fastsent", CROSS_ENTROPY, target=content_tokens),
    RealFakeTask("real_fake", "classification", ACCURACY),
    # seed 001's language modelling (appended, so the ids above keep their values)
    LanguageModelTask("lm", "bidirectional_lm", PERPLEXITY),
    LanguageModelTask("lm_forward", "forward_lm", PERPLEXITY),
)
TASKS: dict[str, TaskDefinition] = {d.name: d for d in DEFINITIONS}
TASK_IDS: dict[str, int] = {d.name: i for i, d in enumerate(DEFINITIONS)}


@dataclass
class PretrainingTask:
    """What the engine trains: `train_batches` is one shuffled epoch, `dev_batches` a fixed pass."""

    definition: TaskDefinition
    context: TaskContext
    name: str = field(init=False)
    head_kind: str = field(init=False)
    metric: Metric = field(init=False)
    num_outputs: int = field(init=False)
    task_id: int = field(init=False)

    def __post_init__(self):
        self.name = self.definition.name
        self.head_kind = self.definition.head_kind
        self.metric = self.definition.metric
        self.num_outputs = self.definition.num_outputs(self.context)
        self.task_id = TASK_IDS[self.name]

    def train_batches(self, batch_size: int, seed: int) -> Iterator[dict[str, torch.Tensor]]:
        return self._batches(self.context.train, batch_size, seed, shuffle=True)

    def dev_batches(self, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        return self._batches(self.context.dev, batch_size, seed=0, shuffle=False)

    def _batches(self, split: DocumentSplit, batch_size: int, seed: int, shuffle: bool):
        rows = self.definition.rows_per_anchor
        if batch_size < rows or batch_size % rows:
            raise ConfigError(f"task '{self.name}': batch size {batch_size} must be a multiple of {rows}")
        rng = np.random.default_rng(seed)
        generator = torch.Generator().manual_seed(seed)
        anchors = self.definition.anchors(self.context, split)
        order = rng.permutation(len(anchors)) if shuffle else np.arange(len(anchors))
        per_batch = batch_size // rows
        tokenizer = self.context.tokenizer
        for start in range(0, len(order), per_batch):
            made = [self.definition.make(self.context, split, anchors[i], rng) for i in order[start:start + per_batch]]
            examples = [row[k] for k in range(rows) for row in made]
            batch, protected = collate(examples, self.context.max_len, tokenizer.cls_token_id,
                                       tokenizer.sep_token_id, tokenizer.pad_token_id)
            self.definition.finish(self.context, batch, protected, generator)
            yield batch


OPTIONS = ("with_mlm", "mask_rate", "corrupt_rate", "shuffle_rate", "corrupt_prob", "lm_vocab")


def build_pretraining_task(name: str, corpus_path: str | Path, tokenizer, max_len: int = 128, *,
                           dev_path: str | Path | None = None, dev_fraction: float = 0.05,
                           cache_dir: str | Path | None = None, settings: CorpusSettings = CorpusSettings(),
                           **options) -> PretrainingTask:
    """A pretraining task by name on a corpus file (train) and a dev file or held-out share.

    `tokenizer` is a tokenizer object or an encoder name.  Without `dev_path`, a fixed
    `dev_fraction` of the documents (chosen by a seeded shuffle) is held out for dev.
    Options: with_mlm, mask_rate, corrupt_rate, shuffle_rate, corrupt_prob, lm_vocab.
    """
    if name not in TASKS:
        raise ConfigError(f"unknown pretraining task '{name}'; known: {', '.join(TASKS)}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"pretraining task '{name}': unknown option(s) {', '.join(unknown)}")
    if isinstance(tokenizer, str):
        from taskmix.models.encoder import load_tokenizer

        tokenizer = load_tokenizer(tokenizer)
    train_corpus = load_corpus(corpus_path, tokenizer, settings, cache_dir)
    docs = list(range(train_corpus.num_documents))
    if dev_path is not None:
        dev_corpus = load_corpus(dev_path, tokenizer, settings, cache_dir)
        train, dev = DocumentSplit(train_corpus, docs), DocumentSplit(dev_corpus, list(range(dev_corpus.num_documents)))
    else:
        held = set(np.random.default_rng(0).permutation(len(docs))[: max(2, round(dev_fraction * len(docs)))].tolist())
        train = DocumentSplit(train_corpus, [d for d in docs if d not in held])
        dev = DocumentSplit(train_corpus, sorted(held))
    for split, path in ((train, corpus_path), (dev, dev_path or corpus_path)):
        if len(split.docs) < 2:
            raise ConfigError(f"corpus {path}: a split has {len(split.docs)} document(s) after filtering; need 2")
    context = TaskContext(train, dev, tokenizer, max_len, **options)
    return PretrainingTask(TASKS[name], context)
