"""Trial sizing: parameter counts, a trial's GPU memory estimate, its share of a GPU, and the
peak figures compute estimates use. Used by the sweep (GPU packing), ``plan`` and the benchmarks."""

from __future__ import annotations

import shutil
import subprocess

from .config import TrialConfig
from .models import approx_params as _params_of_spec, resolve, shape_of

H100_BF16_FLOPS = 989e12   # dense bf16 peak
ASSUMED_MFU = 0.30
BERT_BASE_PARAMS = 110_000_000


def model_params(model_ref: str) -> tuple[int, int] | None:
    """(total, non-embedding) parameters from the model's shape, without loading it."""
    return _params_of_spec(resolve(model_ref))


def approx_params(config: TrialConfig) -> int:
    """A trial's parameter count; an unknown shape counts as BERT-Base."""
    p = model_params(config.model)
    return p[0] if p else BERT_BASE_PARAMS


def trial_memory_bytes(config: TrialConfig, batch_size: int | None = None) -> float | None:
    """A rough upper bound on a training trial's GPU memory: fp32 weights, gradients and the two
    AdamW moments (16 bytes a parameter), the activations of one full-length batch under bf16
    autocast (s*b*h*(34 + 5*heads*s/h) bytes a layer, Korthikanti et al. 2022, heads = h/64) and
    the worker's CUDA context (0.5 GB). None when the model's shape is unknown."""
    spec = resolve(config.model)
    shape, p = shape_of(spec), _params_of_spec(spec)
    if shape is None or p is None:
        return None
    layers, hidden = shape
    s, b = config.max_length, batch_size or config.batch_size
    act = layers * s * b * hidden * (34 + 5 * (hidden / 64) * s / hidden)
    return 16 * p[0] + act + 0.5e9


def gpu_share(n_params: int, mem_bytes: float | None = None, gpu_mem_bytes: float | None = None) -> float:
    """Fraction of one GPU a trial takes: by size, eight BERT-Tiny-sized trials (up to 6M
    parameters) share a GPU, four up to 12M, two up to 45M, BERT-Base gets one; then doubled
    until the trial's memory estimate fits in 90% of its share of the GPU's memory."""
    share = 0.125 if n_params <= 6e6 else 0.25 if n_params <= 12e6 else 0.5 if n_params <= 45e6 else 1.0
    if mem_bytes and gpu_mem_bytes:
        while share < 1 and mem_bytes > 0.9 * share * gpu_mem_bytes:
            share *= 2
    return share


def gpu_memory_bytes() -> float:
    """Memory of this machine's first GPU (nvidia-smi, no CUDA context), else 16 GB, the
    smallest common training GPU: too small a guess only packs less."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout.split()
            if out:
                return float(out[0]) * 2**20
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
    return 16 * 2**30
