"""Device, precision and optimizer choices that are fast and safe on the machine at hand."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch

from taskmix.errors import ConfigError, clip

log = logging.getLogger(__name__)


def select_device(requested: str = "auto") -> torch.device:
    """`auto`: the current GPU (under torchrun, the one of this rank) when there is one, else the CPU."""
    if requested == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ConfigError(f"device: unknown device '{clip(requested)}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device: '{requested}' requested but no CUDA device is available; use auto or cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device: '{requested}' requested but only {count} CUDA device(s) exist")
    elif device.type != "cpu":
        raise ConfigError(f"device: '{requested}' is not supported; use auto, cpu, cuda or cuda:N")
    return device


def cpu_supports_bf16() -> bool:
    """bf16 autocast only pays off on CPUs with native bf16 instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(requested: str, device: torch.device) -> str:
    """`auto` picks bf16 where the hardware supports it natively, else fp32."""
    if requested != "auto":
        if requested == "fp16" and device.type != "cuda":
            raise ConfigError("precision: fp16 needs a CUDA device; use bf16 or fp32 on CPU")
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"


def default_eval_batch_size(device: torch.device) -> int:
    """Inference batch rows: large on GPUs; 32 on CPUs, where bigger batches fall out of cache
    (measured on MiniLM with length-sorted batches: 32 rows ran about 1.35x faster than 128)."""
    return 128 if device.type == "cuda" else 32


def autocast(device: torch.device, precision: str):
    """The autocast context for a precision name (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling; bf16 and fp32 do not."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def build_adamw(params, lr: float, weight_decay: float, amsgrad: bool, device: torch.device) -> torch.optim.AdamW:
    """AdamW, fused where the device supports it (about 6x faster per step on this class of CPU)."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, amsgrad=amsgrad, fused=True)
    except (RuntimeError, TypeError) as exc:
        log.debug("fused AdamW unavailable on %s (%s); using the default implementation", device, exc)
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, amsgrad=amsgrad)
