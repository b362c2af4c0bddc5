"""Trial sizing: parameter counts, a trial's GPU memory, its share of a GPU, the GPU's memory,
and the H100 figures compute estimates use. Pure: no torch, no Ray.

Models are named as the registry resolves them (a name, a hub id or a directory); a trial is
an ``orchestrator.config.TrialConfig``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

from ..config import TrialConfig
from ..registry.models import approx_params, resolve, shape_of

H100_BF16_FLOPS = 989e12       # dense bf16 peak of one H100 (SXM)
ASSUMED_MFU = 0.30             # model FLOPs utilisation assumed where none was measured
UNKNOWN_PARAMS = 110_000_000   # a model of unknown size is sized as BERT-Base
CUDA_CONTEXT_BYTES = 0.5e9     # a worker's CUDA context
DEFAULT_GPU_BYTES = 16 * 2**30  # the smallest common training GPU: too small a guess only packs less

log = logging.getLogger(__name__)


def model_params(model: str) -> tuple[int, int] | None:
    """(total, non-embedding) parameters of a model, without loading it; None if unknown."""
    return approx_params(resolve(model))


def param_count(model: str) -> int:
    """Total parameters of a model; an unknown size counts as BERT-Base."""
    p = model_params(model)
    return p[0] if p else UNKNOWN_PARAMS


def memory_bytes(model: str, batch_size: int, max_length: int = 128) -> float | None:
    """A rough upper bound on a training trial's GPU memory: fp32 weights, gradients and the two
    AdamW moments (16 bytes a parameter), the activations of one full-length batch under bf16
    autocast (s*b*h*(34 + 5*heads*s/h) bytes a layer, Korthikanti et al. 2022, heads = h/64) and
    the worker's CUDA context. None when the model's size is unknown."""
    spec = resolve(model)
    shape, p = shape_of(spec), approx_params(spec)
    if shape is None or p is None:
        return None
    layers, hidden = shape
    s, b = max_length, batch_size
    act = layers * s * b * hidden * (34 + 5 * (hidden / 64) * s / hidden)
    return 16 * p[0] + act + CUDA_CONTEXT_BYTES


def trial_memory_bytes(config: TrialConfig) -> float | None:
    """:func:`memory_bytes` of a trial (its model, batch size and maximum length)."""
    return memory_bytes(config.model, config.batch_size, config.max_length)


def gpu_share(n_params: int, mem_bytes: float | None = None, gpu_mem_bytes: float | None = None) -> float:
    """Fraction of one GPU a trial takes: by size, eight BERT-Tiny-sized trials (up to 6M
    parameters) share a GPU, four up to 12M, two up to 45M, BERT-Base gets one; then doubled
    until the trial's memory estimate fits in 90% of its share of the GPU's memory."""
    share = 0.125 if n_params <= 6e6 else 0.25 if n_params <= 12e6 else 0.5 if n_params <= 45e6 else 1.0
    if mem_bytes and gpu_mem_bytes:
        while share < 1 and mem_bytes > 0.9 * share * gpu_mem_bytes:
            share *= 2
    return share


def trial_gpu_share(config: TrialConfig, gpu_mem_bytes: float | None = None, members: int = 1) -> float:
    """:func:`gpu_share` of a trial, by its model's size and its memory estimate; of a fused unit
    of ``members`` such trials, by their sizes and memory together (one CUDA context)."""
    mem = trial_memory_bytes(config)
    if mem is not None:
        mem = members * (mem - CUDA_CONTEXT_BYTES) + CUDA_CONTEXT_BYTES
    return gpu_share(members * param_count(config.model), mem, gpu_mem_bytes)


def gpu_memory_bytes() -> float:
    """Memory of this machine's first GPU (nvidia-smi, so no CUDA context is created), else
    ``DEFAULT_GPU_BYTES``."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout.split()
            if out:
                return float(out[0]) * 2**20
        except (OSError, ValueError, subprocess.TimeoutExpired) as e:
            log.debug(f"nvidia-smi gave no GPU memory ({e})")
    log.debug(f"GPU memory unknown: trials sized for {DEFAULT_GPU_BYTES / 2**30:.0f} GiB")
    return DEFAULT_GPU_BYTES
