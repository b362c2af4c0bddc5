"""What every benchmark records about the machine it ran on and the code it measured.

* this process's memory (resident set and its peak) and CPU time, and the share of the whole
  machine's CPU time other processes used meanwhile: on a shared machine a wall-clock timing is
  only comparable when that share is low;
* the load average, the CPU model, the core count, the torch device, the versions of the
  libraries that matter, and the git state of the measured code.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path

import psutil

from orchestrator.train.speed import cpu_model

REPO = Path(__file__).resolve().parent.parent
# The orchestrator files a trial actually runs: a change to them during a run is reported.
RUNNER_FILES = ("runner.py", "features.py", "data.py", "models.py", "loading.py", "metrics.py", "tasks.py",
                "errors.py", "config.py")
VERSIONS = ("torch", "transformers", "numpy", "accelerate", "ray")
_PROCESS = psutil.Process()


# --------------------------------------------------------------------------- memory

def rss_mib() -> float:
    """This process's resident set now."""
    return round(_PROCESS.memory_info().rss / 2**20, 1)


def peak_rss_mib() -> float:
    """This process's peak resident set since it started or since :func:`reset_peak_rss`. psutil
    has no peak figure, so it is the kernel's ``VmHWM`` (on Linux), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        import resource  # not on every platform; only needed off Linux

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux, bytes on macOS
    return round(kib / 1024, 1)


def reset_peak_rss() -> bool:
    """Resets the peak resident set to the current one; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- CPU time

def cpu_snapshot() -> dict:
    """Wall clock, this process's CPU time (all threads), and the whole machine's busy, stolen and
    total CPU seconds, so that two snapshots say how much of the machine others used between."""
    m = psutil.cpu_times()
    busy = m.user + m.system + sum(getattr(m, k, 0.0) for k in ("nice", "irq", "softirq"))
    steal = getattr(m, "steal", 0.0)
    mine = _PROCESS.cpu_times()
    return {"wall": time.perf_counter(), "cpu": time.process_time(), "busy": busy, "steal": steal,
            "total": busy + m.idle + getattr(m, "iowait", 0.0) + steal, "self": mine.user + mine.system}


def contention(first: dict, last: dict) -> dict:
    """Between two :func:`cpu_snapshot`: the share of the whole machine's CPU time (all cores)
    used by other processes (``others_cpu_share``) and stolen by the hypervisor
    (``steal_share``); empty when no time passed."""
    total = last["total"] - first["total"]
    if total <= 0:
        return {}
    others = (last["busy"] - first["busy"]) - (last["self"] - first["self"])
    return {"others_cpu_share": round(max(0.0, others) / total, 3),
            "steal_share": round((last["steal"] - first["steal"]) / total, 3)}


def loadavg() -> list[float] | None:
    """The 1, 5 and 15-minute load averages, or None where there are none."""
    try:
        return [round(x, 2) for x in psutil.getloadavg()]
    except (OSError, AttributeError):
        return None


# --------------------------------------------------------------------------- machine and code

def versions(names=VERSIONS) -> dict:
    """Installed versions by distribution name (None: not installed)."""
    out = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = None
    return out


def git_state() -> dict:
    """The commit measured, whether orchestrator/ or bench/ differed from it, and a hash of the
    files a trial runs (to notice edits during a run)."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    h = hashlib.sha256()
    for name in RUNNER_FILES:
        f = REPO / "orchestrator" / name
        h.update(name.encode() + b"\0" + (f.read_bytes() if f.is_file() else b"") + b"\0")
    return {"commit": git("rev-parse", "HEAD"), "modified": bool(git("status", "--porcelain", "--", "orchestrator", "bench")),
            "runner_files_sha256": h.hexdigest()[:16]}


def environment(torch=None, device=None) -> dict:
    """The machine and the code; with ``torch`` and a ``device``, the device too (its name, CUDA,
    bf16, TF32 as the runner sets them, torch's thread count)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = None
    cpu = cpu_model()
    env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu, "cores": os.cpu_count(),
           "cores_usable": usable, "python": platform.python_version(), "platform": platform.platform(), **versions(),
           "loadavg_at_start": loadavg(), "git": git_state()}
    if torch is not None and device is not None:
        on_gpu = device.type == "cuda"
        env.update(device_type=device.type, device_name=torch.cuda.get_device_name(device) if on_gpu else cpu,
                   cuda=torch.version.cuda, bf16=on_gpu and torch.cuda.is_bf16_supported(), tf32=on_gpu,
                   threads=torch.get_num_threads())
    return env
