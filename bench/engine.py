"""What a sweep costs around its trials: 32 nearly-empty trials (BERT-Tiny random init, 16 training
rows of RTE, 1 epoch, 1 CPU each) run as a glue-sweep sweep (``glue-sweep run``, solo trials) and
as a bare Ray Tune function trainable calling the same runner in-process (``bench._bare_tune``:
``bare`` with Tune's defaults, a new actor per trial; ``bare-reuse`` with ``reuse_actors=True``),
one after the other on the same CPUs.

Each trial's worker writes its start and end (wall clock, pid, the runner's start-up, training
and evaluation seconds) through a hook module (``bench._events``), so the report splits the time:

* driver start-up: command start to the first trial starting in a worker;
* wall per trial: first trial start to last trial end, over the trials (the sweep's pace with
  all its CPUs busy: ``--cpus`` slots);
* in the trial: the trainable's own time (prepare, train, evaluate), the mean over trials;
* trial-to-trial in one worker: from a trial's end to the next trial's first training step in the
  same process (median and maximum), and how many worker processes ran the trials.

``--repo`` runs the glue-sweep variant from another checkout (an earlier commit, to compare with
it); the bare variant always runs this checkout's runner.

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.engine --out bench/out/engine

Writes ``<out>/engine.json`` and ``<out>/engine.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import child_env, default_glue_dir, fmt
from bench._machine import REPO, environment, git_state, loadavg

SEEDS, BATCH_SIZES, LRS = range(8), (8, 16), (1e-4, 5e-5)


def spec_text(name: str, glue_dir: str, results: Path) -> str:
    return (f"name: {name}\nmodels: [{{name: BERT-Tiny, init: random}}]\ntasks: [RTE]\n"
            f"search: {{mode: grid, batch_size: {list(BATCH_SIZES)}, learning_rate: {list(LRS)}}}\n"
            f"seeds: {list(SEEDS)}\nepochs: 1\nmax_train_examples: 16\nfuse: off\n"
            f"resources: {{cpus_per_trial: 1}}\nresults: {results}\ndata: {{glue_dir: {glue_dir}}}\n")


def bare_trials() -> list[dict]:
    from orchestrator.config import TrialConfig

    return [TrialConfig(model="BERT-Tiny", init="random", task="RTE", batch_size=b, learning_rate=lr, epochs=1,
                        max_train_examples=16, seed=s).to_dict() for s in SEEDS for b in BATCH_SIZES for lr in LRS]


def _run(cmd: list[str], env: dict, cwd: Path, timeout: float) -> tuple[float, float, int, str]:
    t0 = time.time()
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return t0, time.time(), r.returncode, (r.stdout + r.stderr)[-3000:]


def run_variant(variant: str, repo: Path, glue_dir: str, cpus: int, work: Path, timeout: float) -> dict:
    events = work / f"{variant}-events.jsonl"
    env = child_env(GLUE_SWEEP_BENCH_EVENTS=str(events), GLUE_DIR=glue_dir,
                    GLUE_SWEEP_CACHE=os.environ.get("GLUE_SWEEP_CACHE", str(work / "cache")))
    if variant == "glue-sweep":
        spec = work / "engine32.yaml"
        spec.write_text(spec_text("engine32", glue_dir, work / f"results-{time.time_ns()}"))
        env.update(GLUE_SWEEP_HOOKS=str(REPO / "bench" / "_events.py"),
                   PYTHONPATH=os.pathsep.join([str(repo), str(REPO)]))
        cmd = [sys.executable, "-m", "orchestrator.cli.main", "-q", "run", str(spec)]
        cwd = repo
    else:
        trials = work / "trials.json"
        trials.write_text(json.dumps(bare_trials()))
        cmd = [sys.executable, "-m", "bench._bare_tune", "--trials", str(trials), "--glue-dir", glue_dir,
               "--cpus", str(cpus)] + (["--reuse"] if variant == "bare-reuse" else [])
        cwd = REPO
    t0, t1, rc, tail = _run(cmd, env, cwd, timeout)
    if rc != 0:
        raise SystemExit(f"{variant} failed (exit {rc}):\n{tail}")
    return summarise(variant, [json.loads(l) for l in events.read_text().splitlines()], t0, t1)


def summarise(variant: str, events: list[dict], t0: float, t1: float) -> dict:
    """The report's figures of one variant from its events (pure)."""
    starts = {e["id"]: e for e in events if e["e"] == "start"}
    ends = {e["id"]: e for e in events if e["e"] == "end"}
    n = len(ends)
    first, last = min(e["t"] for e in starts.values()), max(e["t"] for e in ends.values())
    by_pid: dict[int, list[tuple[dict, dict]]] = {}
    for tid, end in ends.items():
        by_pid.setdefault(end["pid"], []).append((starts[tid], end))
    gaps = []
    for runs in by_pid.values():
        runs.sort(key=lambda se: se[0]["t"])
        for (_, prev_end), (nxt_start, nxt_end) in zip(runs, runs[1:]):
            gaps.append(nxt_start["t"] + nxt_end["startup_s"] - prev_end["t"])
    in_trial = [ends[t]["t"] - starts[t]["t"] for t in ends]
    return {"variant": variant, "trials": n, "workers": len(by_pid), "wall_s": round(t1 - t0, 2),
            "driver_startup_s": round(first - t0, 2), "wall_per_trial_s": round((last - first) / n, 3),
            "in_trial_s": round(statistics.mean(in_trial), 3),
            "startup_in_trial_s": round(statistics.mean(e["startup_s"] for e in ends.values()), 3),
            "trial_to_trial_s": {"median": round(statistics.median(gaps), 3), "max": round(max(gaps), 3),
                                 "n": len(gaps)} if gaps else None,
            "shutdown_s": round(t1 - last, 2)}


def report(rows: list[dict], meta: dict) -> str:
    out = [f"# Sweep engine: 32 nearly-empty trials ({meta['date']})", "",
           f"BERT-Tiny (random init), RTE, 16 training rows, 1 epoch, batch sizes {list(BATCH_SIZES)} x learning "
           f"rates {list(LRS)} x seeds 0-7, 1 CPU a trial, {meta['cpus']} CPUs; solo trials (fuse: off). "
           f"Load average before: {meta['load_before']}.", "",
           "| variant | wall s | driver start-up s | wall per trial s | in the trial s (start-up) | "
           "trial-to-trial in a worker s (median / max) | workers |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        tt = r["trial_to_trial_s"]
        out.append(f"| {r['variant']} | {r['wall_s']:.1f} | {r['driver_startup_s']:.1f} | {r['wall_per_trial_s']:.2f} | "
                   f"{r['in_trial_s']:.2f} ({r['startup_in_trial_s']:.2f}) | "
                   f"{fmt(tt and tt['median'])} / {fmt(tt and tt['max'])} | {r['workers']} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/out/engine")
    ap.add_argument("--glue-dir", default=default_glue_dir())
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    ap.add_argument("--variants", default="glue-sweep,bare-reuse,bare",
                    help="comma-separated: glue-sweep, bare-reuse, bare")
    ap.add_argument("--repo", default=str(REPO), help="the checkout the glue-sweep variant runs from")
    ap.add_argument("--label", default="", help="a suffix of the glue-sweep variant's name in the report")
    ap.add_argument("--timeout", type=float, default=1800)
    a = ap.parse_args()
    if not a.glue_dir:
        raise SystemExit("no GLUE data: set GLUE_DIR or pass --glue-dir")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "cpus": a.cpus, "load_before": loadavg(), "git": git_state(),
            "environment": environment()}
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for v in a.variants.split(","):
            row = run_variant(v, Path(a.repo).resolve(), a.glue_dir, a.cpus, Path(d), a.timeout)
            if v == "glue-sweep" and a.label:
                row["variant"] = f"glue-sweep {a.label}"
            rows.append(row)
            print(json.dumps(row), flush=True)
    (out / "engine.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (out / "engine.md").write_text(report(rows, meta))
    print(report(rows, meta))


if __name__ == "__main__":
    main()
