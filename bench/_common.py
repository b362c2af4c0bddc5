"""Small helpers every benchmark shares: where the GLUE data is, the environment of a child
process, a progress line, number formatting. Light (no torch, no orchestrator data code), so
that a benchmark's child process can time those imports itself."""

from __future__ import annotations

import os
import sys
import time

from bench._machine import REPO

SHARED_GLUE = REPO.parent / "shared" / "glue_data"


def default_glue_dir() -> str | None:
    """``$GLUE_DIR``, else ``../shared/glue_data`` beside the repository if it is there."""
    return os.environ.get("GLUE_DIR") or (str(SHARED_GLUE) if SHARED_GLUE.is_dir() else None)


def child_env(threads: int | None = None, **extra: str) -> dict:
    """The environment of a benchmark's child process: offline unless told otherwise, this
    repository first on the path, ``threads`` OpenMP/MKL threads, and ``extra``."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", **extra)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def progress(label: str, every_s: float = 20.0):
    """A ``(step, total, loss)`` callback printing a progress line every ``every_s`` seconds."""
    state = {"last": 0.0, "t0": time.perf_counter()}

    def tick(step: int, total: int, loss: float | None = None) -> None:
        now = time.perf_counter()
        if now - state["last"] < every_s and step != total:
            return
        state["last"] = now
        extra = f"  loss {loss:.4f}" if loss is not None else ""
        print(f"[{label}] step {step}/{total}{extra}  {now - state['t0']:.0f}s", file=sys.stderr, flush=True)

    return tick


def fmt(x, spec: str = ".2f", missing: str = "-") -> str:
    """A number for a report table; ``missing`` for None."""
    return missing if x is None else format(x, spec)


def git_line(env: dict) -> str:
    """The commit a report was measured at (``environment()["git"]``), short, and whether the tree had changes."""
    g = env.get("git") or {}
    return f"{str(g.get('commit'))[:10]}{' with local changes' if g.get('modified') else ''}"
