"""The live view of a sweep: its running trials (model, task, batch size, learning rate, seed,
epoch, current score, training examples/s, time running, ETA), the best configuration per group
so far, counts that add up to the sweep's size, and an ETA for the sweep. Built from result
records and the clock alone (pure), drawn with ``rich`` on a terminal (:func:`renderable`, redrawn
every second by :class:`Screen`) or as plain lines (:func:`plain`).

Between two evaluations a running trial's epoch and ETA are estimated from the clock: the time
since it started over its time per epoch (its own once it has been evaluated, else that of its
model's other trials, else the sweep's, scaled by parameters). The sweep's ETA is the remaining
work shared by the processes running now (a fused unit is one process for all its members), and
never less than a running trial's own ETA.

A trial counts as running only while a driver holds the sweep's lock (:func:`driver_alive`);
after a crash its record still says ``running`` and the view says ``interrupted``.
"""

from __future__ import annotations

import fcntl
import math
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

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
    elapsed_s: float | None = None                      # since this driver started the sweep


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


def _when(text) -> float | None:
    """Seconds since the epoch of an ISO time stamp (a record's ``started_at``), or None."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None


def _per_epoch(rec: dict) -> float | None:
    """A trial's seconds per epoch so far (start-up and evaluations included), from its last evaluation."""
    ev = _last(rec)
    if not ev or not ev.get("elapsed_s") or not ev.get("epoch"):
        return None
    return ev["elapsed_s"] / ev["epoch"]


def _rate(rec: dict, ev: dict | None) -> float | None:
    """Training examples per training second (start-up and evaluations left out); None for
    records written before evaluations kept their training time."""
    n, train_s = rec.get("train_examples"), (ev or {}).get("train_s")
    if not n or not train_s or not ev.get("epoch"):
        return None
    return n * ev["epoch"] / train_s


class Rates:
    """Seconds per epoch by (model, task, batch size), by model, and by parameter (all trials
    seen), from every evaluated record: the estimate for a trial not yet evaluated."""

    def __init__(self, records: list[dict]):
        by_cell: dict[tuple, list[float]] = {}
        by_model: dict[str, list[float]] = {}
        per_param: list[float] = []
        for r in records:
            pe = _per_epoch(r)
            if pe is None:
                continue
            by_cell.setdefault(_cell(r), []).append(pe)
            by_model.setdefault(r["model"], []).append(pe)
            if r.get("n_params"):
                per_param.append(pe / r["n_params"])
        self.cell = {k: sum(v) / len(v) for k, v in by_cell.items()}
        self.model = {k: sum(v) / len(v) for k, v in by_model.items()}
        self.param = sum(per_param) / len(per_param) if per_param else None
        self.mean = sum(self.model.values()) / len(self.model) if self.model else None   # models weigh alike

    def of(self, rec: dict) -> float | None:
        own = _per_epoch(rec)
        if own is not None:
            return own
        for v in (self.cell.get(_cell(rec)), self.model.get(rec["model"])):
            if v is not None:
                return v
        if self.param is not None and rec.get("n_params"):
            return self.param * rec["n_params"]
        return self.mean


def _cell(rec: dict) -> tuple:
    return rec["model"], rec["trial"]["task"], rec["trial"]["batch_size"]


def _row(rec: dict, now: float | None = None, rates: Rates | None = None) -> dict:
    t, ev = rec["trial"], _last(rec)
    epochs = float(t["epochs"])
    done = ev["epoch"] if ev else 0.0
    per_epoch = rates.of(rec) if rates is not None else _per_epoch(rec)
    started = _when(rec.get("started_at"))
    running_s = max(0.0, now - started) if now is not None and started is not None else None
    progress, left = (done if ev else None), None
    if per_epoch:
        if running_s is not None:   # the clock between evaluations: never behind the last one, never past the next
            every = done / len(rec["evals"]) if ev else float(t.get("eval_every") or 1.0)
            progress = min(epochs, done + every, max(done, running_s / per_epoch))
        left = max(0.0, epochs - (progress if progress is not None else done)) * per_epoch
    return {"trial_id": rec["trial_id"], "model": rec["model"], "task": t["task"], "bs": t["batch_size"],
            "lr": fmt_lr(t["learning_rate"]), "seed": t["seed"], "epoch": ev["epoch"] if ev else None,
            "epochs": epochs, "score": ev["score"] if ev else None, "rate": _rate(rec, ev), "eta_s": left,
            "progress": progress, "running_s": running_s, "process": rec.get("unit") or rec["trial_id"]}


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


def _eta(records: list[dict], running: list[dict], pending: int, rates: Rates) -> float | None:
    """Seconds until the sweep ends: the running trials' remaining epochs and the pending trials'
    (at the mean model's time per epoch), shared by the processes running now (an upper bound
    when early stopping cuts trials); never less than a running trial's own ETA."""
    if rates.mean is None:
        return None
    epochs = max((float(r["trial"]["epochs"]) for r in records), default=1.0)
    processes = len({r["process"] for r in running}) or 1
    per_process = len(running) / processes if running else 1.0   # a fused unit trains its members as one
    own = [r["eta_s"] if r["eta_s"] is not None else epochs * rates.mean for r in running]
    work = sum(own) / per_process + pending / per_process * epochs * rates.mean
    return max([work / processes] + own)


def snapshot(name: str, records: list[dict], total: int, live: bool, now: float | None = None,
             started: float | None = None) -> View:
    """The view of a sweep of ``total`` trials from its records; ``live``: a driver runs it;
    ``now`` (seconds since the epoch; default the clock) moves the estimates between evaluations;
    ``started``: when this driver started (the view shows the time since)."""
    now = time.time() if now is None else now
    counts = dict.fromkeys(ORDER, 0)
    for r in records:
        s = r["status"] if r["status"] != "running" or live else "interrupted"
        counts[s] = counts.get(s, 0) + 1
    counts["pending"] = max(0, total - len(records))
    rates = Rates(records)
    running = [_row(r, now, rates) for r in records if r["status"] == "running"] if live else []
    running.sort(key=lambda r: (r["model"], r["task"], r["bs"], r["lr"], r["seed"]))
    return View(name, max(total, len(records)), counts, running, best_rows(records),
                _eta(records, running, counts["pending"], rates) if live else None, live,
                None if started is None else max(0.0, now - started))


def duration(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def counts_line(v: View) -> str:
    parts = [f"{n} {k}" for k, n in v.counts.items() if n]
    state = "running" if v.live else "not running"
    eta = f"; ETA {duration(v.eta_s)}" if v.live and v.eta_s is not None else ""
    elapsed = f"; elapsed {duration(v.elapsed_s)}" if v.elapsed_s is not None else ""
    return f"sweep {v.name} ({state}): {v.total} trials: {', '.join(parts) or 'none yet'}{elapsed}{eta}"


def _num(x, digits=2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def trial_cells(r: dict) -> list[str]:
    at = r.get("progress", r["epoch"])
    epoch = f"{at:.1f}/{r['epochs']:g}" if at is not None else f"-/{r['epochs']:g}"
    return [r["model"], r["task"], str(r["bs"]), r["lr"], str(r["seed"]), epoch, _num(r["score"]),
            _num(r["rate"], 0), duration(r.get("running_s")), duration(r["eta_s"])]


# epoch: where the trial is now (between evaluations, estimated from the clock); score: its
# latest evaluation's; ex/s: training examples per training second
TRIAL_HEAD = ["model", "task", "bs", "lr", "seed", "epoch", "score", "ex/s", "running", "ETA"]
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
    """The live view redrawn in place on a terminal while ``glue-sweep run`` runs (``rich``):
    when a record changes and every ``every`` seconds (the clock, the time running, the
    estimates between evaluations)."""

    def __init__(self, name: str, prior: list[dict], total: int, out, every: float = 1.0):
        from rich.console import Console
        from rich.live import Live

        self.name, self.total, self.every = name, total, every
        self.prior = {r["trial_id"]: r for r in prior}
        self.current: list[dict] = list(self.prior.values())
        self.started = time.time()
        self.console = Console(file=out)
        self.screen = Live(console=self.console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
        self.lock = threading.Lock()
        self.ticking = threading.Event()
        self.screen.start()
        self.draw()
        threading.Thread(target=self._tick, name="live-view", daemon=True).start()

    def __getstate__(self):   # Tune pickles its callbacks with the experiment: the terminal stays here
        return {"name": self.name, "total": self.total, "every": self.every, "prior": self.prior,
                "current": self.current, "started": self.started, "console": None, "screen": None,
                "lock": None, "ticking": None}

    def _tick(self) -> None:
        while not self.ticking.wait(self.every):
            self.draw()

    def draw(self, live: bool = True) -> None:
        if self.lock is None:
            return
        with self.lock:
            if self.screen is None:
                return
            v = snapshot(self.name, self.current, self.total, live, started=self.started)
            self.screen.update(renderable(v), refresh=True)

    def update(self, records: list[dict], live: bool = True) -> None:
        if self.screen is None:
            return
        self.current = list({**self.prior, **{r["trial_id"]: r for r in records}}.values())
        self.draw(live)

    def log(self, line: str) -> None:
        if self.console is not None:
            self.console.print(line, markup=False, highlight=False)

    def stop(self, records: list[dict] | None = None) -> None:
        if self.screen is None:
            return
        self.ticking.set()
        if records is not None:
            self.update(records, live=False)
        with self.lock:
            self.screen.stop()
            self.screen = None
