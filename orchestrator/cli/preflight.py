"""Checks and settings a command applies before it starts work, so that a mistake costs
nothing: the ``--device`` it was given exists in this torch, and a local Ray listens on
loopback only (``--out`` and results directories: ``fileio.check_writable_dir``; cluster
addresses: ``sweep.cluster``)."""

from __future__ import annotations

from ..errors import UserError
from ..sweep.address import LOOPBACK_ENV

# Set before Ray is imported (cli.cmd_run does, for a local sweep): Ray then takes 127.0.0.1 as
# the node's address, so every listener (GCS, raylet, workers, agents, both Prometheus metrics
# exporters) binds to loopback instead of all interfaces. For a cluster on loopback
# (--address 127.0.0.1:PORT) it keeps that address instead of the machine's external one
# (``sweep.address``); any other cluster is left as it was started.
LOCAL_ONLY_ENV = LOOPBACK_ENV


def check_device(device: str | None) -> None:
    """``--device`` names a device this torch has (a CUDA device on a CPU-only build is one line)."""
    import torch  # heavy: only the commands that train or predict call this

    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {device!r} is not a device (cpu, cuda, cuda:0, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: this torch has no usable CUDA device "
                        f"(torch {torch.__version__}{', a CPU-only build' if not torch.version.cuda else ''})")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s)")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {device}: only cpu and cuda are supported")
