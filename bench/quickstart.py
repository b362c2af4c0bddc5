"""The quickstart sweep (``sweeps/quickstart.yaml``) with ``fuse: auto`` against the same spec
with ``fuse: off``, run one after the other in this checkout (``--order`` alternates which goes
first over ``--pairs``), each into a fresh results directory: wall time of ``glue-sweep run``,
trials stopped by ASHA, and each run's leaderboard (best configuration and score per model and
task) with every trial's scores, so equal results and the time each took are side by side.

``--no-asha`` also runs both without the scheduler (every trial its 3 epochs), which takes ASHA's
arrival order (a fused member and a solo trial can reach a rung in different orders, and so go
on or stop differently) out of the comparison.

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.quickstart --out bench/out/quickstart

Writes ``<out>/quickstart.json`` and ``<out>/quickstart.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import child_env, default_glue_dir, fmt
from bench._machine import REPO, environment, git_state, loadavg

SPEC = REPO / "sweeps" / "quickstart.yaml"


def spec_text(fuse: str, asha: bool, results: Path) -> str:
    text = SPEC.read_text().replace("fuse: auto", f"fuse: {fuse}")
    if f"fuse: {fuse}" not in text:
        raise SystemExit("sweeps/quickstart.yaml has no 'fuse: auto' line to change")
    if not asha:
        head, _, rest = text.partition("scheduler:")
        rest = rest.split("\n", 1)[1]
        while rest.startswith("  "):
            rest = rest.split("\n", 1)[1]
        text = head + "scheduler: {type: none}\n" + rest
    return text.replace("name: quickstart", f"name: quickstart-{fuse}") + f"results: {results}\n"


def run_one(fuse: str, asha: bool, glue_dir: str, work: Path) -> dict:
    from orchestrator.results.load import load_run
    from orchestrator.store import records as store

    spec = work / f"quickstart-{fuse}{'' if asha else '-noasha'}.yaml"
    spec.write_text(spec_text(fuse, asha, work / "results"))
    env = child_env(GLUE_DIR=glue_dir, HF_HUB_OFFLINE="1", RAY_AUTH_MODE="token")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "-q", "run", str(spec)], cwd=REPO, env=env,
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"glue-sweep run ({fuse}) exited {r.returncode}:\n{r.stderr[-3000:]}")
    run = work / "results" / f"quickstart-{fuse}"
    recs = store.read_records(run)[0]
    lb = load_run(run)
    board = [{"model": x.model, "task": x.task, "score": round(float(x.score), 2), "batch_size": int(x.batch_size),
              "learning_rate": float(x.learning_rate), "epoch": float(x.epoch)} for x in lb.results.itertuples()]
    trials = {x["trial_id"]: [round(e["score"], 2) for e in x["evals"]] for x in recs}
    return {"fuse": fuse, "asha": asha, "wall_s": round(wall, 1), "trials": len(recs),
            "stopped": sum(x["status"] == "stopped" for x in recs), "epochs_trained": sum(len(x["evals"]) for x in recs),
            "leaderboard": board, "scores": trials, "load_before": loadavg()}


def report(res: dict) -> str:
    lines = ["# The quickstart sweep: `fuse: auto` against `fuse: off`", "",
             f"{res['env'].get('cpu', '')}; torch {res['env'].get('torch', '?')}; "
             f"commit {res['git'].get('commit', '?')[:10]}; {res['date']}", "",
             "| run | scheduler | fuse | wall (s) | trials stopped | epochs trained |", "|---|---|---|---:|---:|---:|"]
    for i, r in enumerate(res["runs"]):
        lines.append(f"| {i + 1} | {'ASHA' if r['asha'] else 'none'} | {r['fuse']} | {fmt(r['wall_s'], '.1f')} | "
                     f"{r['stopped']} | {r['epochs_trained']} |")
    lines += ["", "Leaderboards (best configuration per model and task):", ""]
    for r in res["runs"]:
        board = "; ".join(f"{b['model']} {b['task']} {b['score']:.2f} (bs {b['batch_size']}, lr {b['learning_rate']:g}, "
                          f"epoch {b['epoch']:g})" for b in r["leaderboard"])
        lines.append(f"- {'ASHA' if r['asha'] else 'none'}, fuse {r['fuse']}: {board}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--glue-dir", default=default_glue_dir())
    ap.add_argument("--out", default="bench/out/quickstart")
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--no-asha", action="store_true", help="also both without the scheduler")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for asha in ([True, False] if a.no_asha else [True]):
        for k in range(a.pairs):
            for fuse in (("auto", "off") if k % 2 == 0 else ("off", "auto")):
                with tempfile.TemporaryDirectory(prefix="qs-") as work:
                    runs.append(run_one(fuse, asha, a.glue_dir, Path(work)))
                    print(f"{fuse} ({'ASHA' if asha else 'no scheduler'}): {runs[-1]['wall_s']} s", flush=True)
    res = {"date": time.strftime("%Y-%m-%d"), "env": environment(), "git": git_state(), "runs": runs}
    (out / "quickstart.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "quickstart.md").write_text(report(res))
    print(report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
