"""NVIDIA MPS (the Multi-Process Service): whether its control daemon runs on this machine, and a
packed worker's share of the GPU's threads. Imports neither torch nor Ray.

Packed trials run in separate processes. Without MPS the GPU time-slices between their CUDA
contexts; with it their kernels run side by side. MPS is on when its control pipe exists: a FIFO
named ``control`` in ``$CUDA_MPS_PIPE_DIRECTORY``, else in NVIDIA's default ``/tmp/nvidia-mps``
(where CUDA clients look for it; ``nvidia-cuda-mps-control -d`` starts the daemon). A worker of a
GPU share s < 1 then sets ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` to ceil(100 x s) before its first
CUDA call (CUDA reads it when the process's context is created), unless it is set already.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from pathlib import Path

PIPE_ENV = "CUDA_MPS_PIPE_DIRECTORY"
DEFAULT_PIPE_DIR = "/tmp/nvidia-mps"
THREADS_ENV = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"

log = logging.getLogger(__name__)


def pipe_dir(env=None) -> Path:
    """Where MPS clients find the daemon's pipes."""
    env = os.environ if env is None else env
    return Path(env.get(PIPE_ENV) or DEFAULT_PIPE_DIR)


def running(env=None) -> bool:
    """Whether an MPS control daemon runs: its ``control`` pipe exists."""
    try:
        return stat.S_ISFIFO((pipe_dir(env) / "control").stat().st_mode)
    except OSError:
        return False


def thread_percentage(share: float | None) -> int | None:
    """The percentage of the GPU's threads a worker of GPU share ``share`` takes (None: a whole GPU or none)."""
    if not share or not 0 < share < 1:
        return None
    return max(1, math.ceil(100 * share - 1e-9))


def apply_share(share: float | None, env=None) -> int | None:
    """Sets ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` in ``env`` (this process's environment) for a
    packed worker when MPS runs and the variable is not set; returns the percentage set."""
    env = os.environ if env is None else env
    pct = thread_percentage(share)
    if pct is None or THREADS_ENV in env or not running(env):
        return None
    env[THREADS_ENV] = str(pct)
    log.debug(f"MPS: this worker takes {pct}% of the GPU's threads")
    return pct


def describe(env=None) -> str:
    """One line for a sweep's start: whether MPS is on on this machine."""
    if running(env):
        return (f"NVIDIA MPS: on ({pipe_dir(env)}): packed trials' kernels run side by side, each worker "
                f"limited to its GPU share of the threads ({THREADS_ENV})")
    return ("NVIDIA MPS: off: packed trials time-slice the GPU (start it with `nvidia-cuda-mps-control -d` "
            "before the sweep to let their kernels overlap)")
