"""Learned task-id embeddings (seed 003, section 3.4), added to the word embeddings when enabled.

ERNIE-style continual multi-task learning tells the encoder which task an input is for.
The engine looks up the word embeddings itself, passes them through this module and calls
the encoder with `inputs_embeds`; position and segment embeddings are still added inside.
"""

from __future__ import annotations

import torch
from torch import nn

from taskmix.models.encoder import Encoder
from taskmix.pretraining.tasks import TASK_IDS


class TaskIdEmbedding(nn.Module):
    """One learned vector per pretraining task, switchable with `enabled`.

    The table starts at zero, so switching it on does not disturb a pretrained encoder
    before training has moved it (the paper does not say how it is initialised).
    """

    def __init__(self, hidden_size: int, num_tasks: int = len(TASK_IDS), enabled: bool = True):
        super().__init__()
        self.enabled = enabled
        self.table = nn.Embedding(num_tasks, hidden_size)
        nn.init.zeros_(self.table.weight)

    def forward(self, inputs_embeds: torch.Tensor, task_id: int) -> torch.Tensor:
        if not self.enabled:
            return inputs_embeds
        index = torch.tensor(task_id, device=inputs_embeds.device)
        return inputs_embeds + self.table(index).to(inputs_embeds.dtype)

    def embed(self, encoder: Encoder, input_ids: torch.Tensor, task_id: int) -> torch.Tensor:
        """Word embeddings of `input_ids` plus this task's vector: the encoder's `inputs_embeds`."""
        return self(encoder.input_embeddings()(input_ids), task_id)
