"""Sequence to sequence (translation, SkipThought, Reddit): a source text in, a target text out.

The source is tokenised for the encoder; the target with the task's own output vocabulary
(`taskmix.kinds.output_vocab`), which every example carries in its `TargetSide`, because
the vocabulary is trained on a file of the data directory that only the task's reader
resolves.  Features store the vocabulary's JSON and the reference texts as byte arrays, so
a split restored from the token cache decodes by itself; the process remembers each task's
output tokenizer (`output_tokenizer`) for printing predictions.  How outputs are decoded
(attention, beam size, longest output) is the decoder head's business: head settings
(`taskmix.kinds.seq2seq_head`), given by the task and overridable per stage entry.

Scores: `bleu` (sacrebleu's corpus BLEU with its default 13a tokenisation, divided by 100
so it is a fraction like every other metric) of the decoded texts against the raw reference
texts, and `perplexity` of the references under the teacher-forced decoder (exp of the mean
negative log-likelihood per target token, [EOS] included), lower is better and scaled by
1 - ppl/250 in validation (seed 001, App. C).  Loss scaling by class count
(`log_classes`) reads `num_outputs`, the output vocabulary size: the per-token loss of a
uniform guess is log V, so 1/log V puts a decoder's per-token loss on the scale of a
classifier's.  Generation has no constant baseline, so no run is degenerate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from taskmix.errors import DataError
from taskmix.kinds import seq2seq_head as _head  # noqa: F401  (registers the decoder heads)
from taskmix.kinds.base import TaskKind, register_kind
from taskmix.kinds.output_vocab import BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE, OutputVocabulary, decode
from taskmix.kinds.seq2seq_head import generated_ids
from taskmix.metrics import register_metric
from taskmix.models.heads import IGNORE
from taskmix.training.batching import PAD_MULTIPLE
from taskmix.training.features import TokenizedSplit, tokenize_texts
from taskmix.training.ragged import Ragged, codes_text, object_rows, text_codes


@dataclass(frozen=True)
class TargetSide:
    """A generation task's output side: the task's name and its output vocabulary."""

    task: str
    vocabulary: OutputVocabulary


@dataclass(frozen=True)
class Seq2seqExample:
    """One source text and its reference target (None on unlabelled rows)."""

    source: str
    target: str | None
    side: TargetSide
    uid: str = ""


# Output tokenizers by task name, set whenever a task's features are built or loaded.
_OUTPUT_TOKENIZERS: dict[str, Any] = {}


def output_tokenizer(task_name: str):
    try:
        return _OUTPUT_TOKENIZERS[task_name]
    except KeyError:
        raise RuntimeError(f"task {task_name!r}: no output vocabulary loaded yet (featurise a split first)") from None


@dataclass
class Seq2seqFeatures:
    """Encoder rows of the sources, output-vocabulary ids of the targets, reference texts as labels."""

    source: TokenizedSplit
    target_ids: np.ndarray
    target_offsets: np.ndarray
    labels: np.ndarray  # reference texts (object array of str; "" on unlabelled rows)
    uids: list[str]
    task: str
    vocabulary: str  # the output tokenizer's JSON

    def __len__(self) -> int:
        return len(self.source)

    @property
    def target_lengths(self) -> np.ndarray:
        return np.diff(self.target_offsets)

    @property
    def lengths(self) -> np.ndarray:
        """A sort key grouping batches on source length, then target length (both drive padding)."""
        return self.source.lengths * (int(self.target_lengths.max(initial=0)) + 2) + self.target_lengths

    def subset(self, indices: np.ndarray) -> "Seq2seqFeatures":
        pieces = [self.target_ids[self.target_offsets[i]:self.target_offsets[i + 1]] for i in indices]
        offsets = np.zeros(len(indices) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(p) for p in pieces])
        ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
        return Seq2seqFeatures(self.source.subset(indices), ids, offsets, self.labels[indices],
                               [self.uids[i] for i in indices], self.task, self.vocabulary)

    def collate(self, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
        """Encoder inputs plus teacher forcing: decoder input [BOS] y, labels y [EOS] (padding -100)."""
        batch = self.source.collate(indices, pad_id)
        lengths = self.target_lengths[indices] + 1
        width = int(-(-int(lengths.max()) // PAD_MULTIPLE) * PAD_MULTIPLE)
        inputs = np.full((len(indices), width), PAD_ID, dtype=np.int64)
        labels = np.full((len(indices), width), IGNORE, dtype=np.int64)
        for row, i in enumerate(indices):
            ids = self.target_ids[self.target_offsets[i]:self.target_offsets[i + 1]]
            inputs[row, 0], inputs[row, 1:len(ids) + 1] = BOS_ID, ids
            labels[row, :len(ids)], labels[row, len(ids)] = ids, EOS_ID
        batch["decoder_input"], batch["labels"] = torch.from_numpy(inputs), torch.from_numpy(labels)
        return batch

    def arrays(self) -> dict[str, np.ndarray]:
        references = Ragged.of_texts(list(self.labels))
        return {"ids": self.source.ids, "offsets": self.source.offsets, "segment_starts": self.source.segment_starts,
                "target_ids": self.target_ids, "target_offsets": self.target_offsets,
                "references": references.values, "reference_offsets": references.offsets,
                "task": text_codes(self.task), "vocabulary": text_codes(self.vocabulary)}


class Seq2seqKind(TaskKind):
    """Text to text with an LSTM decoder; predictions are packed rows of `seq2seq_head`."""

    name = "seq2seq"
    head = "seq2seq"
    metrics_allowed = ("bleu", "perplexity")
    default_metrics = ("bleu", "perplexity")
    prediction_dtype = object

    def num_outputs(self, task) -> int:
        return VOCAB_SIZE

    def parse_label(self, text: str, labels: Sequence[str]) -> str:
        return text

    def hub_label(self, value: Any) -> str:
        raise ValueError("sequence-to-sequence tasks are read from local files only")

    def label_array(self, labels: Sequence[Any]) -> np.ndarray:
        return object_rows(["" if v is None else str(v) for v in labels])

    def featurize(self, examples: Sequence[Seq2seqExample], tokenizer, max_length: int) -> Seq2seqFeatures:
        if not examples:
            raise DataError("a sequence-to-sequence split has no examples")
        side = examples[0].side
        vocabulary = side.vocabulary.load()
        targets = [e.target or "" for e in examples]
        encoded = vocabulary.encode_batch(targets, add_special_tokens=False)
        pieces = [np.asarray(e.ids[:max_length - 1], dtype=np.int32) for e in encoded]  # room for [EOS]
        offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(p) for p in pieces])
        source = tokenize_texts([e.source for e in examples], None, np.zeros(len(examples), dtype=np.int64),
                                [e.uid for e in examples], tokenizer, max_length)
        features = Seq2seqFeatures(source, np.concatenate(pieces), offsets, self.label_array(targets),
                                   [e.uid for e in examples], side.task, vocabulary.to_str())
        _OUTPUT_TOKENIZERS[side.task] = vocabulary
        return features

    def load_features(self, arrays: Mapping[str, np.ndarray], uids: list[str]) -> Seq2seqFeatures:
        from tokenizers import Tokenizer

        labels = self.label_array(Ragged(np.asarray(arrays["references"]), arrays["reference_offsets"]).texts())
        source = TokenizedSplit(ids=arrays["ids"], offsets=arrays["offsets"], segment_starts=arrays["segment_starts"],
                                labels=np.zeros(len(uids), dtype=np.int64), uids=uids)
        task, vocabulary = codes_text(arrays["task"]), codes_text(arrays["vocabulary"])
        _OUTPUT_TOKENIZERS[task] = Tokenizer.from_str(vocabulary)
        return Seq2seqFeatures(source, np.asarray(arrays["target_ids"]), np.asarray(arrays["target_offsets"]), labels,
                               uids, task, vocabulary)

    def concatenate(self, parts: list[Seq2seqFeatures]) -> Seq2seqFeatures:
        shifts = np.cumsum([0] + [int(p.target_offsets[-1]) for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [p.target_offsets[1:] + s for p, s in zip(parts, shifts)])
        first = parts[0]
        return Seq2seqFeatures(TokenizedSplit.concatenate([p.source for p in parts]),
                               np.concatenate([p.target_ids for p in parts]), offsets,
                               np.concatenate([p.labels for p in parts]), [u for p in parts for u in p.uids],
                               first.task, first.vocabulary)

    def metric_inputs(self, task, predictions: Any, labels: Any) -> tuple["Generations", list[str]]:
        rows = list(predictions)
        if len(rows) != len(labels):
            raise ValueError(f"task {task.name!r}: {len(rows)} predictions for {len(labels)} references")
        texts = [self.format_prediction(task, row) for row in rows]
        return Generations(texts, float(sum(r[0] for r in rows)), int(sum(r[1] for r in rows))), [str(x) for x in labels]

    def format_prediction(self, task, value: Any) -> str:
        """Gold references are texts already; predictions are decoded (one line: newlines become spaces)."""
        text = value if isinstance(value, str) else decode(output_tokenizer(task.name), generated_ids(value))
        return " ".join(text.split())

    def submission_label(self, task, value: Any) -> str:
        return self.format_prediction(task, value)

    def is_degenerate(self, score: float, best_constant: float | None) -> bool:
        return False


@dataclass(frozen=True)
class Generations:
    """What the generation metrics read: decoded texts and the references' summed NLL and token count."""

    texts: list[str]
    nll: float
    tokens: int


def bleu(pred: Generations, gold: list[str]) -> float:
    """Corpus BLEU (sacrebleu defaults: 13a tokenisation, exponential smoothing) as a fraction."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(pred.texts, [gold]).score) / 100.0


def perplexity(pred: Generations, gold: list[str]) -> float:
    """exp(mean NLL per reference token); overflow capped at exp(700) like the corpus tasks."""
    return math.exp(min(pred.nll / max(pred.tokens, 1), 700.0))


register_metric("bleu", bleu)
register_metric("perplexity", perplexity)


SEQ2SEQ = register_kind(Seq2seqKind())
