"""Where and how a run computes: device choice, autocast, memory layout, reproducibility.

CPU: fp32, ``torch.use_deterministic_algorithms(True)``, seeds for torch, numpy and Python.
CUDA: bf16 autocast for the networks (the loss is computed in fp32), channels_last, cuDNN
autotuning and TF32 (speed over bit-exactness, documented).
"""

from __future__ import annotations

import contextlib
import platform
import random
import resource
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from asymcl.engine.spec import ConfigError


@dataclass(frozen=True)
class DeviceContext:
    """How tensors are laid out and computed on one device."""

    device: torch.device
    amp_dtype: torch.dtype | None  # bf16 autocast on CUDA, None (fp32) on CPU
    channels_last: bool

    @classmethod
    def for_device(cls, device: torch.device) -> "DeviceContext":
        cuda = device.type == "cuda"
        return cls(device=device, amp_dtype=torch.bfloat16 if cuda else None, channels_last=cuda)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


@contextlib.contextmanager
def reproducible(ctx: DeviceContext, seed: int, num_threads: int | None) -> Iterator[None]:
    """Seed every RNG; on CPU force deterministic kernels. Global settings are restored after."""
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_threads = torch.get_num_threads()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if num_threads:
        torch.set_num_threads(num_threads)
    if ctx.device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)


def peak_memory(ctx: DeviceContext) -> dict[str, Any]:
    if ctx.device.type == "cuda":
        return {"bytes": int(torch.cuda.max_memory_allocated(ctx.device)), "kind": "cuda_max_memory_allocated"}
    # ru_maxrss is in KiB on Linux; it is the whole process's high-water mark.
    return {"bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "kind": "process_max_rss"}


def device_name(ctx: DeviceContext) -> str:
    if ctx.device.type == "cuda":
        return f"{ctx.device} ({torch.cuda.get_device_name(ctx.device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
