"""One shared encoder with one head per task (or per task family)."""

from __future__ import annotations

import torch
from torch import nn

from taskmix.models.encoder import Encoder, EncoderOutput
from taskmix.models.heads import Head


class MultiTaskModel(nn.Module):
    """The encoder plus a named set of heads; a task is routed to its head by name."""

    def __init__(self, encoder: Encoder, heads: dict[str, Head] | None = None):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads or {})

    def encode(self, batch: dict[str, torch.Tensor], inputs_embeds: torch.Tensor | None = None) -> EncoderOutput:
        return self.encoder(
            batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), inputs_embeds=inputs_embeds
        )

    def forward(self, head_name: str, batch: dict[str, torch.Tensor], inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        return self.heads[head_name](self.encode(batch, inputs_embeds), batch)
