"""Data-parallel training under `torchrun`: process group, gradient averaging, rank-0 decisions.

`torchrun --nproc_per_node=N -m taskmix run ...` starts N copies of the command.  Every rank
runs the same stages on its own shard of each task and, in mixtures, draws its own task for
each step (so one optimizer step averages gradients of different tasks across workers, as
Muppet's heterogeneous batches do).  Gradients are averaged with one coalesced all-reduce per
optimizer step, the synchronisation DistributedDataParallel performs, done here explicitly
because a step may run several forwards through different heads (task sums, accumulation,
R3F's noisy second pass), which the DDP module wrapper supports only with unused-parameter
searches and `no_sync` bookkeeping.  Rank 0 alone validates and writes files; its decisions
(best score, early stopping, learning-rate changes) are broadcast to the others.

Without `torchrun` (no WORLD_SIZE in the environment) every function here is a no-op for a
world of one process.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

# Rank 0 validates while the others wait in a broadcast; long dev sets must not time out.
TIMEOUT = timedelta(hours=4)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init() -> None:
    """Join the process group torchrun describes: NCCL when this rank has a GPU, else gloo."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl", timeout=TIMEOUT)
    else:
        dist.init_process_group("gloo", timeout=TIMEOUT)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """The process that validates, logs and writes outputs."""
    return rank() == 0


def rank_seed(seed: int, rank: int) -> int:
    """A seed of its own for rank > 0; rank 0 keeps `seed`, so a world of one trains as without torchrun."""
    return seed + 104729 * rank


def barrier() -> None:
    if active():
        dist.barrier()


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def average_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Replace every gradient by its mean over ranks (a rank that did not use a parameter adds zeros)."""
    if not active():
        return
    params = [p for p in parameters if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for param in params:  # views into the reduced buffer: no second copy of every gradient per step
        count = param.numel()
        param.grad = flat[offset : offset + count].view_as(param)
        offset += count


def any_rank(flag: bool) -> bool:
    """True when the flag is true on any rank (so every rank leaves a loop together)."""
    if not active():
        return flag
    value = torch.tensor([int(flag)], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_object(obj: T) -> T:
    """Rank 0's `obj` on every rank."""
    if not active():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0, device=_collective_device())
    return box[0]


def gather_objects(obj: Any) -> list[Any] | None:
    """Every rank's `obj`, in rank order, on rank 0 (None elsewhere)."""
    if not active():
        return [obj]
    out = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not active():
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def parameter_digest(state: dict[str, torch.Tensor]) -> str:
    """A short hash of a state dict's names and values: equal digests mean identical weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
