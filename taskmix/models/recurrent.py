"""The BiLSTM of seed 001's ELMo-style encoders, over any input token vectors, with the skip connection.

Seed 001 (§5) feeds input token representations to a two-layer bidirectional LSTM and lets
task models see the top layer's states concatenated with the inputs (the skip connection,
which is what makes the random encoder a strong baseline).  The same module sits on the
word vectors of the BiLSTM encoder and on the mixed layers of a frozen transformer.

Each segment of a pair (token type 0, then 1) is encoded on its own, as seed 001's pair
models encode both sentences separately before combining them: the LSTM never reads across
the boundary.  The pooled vector is the max over the valid tokens of the whole input.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class SkipBiLSTM(nn.Module):
    """Input vectors -> [top-layer BiLSTM states; input vectors] per token, with dropout after the input
    and after each LSTM layer (seed 000 App. B)."""

    def __init__(self, input_size: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.input_dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(input_size, hidden, num_layers=layers, bidirectional=True, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.output_dropout = nn.Dropout(dropout)
        self.output_size = 2 * hidden + input_size

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor, token_types: torch.Tensor | None) -> torch.Tensor:
        inputs = self.input_dropout(inputs)
        valid = mask.bool()
        states = inputs.new_zeros(*inputs.shape[:2], self.output_size - inputs.shape[-1])
        segments = (0,) if token_types is None else (0, 1)
        for segment in segments:
            chosen = valid if token_types is None else valid & (token_types == segment)
            self._encode_segment(inputs, chosen, states)
        return torch.cat([self.output_dropout(states), inputs], dim=-1)

    def _encode_segment(self, inputs: torch.Tensor, chosen: torch.Tensor, states: torch.Tensor) -> None:
        """Run the LSTM over the chosen (contiguous) positions of each row and write its states back there."""
        lengths = chosen.sum(dim=1)
        rows = torch.nonzero(lengths).squeeze(1)
        if len(rows) == 0:
            return
        lengths = lengths[rows]
        starts = chosen[rows].float().argmax(dim=1)
        positions = starts[:, None] + torch.arange(int(lengths.max()), device=inputs.device)[None, :]
        inside = positions < (starts + lengths)[:, None]
        positions = positions.clamp(max=inputs.shape[1] - 1)
        gathered = inputs[rows[:, None], positions]
        packed = pack_padded_sequence(gathered, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=positions.shape[1])
        states[rows[:, None].expand_as(positions)[inside], positions[inside]] = output[inside].to(states.dtype)


def max_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over time of the positions where `mask` is set (seed 001's pooled sentence vector);
    zeros for a row with none (an empty segment of a pair)."""
    mask = mask.bool()
    pooled = tokens.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values
    return torch.where(mask.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))
