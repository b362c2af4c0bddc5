"""Our trial runner against ``transformers.Trainer`` on the same trial.

One trial (model, task, training rows, hyper-parameters, seed) is run three ways, each in its
own subprocess so that peak memory is per variant (``bench/_variants.py``; this module runs
them and writes the report):

* ``ours``            ``orchestrator.train.runner.prepare`` + ``run`` (dynamic padding, length grouping)
* ``trainer-default`` ``Trainer`` as ``run_glue.py`` sets it up by default: every example padded
                      to ``max_length`` (128), ``default_data_collator``, random sampling
* ``trainer-tuned``   ``Trainer`` with ``DataCollatorWithPadding`` (pad to the batch's longest)
                      and ``train_sampling_strategy="group_by_length"`` (5.x's name for the
                      old ``group_by_length=True``)

All three start from ``runner.prepare``: the same features (the feature cache), the same
``runner.train_subset`` rows, the same model with the same seeded head. The Trainer gets a
torch ``Dataset`` over those features and the same recipe: AdamW (weight decay 0.01, not on
biases / LayerNorm; eps 1e-6), linear warm-up over the first 10% of steps then linear decay,
gradient clipping at 1.0, evaluation at every epoch end, scored with ``orchestrator.registry.metrics``.
No checkpoints, no reporting.

Timing is identical for every variant, taken by hooks on the model and on every optimizer:
the training loop runs from the first training forward to the last optimizer step, minus the
time spent evaluating in between; examples/s is training examples seen (counted by the same
hook) over that time (``bench/_probe.py``). ``wall_s`` is ``prepare()`` through the end of
training and its evaluations (imports excluded). Peak memory is the process's peak RSS; it is
read before training and then reset so the training phase's own peak is reported too. After
timing, every variant's final model is also scored by the runner's own ``evaluate`` as a
cross-check of the Trainer's evaluation. The process's CPU time over the loop
(``cpu_ms_per_example``) and the share of the machine other processes used meanwhile
(``others_cpu_share``; ``bench/_machine.py``) are recorded too: on a shared machine wall-clock
timings are only comparable when that share is low, and with several torch threads on a busy
machine every op's threads wait for each other (use ``--threads 1`` there, and ``--repeats N``
to interleave runs and report medians).

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.compare_trainer --model all-MiniLM-L6-v2 --task SST-2 \\
        --max-train-examples 4000 --batch-size 32 --lr 1e-4 --epochs 1 --seed 0

Writes ``<out>/compare_trainer.json`` and ``<out>/compare_trainer.md`` (default out: bench/out).
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
from bench._variants import run_variant, warm_cache
from orchestrator.errors import UserError

VARIANTS = ("ours", "trainer-default", "trainer-tuned")


# --------------------------------------------------------------------------- parent

def _ratio(x, y):
    return round(x / y, 3) if x is not None and y else None


# Per-run numbers that repeats are summarised over (by their median).
MEDIAN_KEYS = ("examples_per_s", "train_loop_s", "ms_per_step", "train_loop_cpu_s", "cpu_ms_per_example",
               "optimizer_ms_per_step", "optimizer_cpu_ms_per_step", "optimizer_share_of_loop",
               "real_tokens_per_s", "wall_s", "train_and_eval_s", "eval_s", "prepare_s", "peak_rss_mib",
               "peak_rss_train_mib", "others_cpu_share", "steal_share", "process_wall_s")
RUN_KEYS = MEDIAN_KEYS + ("final_score", "check_score_runner_evaluate", "train_loss_mean", "loadavg_at_start")
RATIO_KEYS = {"examples_per_s": "examples_per_s", "train_loop_s": "train_loop_s",
              "cpu_ms_per_example": "cpu_ms_per_example", "wall_s": "wall_s", "peak_rss": "peak_rss_mib"}


def aggregate(runs: list[dict]) -> dict:
    """One variant's runs -> the first run's full record with the timing keys replaced by
    their median over the runs, and every run's timing keys under ``repeats``."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    agg = dict(ok[0])
    for k in MEDIAN_KEYS:
        vals = [r[k] for r in ok if r.get(k) is not None]
        agg[k] = round(statistics.median(vals), 3) if vals else None
    agg["repeats"] = [{k: r.get(k) for k in RUN_KEYS} if "error" not in r else r for r in runs]
    agg["n_runs"] = len(ok)
    agg["scores_identical_across_repeats"] = len({r.get("final_score") for r in ok}) == 1
    return agg


def build_report(a, results: dict[str, dict], env: dict) -> tuple[dict, str]:
    ok = {n: r for n, r in results.items() if "error" not in r}
    ours = ok.get("ours")
    ratios = {}
    for name, label in (("trainer-default", "ours/default"), ("trainer-tuned", "ours/tuned")):
        if ours and ok.get(name):
            ratios[label] = {k: _ratio(ours.get(key), ok[name].get(key)) for k, key in RATIO_KEYS.items()}
    lr_check = {}
    if ours and ours.get("lr_trace"):
        for name, r in ok.items():
            if name != "ours" and r.get("lr_trace"):
                same_len = len(r["lr_trace"]) == len(ours["lr_trace"])
                lr_check[name] = {"same_steps": same_len,
                                  "max_abs_diff": max(abs(x - y) for x, y in zip(ours["lr_trace"], r["lr_trace"]))
                                  if same_len else None}
    report = {"config": {k: v for k, v in vars(a).items() if k not in ("variant", "result_file")},
              "environment": env, "variants": results, "ratios": ratios, "lr_schedule_vs_ours": lr_check}
    return report, render(a, results, ratios, env)


def _variant_row(name: str, r: dict) -> str:
    if "error" in r:
        return f"| {name} | failed: {r['error'][:80]} |" + " |" * 13
    return "| " + " | ".join([
        name, fmt(r.get("final_score")), fmt(r.get("check_score_runner_evaluate")),
        fmt(r.get("examples_per_s"), ".1f"), fmt(r.get("cpu_ms_per_example"), ".1f"),
        fmt(None if r.get("padding_fraction") is None else 100 * r["padding_fraction"], ".1f") + "%",
        fmt(r.get("mean_batch_width"), ".1f"), fmt(r.get("optimizer_ms_per_step"), ".1f"),
        fmt(r.get("train_loop_s"), ".1f"), fmt(r.get("wall_s"), ".1f"), fmt(r.get("eval_s"), ".1f"),
        fmt(r.get("peak_rss_mib"), ".0f"), fmt(r.get("peak_rss_train_mib"), ".0f"),
        fmt(r.get("train_loss_mean"), ".4f"),
        fmt(None if r.get("others_cpu_share") is None else 100 * r["others_cpu_share"], ".0f") + "%"]) + " |"


def render(a, results: dict[str, dict], ratios: dict, env: dict) -> str:
    reps = f"; median of {a.repeats} interleaved runs per variant" if a.repeats > 1 else ""
    git = env["git"]
    lines = [f"# Runner vs transformers.Trainer: {a.model} on {a.task}",
             "",
             f"{env['train_examples']} training examples, batch {a.batch_size}, lr {a.lr:g}, {a.epochs:g} epoch(s), "
             f"seed {a.seed}, init {a.init}, max length {a.max_length}; device {env['device']}, "
             f"{env['threads']} thread(s), {env['cores']} CPU(s){reps}; torch {env['torch']}, "
             f"transformers {env['transformers']}; runner at {(git.get('commit') or '?')[:10]}"
             f"{' + local changes' if git.get('modified') else ''}"
             f"{' (runner files changed during the run!)' if git.get('runner_changed_during_run_to') else ''}.",
             "",
             "| variant | dev score | dev score (runner evaluate) | train ex/s | CPU ms/ex | padding | mean width "
             "| optimizer ms/step | train loop s | wall s | eval s | peak RSS MiB | peak RSS in training MiB | train loss "
             "| others' CPU |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [_variant_row(name, r) for name, r in results.items()]
    if ratios:
        lines += ["", "| ratio | throughput (ex/s) | train loop time | CPU per example | wall time | peak RSS |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {k} | " + " | ".join(fmt(v[c], ".3f") for c in RATIO_KEYS) + " |" for k, v in ratios.items()]
    lines += ["", "Train ex/s: training examples over the training loop (first training forward to last optimizer "
                  "step, evaluations excluded), timed by the same hooks for every variant; CPU ms/ex: this process's "
                  "CPU time over the same span. Wall: prepare() through the end of training and its evaluations. "
                  "Peak RSS: the variant's own process; 'in training' after resetting it once the model and "
                  "data were loaded. Others' CPU: share of the machine's CPU time used by other processes during "
                  "the loop (high = contended timing)."]
    self_rep = [(n, r["self_reported"]) for n, r in results.items() if "error" not in r and r.get("self_reported")]
    if self_rep:
        lines += ["", "Self-reported throughput (each includes evaluation time): " + "; ".join(
            f"{n} {s.get('examples_per_s')} ex/s" for n, s in self_rep) + "."]
    return "\n".join(lines) + "\n"


def _child_cmd(a, variant: str, result_file: Path) -> list[str]:
    argv = [sys.executable, "-m", "bench.compare_trainer", "--variant", variant, "--result-file", str(result_file),
            "--model", a.model, "--task", a.task, "--batch-size", str(a.batch_size), "--lr", repr(a.lr),
            "--epochs", repr(a.epochs), "--seed", str(a.seed), "--init", a.init, "--max-length", str(a.max_length),
            "--eval-batch-size", str(a.eval_batch_size)]
    if a.max_train_examples:
        argv += ["--max-train-examples", str(a.max_train_examples)]
    for flag, v in (("--threads", a.threads), ("--device", a.device), ("--glue-dir", a.glue_dir), ("--hub", a.hub),
                    ("--trainer-optim", a.trainer_optim)):
        if v:
            argv += [flag, str(v)]
    return argv


def _run_child(a, v: str, i: int, tmp: str) -> dict | None:
    """One child process (a variant's run, or the cache warm-up); None when the warm-up failed."""
    rf = Path(tmp) / f"{v}-{i}.json"
    tag = v if a.repeats == 1 or v == "warm" else f"{v} (run {i + 1}/{a.repeats})"
    load = loadavg()
    print(f"== {tag}  (load average {load})", file=sys.stderr, flush=True)
    t = time.perf_counter()
    proc = subprocess.run(_child_cmd(a, v, rf), cwd=REPO, env=child_env(a.threads))
    wall = round(time.perf_counter() - t, 2)
    if proc.returncode != 0 or not rf.is_file():
        print(f"== {tag} failed: exit code {proc.returncode}", file=sys.stderr, flush=True)
        return None if v == "warm" else {"variant": v, "error": f"exit code {proc.returncode}"}
    r = json.loads(rf.read_text())
    r["process_wall_s"], r["loadavg_at_start"] = wall, load
    if v == "warm":
        print(f"== warm cache: {r}", file=sys.stderr, flush=True)
    else:
        print(f"== {tag}: score {r.get('final_score')}, {r.get('examples_per_s')} ex/s, "
              f"{r.get('cpu_ms_per_example')} CPU ms/ex, wall {r.get('wall_s')} s, peak RSS {r.get('peak_rss_mib')} "
              f"MiB, others' CPU {r.get('others_cpu_share')}", file=sys.stderr, flush=True)
    return r


def parent(a) -> int:
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        print(f"compare_trainer: unknown variant(s) {bad}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    git_start = git_state()
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="compare-trainer-") as tmp:
        if _run_child(a, "warm", 0, tmp) is None:
            return 1
        for i in range(a.repeats):   # interleaved repeats
            for v in variants:
                runs[v].append(_run_child(a, v, i, tmp))
    results = {v: aggregate(rs) for v, rs in runs.items()}
    git_end = git_state()
    if git_end["runner_files_sha256"] != git_start["runner_files_sha256"]:   # the runner was edited while this ran
        git_start["runner_changed_during_run_to"] = git_end
    first = next((r for r in results.values() if "error" not in r), {})
    env = {**environment(), "git": git_start, "device": first.get("device"), "threads": first.get("threads"),
           "train_examples": first.get("train_examples"), "n_params": first.get("n_params")}
    report, md = build_report(a, results, env)
    (out / "compare_trainer.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "compare_trainer.md").write_text(md)
    print(md)
    print(f"wrote {out / 'compare_trainer.json'} and {out / 'compare_trainer.md'}", file=sys.stderr)
    return 0 if all("error" not in r for r in results.values()) else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.compare_trainer", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--task", default="SST-2")
    p.add_argument("--max-train-examples", type=int, default=4000, help="0: the whole training split")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", choices=["pretrained", "random"], default="pretrained")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=256, help="for every variant (the runner's default)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads in every variant")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when there is one)")
    p.add_argument("--glue-dir", default=None, help="GLUE directory (default: $GLUE_DIR, else ../shared/glue_data)")
    p.add_argument("--hub", default=None, help="hub dataset id or local parquet mirror instead of a GLUE directory")
    p.add_argument("--trainer-optim", default=None,
                   help="TrainingArguments.optim for the Trainer variants (default: the Trainer's own default)")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per variant, interleaved (ours, default, tuned, ours, ...); timings are medians")
    p.add_argument("--out", default=str(REPO / "bench" / "out"), help="directory for compare_trainer.json/.md")
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result-file", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    a = build_parser().parse_args(argv)
    if a.max_train_examples is not None and a.max_train_examples <= 0:
        a.max_train_examples = None
    if not a.glue_dir and not a.hub:
        a.glue_dir = default_glue_dir()
    if a.repeats < 1:
        print("compare_trainer: --repeats must be at least 1", file=sys.stderr)
        return 2
    if a.variant is None:
        return parent(a)
    try:
        result = warm_cache(a) if a.variant == "warm" else run_variant(a)
    except UserError as e:
        print(f"compare_trainer ({a.variant}): error: {e}", file=sys.stderr)
        return 2
    Path(a.result_file).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
