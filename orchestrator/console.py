"""What the commands print on a terminal: the training progress line and per-epoch table, a
sweep's status, its dashboard's address and login."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from . import storage, store
from .errors import UserError
from .results.load import load_run
from .results.render import to_markdown
from .results.tables import glue_table


def newest_run(root: str = "results") -> Path:
    runs = [p.parent for p in Path(root).glob("*/trials")]
    if not runs:
        raise UserError(f"no sweep results under {root}/: run a sweep first (make sweep)")
    return max(runs, key=lambda p: max((f.stat().st_mtime for f in (p / "trials").iterdir()), default=0))


def dashboard_lines(run: Path | storage.Location) -> list[str]:
    """What `glue-sweep dashboard` prints: whether the sweep runs, its dashboard's address and login."""
    out = []
    run = storage.at(run)
    f = run / "dashboard.json"
    if not f.exists():
        raise UserError(f"{run} has no dashboard.json: has the sweep been started?")
    info = json.loads(f.read_text())
    alive = False
    try:
        os.kill(int(info.get("pid", -1)), 0)
        alive = True
    except (OSError, ValueError):
        pass
    out.append(f"sweep {run.name}: {'running' if alive else 'not running (the dashboard closed with it)'}")
    if not info.get("url"):
        return out + ["dashboard: this sweep ran on an existing cluster; its dashboard is the cluster's own"]
    out.append(f"dashboard: {info['url']}")
    if info.get("auth") == "token":
        tf = Path(info["token_file"])
        token = tf.read_text().strip() if tf.is_file() else "(token file missing)"
        out.append(f"token: {token}")
        out.append(f"  (from {tf}; paste it at the dashboard's login prompt)")
    port = info["url"].rsplit(":", 1)[-1].strip("/")
    out.append(f"remote head: ssh -N -L {port}:127.0.0.1:{port} <you>@<head>, then open http://127.0.0.1:{port}")
    return out


def status_text(run: Path | storage.Location) -> str:
    run = storage.at(run)   # a local directory or a storage URI
    records, problems = store.read_records(run)
    counts = Counter(r["status"] for r in records)
    head = f"sweep {run.name}: {len(records)} trials recorded: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    if problems:
        head += f"; {len(problems)} unreadable record(s) skipped"
    table = glue_table(load_run(run))
    keep = ["Model", "Score"] + [c for c in table.columns[2:] if (table[c] != "-").any()]
    return head + "\n" + to_markdown(table[keep]) + "\n(* partial: tasks missing or trials still running)"


def evaluation_table(task, evals) -> str:
    keys = task.metric_keys()
    head = ["epoch", "step", "loss"] + keys + ["score"]
    rows = [[f"{e.epoch:g}", str(e.step), f"{e.train_loss:.4f}"] + [f"{e.metrics[k]:.2f}" for k in keys] + [f"{e.score:.2f}"]
            for e in evals]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


class Progress:
    """The training progress line: redrawn in place on a terminal, every 15 s in a log."""

    def __init__(self, quiet: bool):
        self.quiet, self.last, self.t0 = quiet, 0.0, time.perf_counter()
        self.tty = sys.stderr.isatty()

    def __call__(self, step: int, total: int, loss: float) -> None:
        now = time.perf_counter()
        if self.quiet or (now - self.last < (0.5 if self.tty else 15) and step != total):
            return
        self.last = now
        msg = f"step {step}/{total} ({100 * step / total:.0f}%)  loss {loss:.4f}  {now - self.t0:.0f}s"
        print(("\r" + msg) if self.tty else msg, end="" if self.tty else "\n", file=sys.stderr, flush=True)


MAX_ERROR = 300   # characters of an error line (its start, file:line, is always kept)


def error_line(msg: str) -> str:
    """One line of at most MAX_ERROR characters: a 1 GB data row gives a short message."""
    line = " ".join(msg[:4 * MAX_ERROR].split())
    return line if len(line) <= MAX_ERROR else line[:MAX_ERROR - 3] + "..."
