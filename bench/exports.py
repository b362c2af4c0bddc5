"""The exports at scale: ``glue-sweep status`` and ``glue-sweep leaderboard --format all`` on
synthetic stores of the paper grid's shape.

The stores are written with the project's own functions: the trials of ``sweeps/paper.yaml``
(24 miniatures x 9 tasks x 20 configurations = 4,320 trials), each a record made by
``store.new_record`` with 4 evaluations (one per epoch; metrics drawn in realistic ranges, the
score their headline, ``registry.metrics.headline``) and written by ``store.write_record``. A
larger store repeats the grid with more seeds (20,000 records: seeds 0-4, cut there). Each
store's ``sweep.yaml`` is the paper sweep with its seeds, as the driver copies it.

Every command runs in its own process (``python -m orchestrator.cli.main``), timed from the
outside (wall seconds, the median of ``--repeats``, and the CPU seconds of the command; its
pictures' worker processes are not counted, so the leaderboard also runs cold with one drawing
process): cold (no records cache, no earlier export: a store read for the first time)
and warm (the same command again, nothing changed). With ``--before SRC`` the same commands
also run against another source tree of the project (an older commit, unpacked), in the same
session on the same stores, and the two ``--format all`` exports are compared file by file
(text files with their generation time removed, Parquet by value, PNG by pixels; PDF and SVG
by name). ``--profile`` adds a cProfile run of each command (the 25 most expensive functions,
cumulative).

    .venv/bin/python -m bench.exports --out bench/out/exports [--before DIR] [--profile]

Writes ``<out>/exports.json`` and ``<out>/exports.md``. The targets: ``status`` of 20,000
records within 5 s, ``leaderboard --format all`` of 4,320 within 30 s (2-core CPU machine).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from bench._common import child_env
from bench._machine import REPO, environment
from orchestrator.config import make_trial
from orchestrator.registry import metrics as task_metrics
from orchestrator.registry.tasks import get_task
from orchestrator.spec.sweep import find, load
from orchestrator.store import records as store

TARGETS = {("status", 20000): 5.0, ("leaderboard", 4320): 30.0}
STAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?(\.\d+)?([+-]\d\d:\d\d|Z| UTC)?")


# --------------------------------------------------------------------------- the stores

def _metrics(task, quality: float, rng: random.Random) -> dict[str, float]:
    """Metrics of one evaluation near ``quality`` (0-1): accuracies in 50-95, correlations and
    MCC lower, pairs close to each other."""
    out = {}
    for key in task.metric_keys():
        base = 50 + 45 * quality if not key.startswith(("mcc", "pearson", "spearman")) else 10 + 80 * quality
        out[key] = round(base + rng.uniform(-2.0, 2.0), 6)
    return out


def build_store(run: Path, n: int, seed: int = 0) -> Path:
    """A run directory of ``n`` finished records of the paper grid's shape (seeds added past 4,320)."""
    sweep = load(find("paper"))
    grid = sweep.trials()
    seeds = list(range(-(-n // len(grid))))
    rng = random.Random(seed)
    text = find("paper").read_text(encoding="utf-8").replace("seeds: [0]", f"seeds: {seeds}")
    run.mkdir(parents=True, exist_ok=True)
    (run / "sweep.yaml").write_text(text, encoding="utf-8")
    count = 0
    for s in seeds:
        for t in grid:
            if count == n:
                return run
            trial = t if s == 0 else make_trial(t.config.replace(seed=s), t.label)
            task = get_task(trial.config.task)
            size = (zlib.crc32(trial.label.encode()) % 24) / 24
            lr_fit = 1.0 - abs(trial.config.learning_rate - 1e-4) / 3e-4
            rec = store.new_record(trial, sweep.name, trial.label)
            evals = []
            for epoch in range(1, 5):
                m = _metrics(task, max(0.0, min(1.0, 0.35 + 0.4 * size + 0.15 * lr_fit + 0.02 * epoch)), rng)
                evals.append({"epoch": float(epoch), "step": 500 * epoch, "metrics": m,
                              "score": task_metrics.headline(m), "train_loss": round(rng.uniform(0.1, 0.7), 4),
                              "elapsed_s": 30.0 * epoch})
            rec.update(status="completed", attempts=1, evals=evals, n_params=4_000_000 + 1000 * count,
                       settings_hash=f"{count:016x}", data_fingerprint="0" * 16, examples_per_s=1000.0)
            store.write_record(run, rec)
            count += 1
    return run


# --------------------------------------------------------------------------- timing

def _command(kind: str, run: Path, out: Path) -> list[str]:
    if kind == "status":
        return ["status", str(run)]
    return ["leaderboard", str(run), "--format", "all", "--out", str(out)]


def forget(run: Path, out: Path) -> None:
    """A cold start: no records cache in the run, no export (nor its pictures) from before."""
    (run / ".records.parquet").unlink(missing_ok=True)
    if out.exists():
        shutil.rmtree(out)


def time_command(src: Path, kind: str, run: Path, out: Path, repeats: int, cold: bool, **env: str) -> dict:
    """Wall seconds of ``glue-sweep <kind>`` (the median of ``repeats``), run from ``src``;
    ``cold``: every run without what an earlier run left (``forget``), else after one."""
    walls, cpus = [], []
    for _ in range(repeats):
        if cold:
            forget(run, out)
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *_command(kind, run, out)], cwd=src,
                           env=child_env(PYTHONPATH=str(src), **env), capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)   # the command and its drawing processes
        cpus.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
        if p.returncode != 0:
            raise SystemExit(f"{kind} on {run} from {src} exited {p.returncode}: {p.stderr.strip()[-500:]}")
    return {"wall_s": round(statistics.median(walls), 2), "walls_s": [round(w, 2) for w in walls],
            "cpu_s": round(statistics.median(cpus), 2), "load_after": os.getloadavg()[0]}


def profile_command(kind: str, run: Path, out: Path, top: int = 25) -> str:
    """The ``top`` functions by cumulative time of one run of the command, in this process (this tree)."""
    from orchestrator.cli.main import main

    prof = cProfile.Profile()
    sink = io.StringIO()
    stdout, sys.stdout = sys.stdout, sink
    try:
        prof.runcall(main, _command(kind, run, out))
    finally:
        sys.stdout = stdout
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()


# --------------------------------------------------------------------------- same output

def _text(p: Path) -> str:
    return STAMP.sub("<time>", p.read_text(encoding="utf-8", errors="replace"))


def compare_exports(a: Path, b: Path) -> list[str]:
    """Differences between two ``--format all`` exports (none: the same content)."""
    import pandas as pd
    from matplotlib.image import imread

    names_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and not p.name.startswith(".")}
    names_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and not p.name.startswith(".")}
    diffs = [f"only in before: {n}" for n in sorted(names_a - names_b)]
    diffs += [f"only in after: {n}" for n in sorted(names_b - names_a)]
    for n in sorted(names_a & names_b):
        pa, pb = a / n, b / n
        if n.suffix == ".parquet":
            try:
                pd.testing.assert_frame_equal(pd.read_parquet(pa), pd.read_parquet(pb))
            except AssertionError as e:
                diffs.append(f"{n}: {str(e).splitlines()[0]}")
        elif n.suffix == ".png":
            x, y = imread(pa), imread(pb)
            if x.shape != y.shape or (x != y).any():
                diffs.append(f"{n}: pixels differ")
        elif n.suffix in (".pdf", ".svg"):
            continue
        elif _text(pa) != _text(pb):
            diffs.append(f"{n}: content differs")
    return diffs


# --------------------------------------------------------------------------- report

def markdown(doc: dict) -> str:
    env = doc["environment"]
    git = env["git"]
    commit = f"{str(git.get('commit'))[:10]}{' with local changes' if git.get('modified') else ''}"
    lines = ["# Exports at scale", "", f"{env['date']}, {env['cpu']} ({env['cores_usable']} usable cores), "
             f"commit {commit}; load average at start {env['loadavg_at_start']}.", "",
             "cold: no records cache and no earlier export (a store read for the first time); warm: the same "
             "command again, nothing changed (as `status --watch` or a second `make export`).", "",
             "Each cell: wall seconds (CPU seconds of the command; the 1-minute load "
             "average after it: the machine is shared, so wall time depends on it).", "",
             "| command | records | before (s) | after, cold (s) | after, warm (s) | target (s) | cold | warm |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for row in doc["timings"]:
        target = TARGETS.get((row["command"], row["records"]))
        cell = (lambda t: "-" if t is None else f"{t['wall_s']} ({t['cpu_s']} CPU; load {t['load_after']:.1f})")
        verdict = (lambda t: "" if target is None else ("PASS" if t["wall_s"] <= target else "FAIL"))
        lines.append(f"| {row['command']} | {row['records']:,} | {cell(row.get('before'))} | {cell(row['after'])} | "
                     f"{cell(row['after_warm'])} | {'-' if target is None else target} | {verdict(row['after'])} | "
                     f"{verdict(row['after_warm'])} |")
    for row in doc["timings"]:
        if "after_serial" in row:   # CPU of drawing processes is not counted above (they are not waited for)
            t = row["after_serial"]
            lines += ["", f"{row['command']} of {row['records']:,} records, cold: the cold column drew the "
                          f"heatmaps in 2 worker processes (`GLUE_SWEEP_DRAW_WORKERS=2`, the default on two usable "
                          f"cores; their CPU not counted); in one process (`=1`, every CPU second counted): "
                          f"{t['wall_s']} s "
                          f"({t['cpu_s']} CPU; load {t['load_after']:.1f})."]
    if "same_output" in doc:
        same = doc["same_output"]
        tables = [d for d in same if not d.split(":")[0].startswith("figures/")]
        pictures = [d for d in same if d.split(":")[0].startswith("figures/")]
        lines += ["", f"Same export before and after ({doc['compared']:,} records, `--format all`): tables and data "
                  + ("the same" if not tables else "differ: " + "; ".join(tables[:10]))
                  + "; pictures (PNG by pixels) " + ("the same" if not pictures else
                                                     f"{len(pictures)} differ: " + "; ".join(pictures[:5])
                                                     + ("; ..." if len(pictures) > 5 else ""))]
    for key, text in doc.get("profiles", {}).items():
        lines += ["", f"## cProfile: {key}", "", "```", text.strip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--stores", default=None,
                    help="where the synthetic stores are kept (default: a temporary directory)")
    ap.add_argument("--before", default=None, help="another source tree of the project to time the same commands from")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="also profile each command (this tree) with cProfile")
    ap.add_argument("--status-records", type=int, default=20000)
    ap.add_argument("--leaderboard-records", type=int, default=4320)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    tmp = Path(args.stores) if args.stores else Path(tempfile.mkdtemp(prefix="exports-bench-"))
    sizes = sorted({args.leaderboard_records, args.status_records})
    runs = {}
    for n in sizes:
        run = tmp / f"paper-{n}"
        if not (run / "trials").is_dir() or len(list((run / "trials").glob("*.json"))) != n:
            shutil.rmtree(run, ignore_errors=True)
            t0 = time.perf_counter()
            build_store(run, n)
            print(f"[exports] wrote {n:,} records in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        runs[n] = run
    plan = [("status", args.leaderboard_records), ("status", args.status_records),
            ("leaderboard", args.leaderboard_records)]
    timings = []
    for kind, n in dict.fromkeys(plan):
        row = {"command": kind, "records": n}
        runs_of = ([("before", Path(args.before), True, {})] if args.before else []) + \
            ([("after_serial", REPO, True, {"GLUE_SWEEP_DRAW_WORKERS": "1"}),
              ("after", REPO, True, {"GLUE_SWEEP_DRAW_WORKERS": "2"})] if kind == "leaderboard" else
             [("after", REPO, True, {})]) + [("after_warm", REPO, False, {})]
        for label, src, cold, extra in runs_of:   # warm: after the cold run, its caches kept
            where = tmp / f"export-{label.split('_')[0]}-{n}"
            row[label] = time_command(src, kind, runs[n], where, args.repeats, cold, **extra)
            print(f"[exports] {label}: {kind} of {n:,} records: {row[label]['wall_s']} s", file=sys.stderr, flush=True)
        timings.append(row)
    doc = {"environment": env, "stores": {str(n): str(r) for n, r in runs.items()}, "timings": timings}
    if args.before:
        n = args.leaderboard_records
        doc["compared"] = n
        doc["same_output"] = compare_exports(tmp / f"export-before-{n}", tmp / f"export-after-{n}")
    if args.profile:
        doc["profiles"] = {f"{kind} of {n:,} records (warm)": profile_command(kind, runs[n], tmp / f"export-after-{n}")
                           for kind, n in dict.fromkeys(plan)}
    (out / "exports.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "exports.md").write_text(markdown(doc))
    print((out / "exports.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
