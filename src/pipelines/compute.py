"""Shared compute helpers for the model packages: device choice, bfloat16 support, deterministic seeds and
the CPU thread budget of a task.

Seeds derive from (model, business date, campaign, segment, ...) so a rerun or a backfill of a date
regenerates the same outputs on the same hardware.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import TYPE_CHECKING

from pipelines.errors import ConfigError

if TYPE_CHECKING:
    import torch


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any printable parts (not Python's salted hash())."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and ask torch for deterministic kernels."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def select_device(setting: str = "auto") -> torch.device:
    """`auto`: CUDA when present, else CPU. An explicit `cuda` without a GPU is an error, not a fallback."""
    import torch

    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"PIPELINES_DEVICE={setting} but no CUDA device is available")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively; elsewhere autocasting to it only adds conversions."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def thread_budget(setting: int | None, concurrent_tasks: int, cores: int | None = None) -> int:
    """Torch CPU threads for one task: `setting` when given, else this process's cores shared out among the
    tasks that may run at once beside it, at least 1 (torch's default, all cores each, oversubscribes)."""
    if setting is not None:
        return setting
    available = cores if cores is not None else len(os.sched_getaffinity(0))
    return max(1, available // max(1, concurrent_tasks))


def set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
