"""The live view of a sweep: its running trials (model, task, batch size, learning rate, seed,
epoch, current score, examples/s, ETA), the best configuration per group so far, counts that add
up to the sweep's size, and an ETA for the sweep. Built from result records alone (pure), drawn
with ``rich`` on a terminal (:func:`renderable`) or as plain lines (:func:`plain`).

A trial counts as running only while a driver holds the sweep's lock (:func:`driver_alive`);
after a crash its record still says ``running`` and the view says ``interrupted``.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from dataclasses import dataclass, field

from ..config import fmt_lr
from ..store import location as storage

ORDER = ("completed", "stopped", "running", "interrupted", "pending", "diverged", "failed")


@dataclass
class View:
    name: str
    total: int
    counts: dict[str, int]
    running: list[dict] = field(default_factory=list)   # one row per running trial
    best: list[dict] = field(default_factory=list)      # one row per group: its best trial so far
    eta_s: float | None = None
    live: bool = True                                   # a driver runs the sweep


def driver_alive(run_dir) -> bool:
    """True while a ``glue-sweep run`` on this machine holds the sweep's lock (it dies with its
    process); ``run_dir`` a local directory or a storage URI."""
    path = storage.lock_dir(storage.at(run_dir)) / ".lock"
    if not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)   # closing releases a lock taken here
    return False


def _last(rec: dict) -> dict | None:
    evals = [e for e in rec.get("evals") or [] if isinstance(e.get("score"), (int, float))]
    return evals[-1] if evals else None


def _rate(rec: dict, ev: dict | None) -> tuple[float | None, float | None]:
    """(training examples/s, seconds left) of a running trial from its last evaluation."""
    if not ev or not ev.get("elapsed_s") or not ev.get("epoch"):
        return None, None
    per_epoch = ev["elapsed_s"] / ev["epoch"]
    n = rec.get("train_examples")
    rate = n / per_epoch if n and per_epoch > 0 else None
    left = max(0.0, float(rec["trial"]["epochs"]) - ev["epoch"]) * per_epoch
    return rate, left


def _row(rec: dict) -> dict:
    t, ev = rec["trial"], _last(rec)
    rate, left = _rate(rec, ev)
    return {"trial_id": rec["trial_id"], "model": rec["model"], "task": t["task"], "bs": t["batch_size"],
            "lr": fmt_lr(t["learning_rate"]), "seed": t["seed"], "epoch": ev["epoch"] if ev else None,
            "epochs": float(t["epochs"]), "score": ev["score"] if ev else None, "rate": rate, "eta_s": left}


def best_rows(records: list[dict]) -> list[dict]:
    """Per group, the trial with the best score so far (ties: the smaller batch, then the
    smaller learning rate, as the leaderboard ranks them); diverged and failed never count."""
    best: dict[str, tuple] = {}
    for rec in records:
        if rec["status"] in ("diverged", "failed"):
            continue
        scores = [e["score"] for e in rec.get("evals") or [] if isinstance(e.get("score"), (int, float))
                  and math.isfinite(e["score"])]
        if not scores:
            continue
        t = rec["trial"]
        key = (-max(scores), t["batch_size"], t["learning_rate"], t["seed"])
        if rec["group"] not in best or key < best[rec["group"]][0]:
            best[rec["group"]] = (key, rec)
    out = []
    for g in sorted(best):
        key, rec = best[g]
        epoch = next(e["epoch"] for e in rec["evals"] if e.get("score") == -key[0])   # the first to reach it
        out.append(dict(_row(rec), score=-key[0], epoch=epoch, status=rec["status"]))
    return out


def _eta(records: list[dict], running: list[dict], pending: int) -> float | None:
    """Seconds until the sweep ends: the remaining epochs at the mean time per epoch so far,
    shared by as many trials as run at once (an upper bound when early stopping cuts trials)."""
    per_epoch = [e["elapsed_s"] / e["epoch"] for r in records for e in (r.get("evals") or [])[-1:]
                 if e.get("epoch") and e.get("elapsed_s")]
    if not per_epoch:
        return None
    mean = sum(per_epoch) / len(per_epoch)
    epochs = max((float(r["trial"]["epochs"]) for r in records), default=1.0)
    work = sum(r["eta_s"] if r["eta_s"] is not None else epochs * mean for r in running) + pending * epochs * mean
    return work / max(1, len(running))


def snapshot(name: str, records: list[dict], total: int, live: bool) -> View:
    """The view of a sweep of ``total`` trials from its records; ``live``: a driver runs it."""
    counts = dict.fromkeys(ORDER, 0)
    for r in records:
        s = r["status"] if r["status"] != "running" or live else "interrupted"
        counts[s] = counts.get(s, 0) + 1
    counts["pending"] = max(0, total - len(records))
    running = [_row(r) for r in records if r["status"] == "running"] if live else []
    running.sort(key=lambda r: (r["model"], r["task"], r["bs"], r["lr"], r["seed"]))
    return View(name, max(total, len(records)), counts, running, best_rows(records),
                _eta(records, running, counts["pending"]) if live else None, live)


def duration(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def counts_line(v: View) -> str:
    parts = [f"{n} {k}" for k, n in v.counts.items() if n]
    state = "running" if v.live else "not running"
    eta = f"; ETA {duration(v.eta_s)}" if v.live and v.eta_s is not None else ""
    return f"sweep {v.name} ({state}): {v.total} trials: {', '.join(parts) or 'none yet'}{eta}"


def _num(x, digits=2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def trial_cells(r: dict) -> list[str]:
    epoch = f"{r['epoch']:g}/{r['epochs']:g}" if r["epoch"] is not None else f"-/{r['epochs']:g}"
    return [r["model"], r["task"], str(r["bs"]), r["lr"], str(r["seed"]), epoch, _num(r["score"]),
            _num(r["rate"], 0), duration(r["eta_s"])]


TRIAL_HEAD = ["model", "task", "bs", "lr", "seed", "epoch", "score", "ex/s", "ETA"]
BEST_HEAD = ["model", "task", "best", "bs", "lr", "seed", "epoch", "status"]


def best_cells(r: dict) -> list[str]:
    return [r["model"], r["task"], _num(r["score"]), str(r["bs"]), r["lr"], str(r["seed"]),
            "-" if r["epoch"] is None else f"{r['epoch']:g}", r["status"]]


def plain(v: View) -> str:
    """The view as plain lines (logs, CI)."""
    lines = [f"[{time.strftime('%H:%M:%S')}] {counts_line(v)}"]
    lines += [f"  running: {' '.join(trial_cells(r))}" for r in v.running]
    return "\n".join(lines)


def renderable(v: View):
    """The view as ``rich`` tables: the counts, the running trials, the best per group."""
    from rich.console import Group
    from rich.table import Table

    running = Table(title=f"running trials ({len(v.running)})", title_justify="left", expand=False)
    for h in TRIAL_HEAD:
        running.add_column(h, justify="left" if h in ("model", "task") else "right", no_wrap=h == "model")
    for r in v.running:
        running.add_row(*trial_cells(r))
    best = Table(title="best so far, per model and task", title_justify="left")
    for h in BEST_HEAD:
        best.add_column(h, justify="left" if h in ("model", "task", "status") else "right", no_wrap=h == "model")
    for r in v.best:
        best.add_row(*best_cells(r))
    return Group(f"[bold]{counts_line(v)}[/bold]  [dim]{time.strftime('%H:%M:%S')}[/dim]", running, best)


class Screen:
    """The live view redrawn in place on a terminal while ``glue-sweep run`` runs (``rich``)."""

    def __init__(self, name: str, prior: list[dict], total: int, out):
        from rich.console import Console
        from rich.live import Live

        self.name, self.total = name, total
        self.prior = {r["trial_id"]: r for r in prior}
        self.console = Console(file=out)
        self.screen = Live(console=self.console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
        self.screen.start()

    def __getstate__(self):   # Tune pickles its callbacks with the experiment: the terminal stays here
        return {"name": self.name, "total": self.total, "prior": self.prior, "console": None, "screen": None}

    def update(self, records: list[dict], live: bool = True) -> None:
        if self.screen is None:
            return
        merged = {**self.prior, **{r["trial_id"]: r for r in records}}
        self.screen.update(renderable(snapshot(self.name, list(merged.values()), self.total, live)), refresh=True)

    def log(self, line: str) -> None:
        if self.console is not None:
            self.console.print(line, markup=False, highlight=False)

    def stop(self, records: list[dict] | None = None) -> None:
        if self.screen is None:
            return
        if records is not None:
            self.update(records, live=False)
        self.screen.stop()
        self.screen = None
