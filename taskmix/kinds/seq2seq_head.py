"""The sequence-to-sequence decoder head (seed 001, §5 and App. B) with greedy and beam decoding.

A one-layer LSTM decoder whose hidden state starts from a learned projection of the
encoder's pooled vector (max-pooled states for a BiLSTM encoder, [CLS] for transformers),
with its own trained word embeddings over the task's output vocabulary, an optional
bilinear attention over the encoder's token states (helpful for SkipThought and Reddit,
not for translation, App. B: the head setting `attention`), and the decoder output
reduced to half its width by a learned linear projection before the softmax.  Training
is teacher-forced; the loss is the cross-entropy per target token, averaged over the
target tokens of the batch.  Evaluation decodes with a beam of `beam_size` (1: greedy) up
to `max_decode_length` tokens; both are head settings too (`taskmix.models.heads`).

Decoding needs the encoder states, which `predict` does not see, so in eval mode
`forward` decodes and returns one packed row per example: the summed teacher-forced
negative log-likelihood of the reference, its token count (perplexity comes from these,
not from the decoded text), then the generated ids padded with -1 (`pack_rows`,
`unpack_row`).  The decoder's width equals the encoder's, as App. B states; the
embedding width is the same (the paper does not give it).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from taskmix.kinds.output_vocab import BOS_ID, EOS_ID, PAD_ID
from taskmix.models.encoder import EncoderOutput
from taskmix.models.heads import IGNORE, Head, positive_int, register_head

DEFAULT_BEAM = 4  # seed 001 does not give its beam width; 4 is a common choice for translation
NO_TOKEN = -1.0  # padding of generated ids in a packed row
State = tuple[torch.Tensor, torch.Tensor]


@register_head("seq2seq")
class Seq2seqHead(Head):
    """LSTM decoder over an output vocabulary of `num_outputs` types.

    With `attention`, the decoder state s attends to the unpadded encoder states h with the
    bilinear score s^T W h, and [s; context] is combined through a tanh layer.
    """

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1, *, attention: bool = False,
                 beam_size: int = DEFAULT_BEAM, max_decode_length: int = 64):
        super().__init__(hidden_size, num_outputs, dropout)
        if not isinstance(attention, bool):
            raise ValueError(f"attention must be true or false, got {attention!r}")
        self.attention = attention
        self.beam_size = positive_int("beam_size", beam_size)
        self.max_decode_length = positive_int("max_decode_length", max_decode_length)
        self.init_state = nn.Linear(hidden_size, hidden_size)
        self.embed = nn.Embedding(num_outputs, hidden_size, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(hidden_size, hidden_size, batch_first=True)
        if self.attention:
            self.bilinear = nn.Linear(hidden_size, hidden_size, bias=False)
            self.combine = nn.Linear(2 * hidden_size, hidden_size)
        self.reduce = nn.Linear(hidden_size, hidden_size // 2)
        self.out = nn.Linear(hidden_size // 2, num_outputs)
        self.dropout = nn.Dropout(dropout)

    # -- the network -------------------------------------------------------------------------
    def initial_state(self, encoded: EncoderOutput) -> State:
        hidden = torch.tanh(self.init_state(encoded.pooled))[None]
        return hidden, torch.zeros_like(hidden)

    def output_logits(self, states: torch.Tensor, encoded: EncoderOutput) -> torch.Tensor:
        """Vocabulary logits (B, T, V) of decoder states (B, T, H), attending to the encoder if set."""
        if self.attention:
            keys = self.bilinear(encoded.tokens)
            scores = states @ keys.transpose(1, 2)
            scores = scores.masked_fill(~encoded.mask.bool()[:, None, :], torch.finfo(scores.dtype).min)
            context = torch.softmax(scores.float(), dim=-1).to(states.dtype) @ encoded.tokens
            states = torch.tanh(self.combine(torch.cat([states, context], dim=-1)))
        return self.out(self.reduce(self.dropout(states)))

    def run(self, tokens: torch.Tensor, state: State, encoded: EncoderOutput) -> tuple[torch.Tensor, State]:
        states, state = self.lstm(self.dropout(self.embed(tokens)), state)
        return self.output_logits(states, encoded), state

    def forward(self, encoded: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits, _ = self.run(batch["decoder_input"], self.initial_state(encoded), encoded)
        if self.training:
            return logits
        targets = batch["labels"].long()
        nll = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
        limit = self.max_decode_length
        generated = (greedy(self, encoded, limit) if self.beam_size == 1
                     else beam_search(self, encoded, self.beam_size, limit))
        return pack_rows(nll.sum(dim=1), (targets != IGNORE).sum(dim=1), generated)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].long().flatten(), ignore_index=IGNORE)

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """One packed row per example (see the module docstring), trailing padding dropped."""
        return [unpack_row(row.detach().cpu().numpy()) for row in logits]


def pack_rows(nll: torch.Tensor, counts: torch.Tensor, generated: list[list[int]]) -> torch.Tensor:
    """(B, 2 + longest generation): nll sum, token count, generated ids padded with NO_TOKEN."""
    width = max([len(g) for g in generated] + [0])
    rows = torch.full((len(generated), 2 + width), NO_TOKEN, device=nll.device)
    rows[:, 0], rows[:, 1] = nll.float(), counts.float()
    for i, ids in enumerate(generated):
        rows[i, 2:2 + len(ids)] = torch.tensor(ids, dtype=torch.float32)
    return rows


def unpack_row(row: np.ndarray) -> np.ndarray:
    """A packed row without its padding: [nll, count, id, id, ...] as float64."""
    row = np.asarray(row, dtype=np.float64)
    return np.concatenate([row[:2], row[2:][row[2:] != NO_TOKEN]])


def generated_ids(row: np.ndarray) -> list[int]:
    return [int(t) for t in row[2:]]


@torch.no_grad()
def greedy(head: Seq2seqHead, encoded: EncoderOutput, max_length: int) -> list[list[int]]:
    """The most likely next token at every step until [EOS] (not included) or `max_length` tokens."""
    size = encoded.pooled.shape[0]
    state = head.initial_state(encoded)
    token = torch.full((size, 1), BOS_ID, dtype=torch.long, device=encoded.pooled.device)
    out: list[list[int]] = [[] for _ in range(size)]
    done = torch.zeros(size, dtype=torch.bool, device=token.device)
    for _ in range(max_length):
        logits, state = head.run(token, state, encoded)
        token = logits[:, -1].argmax(dim=-1, keepdim=True)
        done_now = token[:, 0] == EOS_ID
        for i in torch.nonzero(~done & ~done_now).flatten().tolist():
            out[i].append(int(token[i, 0]))
        done |= done_now
        if bool(done.all()):
            break
    return out


def repeat_rows(encoded: EncoderOutput, times: int) -> EncoderOutput:
    return EncoderOutput(encoded.tokens.repeat_interleave(times, 0), encoded.pooled.repeat_interleave(times, 0),
                         encoded.mask.repeat_interleave(times, 0))


@torch.no_grad()
def beam_search(head: Seq2seqHead, encoded: EncoderOutput, beam: int, max_length: int) -> list[list[int]]:
    """Beam search per example; finished hypotheses are ranked by log-probability per token.

    At each step the 2k best extensions of the k live beams are ranked: those ending in
    [EOS] are finished hypotheses, the best k others live on.  An example stops when it has
    k finished hypotheses; at `max_length` its live beams count as finished.  With k = 1
    this is greedy decoding.
    """
    size, device = encoded.pooled.shape[0], encoded.pooled.device
    wide = repeat_rows(encoded, beam)
    state = head.initial_state(wide)
    token = torch.full((size * beam, 1), BOS_ID, dtype=torch.long, device=device)
    scores = torch.full((size, beam), -math.inf, device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one
    histories: list[list[list[int]]] = [[[] for _ in range(beam)] for _ in range(size)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(size)]
    for step in range(max_length):
        logits, state = head.run(token, state, wide)
        logp = torch.log_softmax(logits[:, -1].float(), dim=-1)
        vocab = logp.shape[-1]
        total = (scores.reshape(-1, 1) + logp).reshape(size, beam * vocab)
        best, where = total.topk(min(2 * beam, beam * vocab), dim=-1)
        best, where = best.cpu().tolist(), where.cpu().tolist()
        parents = torch.zeros(size, beam, dtype=torch.long)
        next_tokens = torch.full((size, beam), EOS_ID, dtype=torch.long)
        new_scores = torch.full((size, beam), -math.inf)
        new_histories: list[list[list[int]]] = []
        for i in range(size):
            kept: list[list[int]] = []
            if len(finished[i]) < beam:
                for score, flat in zip(best[i], where[i]):
                    if score == -math.inf or len(kept) == beam:
                        break
                    parent, tok = divmod(flat, vocab)
                    history = histories[i][parent]
                    if tok == EOS_ID:
                        finished[i].append((score / (len(history) + 1), history))
                        if len(finished[i]) == beam:
                            break
                        continue
                    parents[i, len(kept)], next_tokens[i, len(kept)] = parent, tok
                    new_scores[i, len(kept)] = score
                    kept.append(history + [tok])
            new_histories.append(kept + [[] for _ in range(beam - len(kept))])
        live = [i for i in range(size) if len(finished[i]) < beam]
        histories, scores = new_histories, new_scores.to(device)
        if not live:
            break
        rows = (torch.arange(size)[:, None] * beam + parents).flatten().to(device)
        state = (state[0][:, rows], state[1][:, rows])
        token = next_tokens.reshape(-1, 1).to(device)
    for i in range(size):
        if len(finished[i]) < beam:  # out of steps: the live beams end here
            for b in range(beam):
                if scores[i, b] > -math.inf:
                    finished[i].append((float(scores[i, b]) / max(1, len(histories[i][b])), histories[i][b]))
    return [max(f, key=lambda pair: pair[0])[1] if f else [] for f in finished]
