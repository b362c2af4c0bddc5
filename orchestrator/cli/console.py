"""What the commands print on a terminal: the training progress line and per-epoch table, a
sweep's status, its dashboard's address and login, and the Prometheus that graphs its scores."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from ..errors import UserError
from ..fileio import JSONTooDeep, read_json
from ..results import live
from ..results.load import load_run_records
from ..results.render import to_markdown
from ..results.tables import glue_table
from ..store import location as storage, records as store
from ..sweep import prometheus


def newest_run(root: str = "results", started: bool = False) -> Path:
    """The run under ``root`` written to last (its newest record); ``started``: also a sweep that
    has written no record yet but has started (its ``dashboard.json``), as ``dashboard`` wants."""
    runs = {p.parent for p in Path(root).glob("*/trials")}
    if started:
        runs |= {p.parent for p in Path(root).glob("*/dashboard.json")}
    if not runs:
        raise UserError(f"no sweep results under {root}/: run a sweep first (make sweep)")

    def written(p: Path) -> float:
        files = [f for f in (p / "trials").iterdir() if not f.name.startswith(".")] if (p / "trials").is_dir() else []
        if started and (p / "dashboard.json").is_file():
            files.append(p / "dashboard.json")
        return max((f.stat().st_mtime for f in files), default=0)   # not the records' cache

    return max(runs, key=written)


def dashboard_state(run: Path | storage.Location) -> tuple[dict, bool]:
    """(``dashboard.json`` of the run, whether its driver still runs)."""
    run = storage.at(run)
    f = run / "dashboard.json"
    if not f.exists():
        raise UserError(f"{run} has no dashboard.json: has the sweep been started?")
    try:
        info = read_json(f.read_text())
    except (UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{f}: unreadable ({e.msg if isinstance(e, JSONTooDeep) else type(e).__name__})") from None
    if not isinstance(info, dict):
        raise UserError(f"{f}: not a JSON object")
    return info, pid_alive(info.get("pid"))


def pid_alive(pid) -> bool:
    try:
        os.kill(int(pid if pid is not None else -1), 0)
        return True
    except (OSError, ValueError):
        return False


def dashboard_lines(run: Path | storage.Location) -> list[str]:
    """What `glue-sweep dashboard` prints: whether the sweep runs, its dashboard's address and login."""
    out = []
    run = storage.at(run)
    info, alive = dashboard_state(run)
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


def graph_scores(info: dict, alive: bool, poll_s: float = 1.0) -> int:
    """`glue-sweep dashboard`'s Prometheus: started on loopback with Ray's scrape configuration
    while the sweep runs on this machine, its graph of every trial's dev score printed; it stops
    when the sweep does or at Ctrl-C."""
    session = info.get("session_dir")
    if not alive or not session or not Path(session).is_dir():
        print("metrics: no Prometheus (the sweep is not running on this machine)")
        return 0
    if not prometheus.installed():
        print(prometheus.INSTALL, flush=True)
        return 0
    with prometheus.Prometheus(session) as prom:
        print(f"Prometheus: {prom.url} (scraping this sweep's Ray: {prom.config})")
        print(f"dev scores: {prometheus.graph_url(prom.url)}")
        print(f"Grafana: add {prom.url} as a Prometheus data source and import the dashboards in "
              f"{prometheus.grafana_dir(session)}/dashboards")
        print("(Prometheus stops when the sweep ends, or at Ctrl-C)", flush=True)
        before = signal.signal(signal.SIGTERM, _interrupt)   # a SIGTERM stops Prometheus too
        try:
            while pid_alive(info.get("pid")):
                time.sleep(poll_s)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, before)
    return 0


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def status_text(run: Path | storage.Location) -> str:
    """The counts (running only while a driver runs the sweep), then the live leaderboard."""
    run = storage.at(run)   # a local directory or a storage URI
    lb, records = load_run_records(run)   # the records read once
    head = live.counts_line(live.snapshot(run.name, records, sweep_total(run, len(records)), live.driver_alive(run)))
    problems = [p for p in lb.problems if p.startswith(str(run))]   # files skipped (not unknown tasks)
    if problems:
        head += f"; {len(problems)} unreadable record(s) skipped"
    table = glue_table(lb)
    keep = ["Model", "Score"] + [c for c in table.columns[2:] if (table[c] != "-").any()]
    return head + "\n" + to_markdown(table[keep]) + "\n(* partial: tasks missing or trials still running)"


def sweep_total(run: storage.Location, n_records: int) -> int:
    """The sweep's size from the spec the driver copied into the run; the records' count when
    that cannot be read."""
    from ..spec.sweep import load

    try:
        sw = load(str(run / "sweep.yaml"), expand=False) if run.local else None
    except (UserError, OSError, ValueError, TypeError):
        sw = None
    if sw is None:
        return n_records
    if sw.mode == "optuna":
        return len(sw.models) * len(sw.tasks) * len(sw.seeds) * sw.optuna_trials
    # the grid's size, not expanded (the driver refused a grid that repeats a trial)
    return (len(sw.models) * len(sw.trainings()) * len(sw.tasks) * len(sw.batch_sizes) * len(sw.learning_rates)
            * len(sw.seeds))


def live_view(run: Path | storage.Location | str) -> live.View:
    """The live view of a run directory, read from its records; running only while its driver lives."""
    run = storage.at(run)
    records, _ = store.read_records(run, cache=True)
    return live.snapshot(run.name, records, sweep_total(run, len(records)), live.driver_alive(run))


def watch(run: Path, seconds: float, out=sys.stdout) -> int:
    """Redraw the live view every ``seconds`` until no driver runs the sweep, then draw it once
    more and return. On a terminal with ``rich``; plain lines otherwise."""
    if not out.isatty():
        while True:
            v = live_view(run)
            print(live.plain(v), file=out, flush=True)
            if not v.live:
                return 0
            time.sleep(seconds)
    from rich.console import Console
    from rich.live import Live

    with Live(live.renderable(live_view(run)), console=Console(file=out), auto_refresh=False) as screen:
        while True:
            v = live_view(run)
            screen.update(live.renderable(v), refresh=True)
            if not v.live:
                return 0
            time.sleep(seconds)


def evaluation_table(task, evals) -> str:
    keys = task.metric_keys()
    head = ["epoch", "step", "loss"] + keys + ["score"]
    rows = [[f"{e.epoch:g}", str(e.step), f"{e.train_loss:.4f}"] + [f"{e.metrics[k]:.2f}" for k in keys] + [f"{e.score:.2f}"]
            for e in evals]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


class Progress:
    """The training progress line: epoch, step, loss, examples/s and ETA; redrawn in place on a
    terminal, every 15 s in a log."""

    def __init__(self, quiet: bool, epochs: float = 1.0, batch_size: int = 0):
        self.quiet, self.last, self.t0 = quiet, 0.0, time.perf_counter()
        self.epochs, self.batch_size = float(epochs), batch_size
        self.tty = sys.stderr.isatty()
        self.first: tuple[float, int] | None = None   # (time, step) of the first report: the rate leaves start-up out

    def line(self, step: int, total: int, loss: float, now: float) -> str:
        if self.first is None:
            self.first = (now, step)
        t1, s1 = self.first
        rate = (step - s1) / (now - t1) if now > t1 and step > s1 else 0.0
        epoch = self.epochs * step / total if total else 0.0
        eta = live.duration((total - step) / rate) if rate else "-"
        speed = f"{rate * self.batch_size:.0f} ex/s" if self.batch_size else f"{rate:.1f} steps/s"
        return (f"epoch {epoch:.2f}/{self.epochs:g}  step {step}/{total} ({100 * step / total:.0f}%)  "
                f"loss {loss:.4f}  {speed}  elapsed {live.duration(now - self.t0)}  ETA {eta}")

    def __call__(self, step: int, total: int, loss: float) -> None:
        now = time.perf_counter()
        if self.quiet or (now - self.last < (0.5 if self.tty else 15) and step != total):
            return
        self.last = now
        msg = self.line(step, total, loss, now)
        print(("\r\033[K" + msg) if self.tty else msg, end="" if self.tty else "\n", file=sys.stderr, flush=True)


MAX_ERROR = 300   # characters of an error line (its start, file:line, is always kept)


def error_line(msg: str) -> str:
    """One line of at most MAX_ERROR characters: a 1 GB data row gives a short message."""
    line = " ".join(msg[:4 * MAX_ERROR].split())
    return line if len(line) <= MAX_ERROR else line[:MAX_ERROR - 3] + "..."
