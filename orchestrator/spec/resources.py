"""Trial sizing: parameter counts, a trial's GPU memory, its share of a GPU, the GPU's memory,
and the H100 figures compute estimates use. Pure: no torch, no Ray.

A trial's (or fused unit's) GPU share is what its work needs of the GPU: the larger of the
fraction of the GPU's memory its memory estimate needs and the fraction of a step the GPU is
busy (``cost.utilisation``, at the cost model's point assumptions, for an H100), rounded up to
an eighth, a quarter, a half or the whole GPU.

Models are named as the registry resolves them (a name, a hub id or a directory); a trial is
an ``orchestrator.config.TrialConfig``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

from ..config import TrialConfig
from ..registry.models import approx_params, resolve, shape_of
from .cost import ASSUMED_MFU, H100_BF16_FLOPS, utilisation, work_of  # noqa: F401 (the H100 figures, re-exported)

SHARES = (0.125, 0.25, 0.5, 1.0)   # the shares a trial may take
MEMORY_HEADROOM = 0.9           # a trial's memory estimate must fit in this fraction of its share
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


def gpu_share(busy: float, mem_bytes: float | None = None, gpu_mem_bytes: float | None = None) -> float:
    """Fraction of one GPU a trial takes: the larger of ``busy`` (the fraction of a step the GPU
    is busy) and the fraction of the GPU's memory (``gpu_mem_bytes``, else ``DEFAULT_GPU_BYTES``)
    in whose ``MEMORY_HEADROOM`` its memory estimate fits, rounded up to one of ``SHARES``."""
    need = busy
    if mem_bytes:
        need = max(need, mem_bytes / (MEMORY_HEADROOM * (gpu_mem_bytes or DEFAULT_GPU_BYTES)))
    return next((s for s in SHARES if need <= s), 1.0)


def trial_gpu_share(config: TrialConfig, gpu_mem_bytes: float | None = None, members: int = 1) -> float:
    """:func:`gpu_share` of a trial, or of a fused unit of ``members`` such trials (their memory
    together in one process, one CUDA context; one step's host time for all): by its expected
    utilisation and its memory estimate. A model of unknown size takes a whole GPU."""
    mem, work = trial_memory_bytes(config), work_of(config, members=members)
    if mem is None or work is None:
        return 1.0
    return gpu_share(utilisation(work), members * (mem - CUDA_CONTEXT_BYTES) + CUDA_CONTEXT_BYTES, gpu_mem_bytes)


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
