"""What a trial needs to know about its device: the precision it trains in, out-of-memory
errors and the clean-up after one, and the allocator setting workers inherit.

* bf16 autocast where the GPU has bf16 in hardware (``torch.cuda.is_bf16_supported(
  including_emulation=False)``: Ampere and newer); otherwise fp16 autocast with a
  ``GradScaler`` (V100, T4); fp32 on CPU (nothing changes there).
* An out-of-memory error is recognised here; ``free_memory`` runs after the ``except`` block
  has ended (inside it, the traceback still holds the failed step's tensors) and empties the
  CUDA cache.
* ``ALLOC_CONF``: ``expandable_segments:True`` lets the CUDA caching allocator grow segments
  instead of fragmenting when batch shapes vary (dynamic padding); the sweep forwards it to
  its workers.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import sys

import torch

from ..config import ALLOC_CONF


def set_alloc_conf(env=os.environ) -> None:
    """Ask for expandable CUDA segments unless the environment already says something."""
    env.setdefault("PYTORCH_CUDA_ALLOC_CONF", ALLOC_CONF)


def keep_large_blocks() -> None:
    """On Linux with glibc, let ``malloc`` keep freed blocks up to 1 GiB instead of returning
    them to the system. A fused unit's stacked embedding gradient (tens of MB) is allocated and
    freed every step; above glibc's mmap threshold (32 MB at most) each allocation is fresh
    pages the kernel must fault in and zero, which costs more than the step's arithmetic on
    small models. Changes no result; process-wide."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 30)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 31)   # M_TRIM_THRESHOLD
    except (OSError, AttributeError):   # not glibc
        pass


def use_bf16(device) -> bool:
    """bf16 in hardware on this CUDA device (never on CPU, never emulated)."""
    if getattr(device, "type", device) != "cuda" or not torch.cuda.is_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:   # an older torch without the argument
        return bool(torch.cuda.is_bf16_supported())


def precision(device) -> tuple[str, object]:
    """("bf16" | "fp16" | "fp32", the autocast context factory) for training on ``device``."""
    if use_bf16(device):
        return "bf16", lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    if getattr(device, "type", device) == "cuda":
        return "fp16", lambda: torch.autocast("cuda", dtype=torch.float16)
    return "fp32", contextlib.nullcontext


def grad_scaler(mode: str):
    """A ``GradScaler`` for fp16 training, else None (bf16 and fp32 need none)."""
    return torch.amp.GradScaler("cuda") if mode == "fp16" else None


def is_out_of_memory(e: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or (isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


def free_memory() -> None:
    """After an out-of-memory error (called once its ``except`` block has ended): collect the
    failed attempt's tensors and hand the cached blocks back to the driver."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def set_memory_share(share: float | None, device=None) -> None:
    """Cap this process at ``share`` of the GPU's memory (packed trials), when on a GPU."""
    if share and 0 < share < 1 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(share, device)
