"""R3F (Muppet §3.2): keep predictions stable under small noise on the input embeddings.

The extra loss is the symmetric KL divergence between the output distributions on clean
embeddings and on embeddings plus normal or uniform noise, weighted by lambda.  It applies
to any head whose outputs are a categorical distribution.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from taskmix.models.model import MultiTaskModel


def symmetric_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(p||q) + KL(q||p), averaged over the batch."""
    log_p = F.log_softmax(logits_p.float(), dim=-1)
    log_q = F.log_softmax(logits_q.float(), dim=-1)
    return (
        F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
        + F.kl_div(log_p, log_q, log_target=True, reduction="batchmean")
    )


def sample_noise(like: torch.Tensor, kind: str, sigma: float) -> torch.Tensor:
    if kind == "normal":
        return torch.randn_like(like) * sigma
    return torch.empty_like(like).uniform_(-sigma, sigma)


def r3f_forward(
    model: MultiTaskModel, head_name: str, batch: dict[str, torch.Tensor], weight: float, sigma: float, kind: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean logits and the weighted R3F term (zero for heads without a categorical output)."""
    embeds = model.embed(batch)
    logits = model(head_name, batch, inputs_embeds=embeds)
    head = model.heads[head_name]
    clean = head.distribution_logits(logits)
    if clean is None:
        return logits, logits.new_zeros(())
    noisy = head.distribution_logits(model(head_name, batch, inputs_embeds=embeds + sample_noise(embeds, kind, sigma)))
    return logits, weight * symmetric_kl(clean, noisy)
