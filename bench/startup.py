"""Per-trial start-up time: from a trial's start to its first training step, with a cold and
a warm feature cache.

Every measurement is one trial (``runner.run_trial``, as a sweep worker runs it) in its own
subprocess, so nothing is warm in-process; imports happen before the trial starts and are
reported apart (``import_s``), and so is the process's whole wall time. The trial is stopped
right after its first training step. Start-up is the runner's own ``TrialResult.startup_s`` (to the
millisecond; ``on_progress`` returning False stops the trial after its first step), broken down by
``Prepared.timings``: tokenizer load, train and dev features (cache load, or reading the raw
data and tokenising it), model build or load, moving it to the device, and ``run``'s set-up
until the first step (optimizer, scheduler, batch order).

* cold: a fresh, empty ``GLUE_SWEEP_CACHE``: the raw data is read and tokenised;
* warm: the same cache directory again (``--repeats`` runs, median reported).

Each trial also records whether the raw data was touched: calls of the source's ``load``,
calls of ``features.encode`` (tokenisation), and every file under the data directory opened
during the trial (a ``sys.addaudithook`` hook on ``open``). A warm trial must read no raw data
and tokenise nothing. The criterion reported: warm start-up under ``--limit-s`` (3 s) for
every model, PASS/FAIL each; a failed criterion is a result, not an error (exit status 0);
a trial that fails to run is an error (exit status 1).

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.startup --out bench/out/startup

Writes ``<out>/startup.json`` and ``<out>/startup.md``. The OS file cache is not dropped, so
"cold" means a cold feature cache, not cold disks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import child_env, default_glue_dir, fmt
from bench._machine import REPO, contention, cpu_snapshot, environment, git_state, loadavg
from orchestrator.errors import UserError
from orchestrator.registry.models import resolve

DEFAULT_MODELS = ("BERT-Tiny", "BERT-Mini", "BERT-Small", "BERT-Medium", "BERT-Base", "all-MiniLM-L6-v2:pretrained")
PHASES = ("setup_s", "tokenizer_s", "features_train_s", "features_eval_s", "model_s", "to_device_s",
          "until_first_step_s")


# --------------------------------------------------------------------------- child: one trial

def _watch_raw_data(source, feats) -> tuple[dict, list]:
    """Counts what touches the raw data: calls (and seconds) of the source's reader and of the
    tokeniser, and every file under the data directory opened at all while ``armed[0]``."""
    root = getattr(source, "root", None) or getattr(source, "local", None)
    data_root = os.path.realpath(root) + os.sep if root is not None else None
    touched = {"raw_loads": 0, "raw_load_s": 0.0, "tokenise_calls": 0, "tokenise_s": 0.0, "opened": []}
    armed = [False]

    def audit(event, args):
        if event != "open" or not armed[0] or data_root is None:
            return
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)):
            p = os.path.realpath(os.fsdecode(path))
            if p.startswith(data_root):
                touched["opened"].append(p)

    sys.addaudithook(audit)

    def counted(fn, count_key, time_key):
        def wrapper(*args, **kw):
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                touched[count_key] += 1
                touched[time_key] += time.perf_counter() - t
        return wrapper

    source.load = counted(source.load, "raw_loads", "raw_load_s")
    feats.encode = counted(feats.encode, "tokenise_calls", "tokenise_s")   # features() looks it up at call time
    return touched, armed


def measure(a) -> dict:
    """One trial, stopped after its first step; everything it did before that, timed."""
    t0 = time.perf_counter()
    # The imports a trial process pays for are measured here (import_s), so they are made here.
    import numpy  # noqa: F401
    import torch
    import transformers  # noqa: F401
    import transformers.models.bert.modeling_bert  # noqa: F401  (transformers imports lazily)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertTokenizer  # noqa: F401

    from orchestrator.config import Runtime, TrialConfig
    from orchestrator.data import features as feats
    from orchestrator.data.sources import source_from
    from orchestrator.train import runner

    import_s = time.perf_counter() - t0
    if a.threads:
        torch.set_num_threads(a.threads)
    source = source_from(a.glue_dir, a.hub)
    touched, armed = _watch_raw_data(source, feats)
    config = TrialConfig(model=a.model, task=a.task, batch_size=a.batch_size, learning_rate=2e-5, epochs=1,
                         seed=0, init=a.init, max_length=a.max_length)
    seen: dict = {}

    def after_prepare(p):
        seen["p"], seen["t_prepared"] = p, time.perf_counter()

    def on_progress(step, total, loss):
        seen["t_first_step_done"], seen["total_steps"] = time.perf_counter(), total
        return False   # the trial has started: stop it

    snap0 = cpu_snapshot()
    armed[0] = True
    t_call = time.perf_counter()
    try:
        res = runner.run_trial(config, source, on_progress=on_progress, after_prepare=after_prepare,
                               runtime=Runtime(device=a.device, threads=a.threads))
    finally:
        armed[0] = False
    snap1 = cpu_snapshot()
    if res.steps != 1 or res.status != "stopped":
        raise RuntimeError(f"the trial was to stop after its first step; it ran {res.steps} ({res.status})")
    rec = _record(a, res.startup_s, seen, t_call, import_s, touched)
    rec["threads"] = torch.get_num_threads()
    rec.update(contention(snap0, snap1))
    return rec


def _record(a, startup: float, seen: dict, t_call: float, import_s: float, touched: dict) -> dict:
    p = seen["p"]
    tm = dict(p.timings)
    breakdown = {k: round(tm.get(k, 0.0), 4) for k in PHASES[:-1]}
    breakdown["until_first_step_s"] = round(max(0.0, t_call + startup - seen["t_prepared"]), 4)
    rec = {
        "model": a.model, "init": a.init, "task": a.task,
        "startup_s": round(startup, 4),
        "breakdown": breakdown,
        "prepare_s": round(tm.get("prepare_s", 0.0), 4),
        "unaccounted_s": round(startup - sum(breakdown.values()), 4),
        "first_step_s": round(seen["t_first_step_done"] - (t_call + startup), 4),
        "import_s": round(import_s, 3),
        "cache_stats": dict(p.cache_stats),
        "raw_loads": touched["raw_loads"],
        "raw_load_s": round(touched["raw_load_s"], 4),
        "tokenise_calls": touched["tokenise_calls"],
        "tokenise_s": round(touched["tokenise_s"], 4),
        "raw_files_opened": sorted(set(touched["opened"])),
        "train_examples": len(p.train),
        "eval_examples": {k: len(v) for k, v in p.evals.items()},
        "n_params": sum(x.numel() for x in p.model.parameters()),
        "device": str(p.device),
    }
    rec["warm_clean"] = (rec["raw_loads"] == 0 and rec["tokenise_calls"] == 0 and not rec["raw_files_opened"]
                         and not rec["cache_stats"].get("misses"))
    return rec


# --------------------------------------------------------------------------- parent

def parse_models(text: str) -> list[tuple[str, str]]:
    """``name[:init]`` items -> (name, init); the init defaults to random for a miniature
    (no checkpoint offline) and pretrained for anything else."""
    out = []
    for item in [x.strip() for x in text.split(",") if x.strip()]:
        name, _, init = item.partition(":")
        if not init:
            init = "random" if resolve(name).shape else "pretrained"
        if init not in ("random", "pretrained"):
            raise ValueError(f"init must be random or pretrained, not {init!r} (in {item!r})")
        out.append((name, init))
    return out


def _child_cmd(a, model: str, init: str, task: str, result_file: Path) -> list[str]:
    argv = [sys.executable, "-m", "bench.startup", "--child", "--model", model, "--init", init, "--task", task,
            "--result-file", str(result_file), "--batch-size", str(a.batch_size), "--max-length", str(a.max_length),
            "--threads", str(a.threads)]
    for flag, v in (("--device", a.device), ("--glue-dir", a.glue_dir), ("--hub", a.hub)):
        if v:
            argv += [flag, str(v)]
    return argv


def run_one(a, model: str, init: str, task: str, cache: Path, tag: str, tmp: Path) -> dict:
    env = child_env(a.threads, GLUE_SWEEP_CACHE=str(cache))
    rf = tmp / f"result-{time.monotonic_ns()}.json"
    load = loadavg()
    t = time.perf_counter()
    proc = subprocess.run(_child_cmd(a, model, init, task, rf), cwd=REPO, env=env, capture_output=True, text=True)
    wall = round(time.perf_counter() - t, 2)
    if proc.returncode != 0 or not rf.is_file():
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        err = f"exit code {proc.returncode}: " + " | ".join(tail)
        print(f"   {tag}: failed: {err}", file=sys.stderr, flush=True)
        return {"error": err}
    r = json.loads(rf.read_text())
    r["process_wall_s"], r["loadavg_at_start"] = wall, load
    b = r["breakdown"]
    print(f"   {tag}: start-up {r['startup_s']:.3f} s (tokenizer {b['tokenizer_s']:.3f}, features "
          f"{b['features_train_s'] + b['features_eval_s']:.3f}, model {b['model_s']:.3f}, to device "
          f"{b['to_device_s']:.3f}, to first step {b['until_first_step_s']:.3f}); cache {r['cache_stats']}, "
          f"tokenised {r['tokenise_calls']}x, raw files opened {len(r['raw_files_opened'])}; imports {r['import_s']:.2f} s, "
          f"process {wall:.1f} s", file=sys.stderr, flush=True)
    return r


def summarise(runs: list[dict]) -> dict:
    """Median start-up and per-phase medians over the runs; every run kept under ``runs``."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[0]["error"] if runs else "no runs", "runs": runs}

    def med(vals):
        return round(statistics.median(vals), 4)

    return {
        "startup_s": med([r["startup_s"] for r in ok]),
        "breakdown": {k: med([r["breakdown"][k] for r in ok]) for k in PHASES},
        "import_s": med([r["import_s"] for r in ok]),
        "process_wall_s": med([r["process_wall_s"] for r in ok]),
        "first_step_s": med([r["first_step_s"] for r in ok]),
        "cache_stats": ok[0]["cache_stats"],
        "tokenised": any(r["tokenise_calls"] for r in ok),
        "raw_data_read": any(r["raw_loads"] or r["raw_files_opened"] for r in ok),
        "n_runs": len(ok), "n_errors": len(runs) - len(ok),
        "runs": runs,
    }


def build_markdown(a, report: dict) -> str:
    env = report["environment"]
    lines = ["# Trial start-up time, cold and warm feature cache",
             "",
             f"{env['cpu']}, {env['cores']} core(s), {a.threads} torch thread(s); torch {env['torch']}, "
             f"transformers {env['transformers']}; at {(env['git'].get('commit') or '?')[:10]}"
             f"{' + local changes' if env['git'].get('modified') else ''}. Start-up: trial start to first "
             f"training step (imports and process start excluded); cold: fresh empty feature cache "
             f"(median of {a.cold_repeats}), warm: the same cache again (median of {a.repeats}). Batch {a.batch_size}, "
             f"max length {a.max_length}. Criterion: warm start-up < {a.limit_s:g} s.",
             "",
             "| task | model | init | params | cold s | cold: features s (tokenise s) | warm s | warm: tokenizer | features "
             "| model | to device | to first step | raw data read / tokenised when warm | imports s | warm < "
             f"{a.limit_s:g} s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for r in report["results"]:
        c, w = r["cold"], r["warm"]
        if "error" in c or "error" in w:
            lines.append(f"| {r['task']} | {r['model']} | {r['init']} | | failed: {(c.get('error') or w.get('error'))[:80]} "
                         "|" + " |" * 10)
            continue
        cb, wb = c["breakdown"], w["breakdown"]
        tok_s = statistics.median([x["tokenise_s"] for x in c["runs"] if "error" not in x])
        n_params = next(x["n_params"] for x in w["runs"] if "error" not in x)
        lines.append("| " + " | ".join([
            r["task"], r["model"], r["init"], f"{n_params / 1e6:.1f}M", fmt(c["startup_s"]),
            f"{fmt(cb['features_train_s'] + cb['features_eval_s'])} ({fmt(tok_s)})", fmt(w["startup_s"]),
            fmt(wb["tokenizer_s"], ".3f"), fmt(wb["features_train_s"] + wb["features_eval_s"], ".3f"),
            fmt(wb["model_s"], ".3f"), fmt(wb["to_device_s"], ".3f"), fmt(wb["until_first_step_s"], ".3f"),
            f"{'yes' if w['raw_data_read'] else 'no'} / {'yes' if w['tokenised'] else 'no'}",
            fmt(w["import_s"]), "PASS" if r["pass"] else "FAIL"]) + " |")
    lines += ["", "Features: the train and dev splits (cold: reading the raw data, tokenising, writing the cache; "
                  "warm: loading the cache). To first step: run()'s set-up (optimizer, scheduler, batch order) "
                  "after prepare(). PASS needs the warm start-up under the limit and, when warm, no raw data file "
                  "opened and nothing tokenised."]
    return "\n".join(lines) + "\n"


def parent(a) -> int:
    try:
        models = parse_models(a.models)
    except Exception as e:
        print(f"startup: {e}", file=sys.stderr)
        return 2
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    if not models or not tasks:
        print("startup: give at least one model and one task", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    git = git_state()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp_s:
        tmp = Path(tmp_s)
        for task in tasks:
            for model, init in models:
                print(f"== {model} ({init}) on {task}", file=sys.stderr, flush=True)
                cold_runs, cache = [], None
                for i in range(a.cold_repeats):
                    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=tmp))   # fresh and empty
                    cold_runs.append(run_one(a, model, init, task, cache, f"cold {i + 1}/{a.cold_repeats}", tmp))
                warm_runs = [run_one(a, model, init, task, cache, f"warm {i + 1}/{a.repeats}", tmp)
                             for i in range(a.repeats)]
                shutil.rmtree(cache, ignore_errors=True)
                cold, warm = summarise(cold_runs), summarise(warm_runs)
                entry = {"task": task, "model": model, "init": init, "cold": cold, "warm": warm}
                if "error" in warm:
                    entry["pass"] = False
                else:
                    entry["warm_clean"] = not warm["raw_data_read"] and not warm["tokenised"] and not warm["cache_stats"].get("misses")
                    entry["under_limit"] = warm["startup_s"] < a.limit_s
                    entry["pass"] = entry["warm_clean"] and entry["under_limit"]
                results.append(entry)
                verdict = "PASS" if entry["pass"] else "FAIL"
                print(f"== {model} on {task}: cold {fmt(cold.get('startup_s'), '.3f')} s, warm "
                      f"{fmt(warm.get('startup_s'), '.3f')} s (limit {a.limit_s:g} s): {verdict}", file=sys.stderr, flush=True)
    git_end = git_state()
    if git_end["runner_files_sha256"] != git["runner_files_sha256"]:
        git["runner_changed_during_run_to"] = git_end
    config = {k: v for k, v in vars(a).items() if k not in ("child", "result_file", "model", "init", "task")}
    report = {"config": config, "environment": {**environment(), "git": git, "threads": a.threads,
                                                      "models_dir": os.environ.get("MODELS_DIR")}, "limit_s": a.limit_s, "results": results,
              "all_pass": all(r["pass"] for r in results)}
    md = build_markdown(a, report)
    (out / "startup.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "startup.md").write_text(md)
    print(md)
    for r in results:
        w = r["warm"].get("startup_s")
        print(f"{'PASS' if r['pass'] else 'FAIL'}  {r['model']} ({r['init']}) on {r['task']}: warm {fmt(w, '.3f')} s"
              f" < {a.limit_s:g} s" + ("" if r.get("warm_clean", True) else "; raw data read or tokenised when warm"))
    print(f"wrote {out / 'startup.json'} and {out / 'startup.md'}", file=sys.stderr)
    errors = any("error" in r["cold"] or "error" in r["warm"] or r["cold"].get("n_errors") or r["warm"].get("n_errors")
                 for r in results)
    return 1 if errors else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help="comma-separated name[:init]; init defaults to random for miniatures, else pretrained")
    p.add_argument("--tasks", default="SST-2", help="comma-separated GLUE tasks (e.g. SST-2,MRPC)")
    p.add_argument("--repeats", type=int, default=3, help="warm runs per model and task (median reported)")
    p.add_argument("--cold-repeats", type=int, default=1, help="cold runs per model and task, each a fresh cache")
    p.add_argument("--limit-s", type=float, default=3.0, help="the criterion: warm start-up under this")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--device", default=None, help="cpu or cuda (default: the runner's, cuda when there is one)")
    p.add_argument("--glue-dir", default=None, help="GLUE directory (default: $GLUE_DIR, else ../shared/glue_data)")
    p.add_argument("--hub", default=None, help="hub dataset id or local parquet mirror instead of a GLUE directory")
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "startup"), help="directory for startup.json/.md")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    p.add_argument("--init", default="random", help=argparse.SUPPRESS)
    p.add_argument("--task", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result-file", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    a = build_parser().parse_args(argv)
    if not a.glue_dir and not a.hub:
        a.glue_dir = default_glue_dir()
    if a.repeats < 1 or a.cold_repeats < 1:
        print("startup: --repeats and --cold-repeats must be at least 1", file=sys.stderr)
        return 2
    if not a.child:
        return parent(a)
    try:
        result = measure(a)
    except UserError as e:
        print(f"startup ({a.model} on {a.task}): error: {e}", file=sys.stderr)
        return 2
    Path(a.result_file).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
