"""ELMo's scalar mix: a learned, softmax-normalised weighting of a frozen model's layers, times a scale.

mix = gamma * sum_j softmax(w)_j * h_j over every hidden layer h_j (the embeddings output
included).  Seed 001 adapts frozen ELMo to each task by learning only these weights; here
they mix the hidden layers of a frozen Hugging Face encoder.  The weights start equal
(w = 0) and gamma at 1, so an untrained mix is the plain average of the layers.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class ScalarMix(nn.Module):
    def __init__(self, layers: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(layers))
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(hidden_states) != len(self.weights):
            raise ValueError(f"scalar mix over {len(self.weights)} layers got {len(hidden_states)}")
        shares = torch.softmax(self.weights, dim=0)
        return self.gamma * sum(share * layer for share, layer in zip(shares, hidden_states))
