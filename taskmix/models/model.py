"""One shared encoder with one head per task (or per task family)."""

from __future__ import annotations

import torch
from torch import nn

from taskmix.models.encoder import Encoder, EncoderOutput
from taskmix.models.heads import Head


class MultiTaskModel(nn.Module):
    """The encoder plus a named set of heads; a task is routed to its head by name.

    `task_embedding` (seed 003 §3.4, off unless a stage asks for task ids) adds a learned
    vector per task to the word embeddings of every batch that carries a `task_id`.
    """

    def __init__(self, encoder: Encoder, heads: dict[str, Head] | None = None,
                 task_embedding: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads or {})
        self.task_embedding = task_embedding

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The encoder's input vectors: word embeddings, plus the task vector when there is one."""
        embeds = self.encoder.input_embeddings()(batch["input_ids"])
        if self.task_embedding is not None and "task_id" in batch:
            embeds = self.task_embedding(embeds, int(batch["task_id"]))
        return embeds

    def encode(self, batch: dict[str, torch.Tensor], inputs_embeds: torch.Tensor | None = None) -> EncoderOutput:
        """The encoder's output, or the frozen encoder's cached output when the batch carries it
        (`taskmix.training.frozen_features`)."""
        if "encoded_tokens" in batch:
            return EncoderOutput(tokens=batch["encoded_tokens"], pooled=batch["encoded_pooled"],
                                 mask=batch["attention_mask"])
        if inputs_embeds is None and self.task_embedding is not None and "task_id" in batch:
            inputs_embeds = self.embed(batch)
        return self.encoder(
            batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), inputs_embeds=inputs_embeds
        )

    def forward(self, head_name: str, batch: dict[str, torch.Tensor], inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        return self.heads[head_name](self.encode(batch, inputs_embeds), batch)

