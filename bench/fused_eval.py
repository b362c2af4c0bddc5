"""A fused unit's evaluation, stacked against member by member, in one process: K members of one
model (its weights, each member's perturbed by its own noise) scored on the task's dev split(s)

* ``stacked``: ``orchestrator.fused.evaluation.Evaluator``, one stacked forward per dev batch of
  ``eval_batch_size // K`` rows a member, each member's metrics by the solo code;
* ``member_by_member``: each member's weights copied into the transformers model
  (``fused.stacked.load_member``) and scored by ``runner.evaluate``, one member after another.

The two take turns ``--repeats`` times; each way's fastest run counts (on a shared machine the
least disturbed). Both ways' predictions are compared row by row.

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.fused_eval --model BERT-Tiny --init random --repeats 5

Writes ``<out>/fused_eval.json`` and ``<out>/fused_eval.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench._common import default_glue_dir
from bench._machine import REPO, environment, loadavg
from orchestrator.config import Runtime, TrialConfig
from orchestrator.data.sources import source_from
from orchestrator.fused.evaluation import Evaluator, member_batch
from orchestrator.fused.stacked import WORDS, Vocabulary, load_member, stack_parameters
from orchestrator.train import runner


def unit(p: runner.Prepared, k: int, seed: int):
    """K members as a unit stacks them (the training set's word rows only), each perturbed."""
    weight = dict(p.model.named_parameters())[WORDS]
    words = Vocabulary(p.train.input_ids, weight, k) if weight.requires_grad else None
    params = stack_parameters(p.model, k, words)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in params.values():
            t.add_(torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.02)
    if words is not None:
        words.decay([1e-3 * (i + 1) for i in range(k)], 0.01)   # each member's untrained rows decayed apart
    return params, words


def measure(a) -> dict:
    torch.set_num_threads(a.threads)
    cfg = TrialConfig(model=a.model, task=a.task, init=a.init, seed=a.seed, batch_size=32, learning_rate=1e-4,
                      max_train_examples=a.max_train_examples, eval_batch_size=a.eval_batch_size)
    p = runner.prepare(cfg, source_from(a.glue_dir), runtime=Runtime(threads=a.threads))
    params, words = unit(p, a.k, a.seed)
    scorer = Evaluator(p, words)

    def stacked():
        return scorer.evaluate(params)

    def member_by_member():
        out = []
        for i in range(a.k):
            load_member(p.model, params, i, words)
            out.append(runner.evaluate(p))
        return out

    ways, times, cpu, scores = {"stacked": stacked, "member_by_member": member_by_member}, {}, {}, {}
    load_before = loadavg()
    for _ in range(a.repeats):
        for name, f in ways.items():
            t0, c0 = time.perf_counter(), time.process_time()
            scores[name] = f()
            times.setdefault(name, []).append(round(time.perf_counter() - t0, 3))
            cpu.setdefault(name, []).append(round(time.process_time() - c0, 3))
    got = scorer.predict(params)
    differ, worst = 0, 0.0
    for i in range(a.k):
        load_member(p.model, params, i, words)
        for name, enc in p.evals.items():
            ref = runner.predict(p, enc)
            if p.task.is_regression:
                worst = max(worst, float(np.abs(got[name][i] - ref).max()))
            else:
                differ += int((got[name][i] != ref).sum())
    best = {name: min(ts) for name, ts in times.items()}
    best_cpu = {name: min(ts) for name, ts in cpu.items()}
    return {"config": vars(a), "environment": environment(torch, p.device), "load_before": load_before,
            "load_after": loadavg(),
            "dev_rows": {name: len(e) for name, e in p.evals.items()},
            "rows_per_member_batch": member_batch(cfg.eval_batch_size, a.k),
            "seconds": times, "best_s": best, "speedup": round(best["member_by_member"] / best["stacked"], 3),
            "cpu_seconds": cpu, "best_cpu_s": best_cpu,
            "cpu_speedup": round(best_cpu["member_by_member"] / best_cpu["stacked"], 3),
            "rows_differing": differ, "max_abs_score_difference": worst,
            "headline": {name: [s for _, s in v] for name, v in scores.items()}}


def render(r: dict) -> str:
    a, env, b, c = r["config"], r["environment"], r["best_s"], r["best_cpu_s"]
    rows = ", ".join(f"{n} {v}" for n, v in r["dev_rows"].items())
    return "\n".join([
        f"# Fused evaluation: {a['model']} ({a['init']}), {a['task']} dev ({rows} rows), K = {a['k']}", "",
        f"{env.get('date', '')}; {env.get('cpu')}, {env.get('cores')} cores; torch {env.get('torch')}, "
        f"transformers {env.get('transformers')}; {a['threads']} threads; load average before {r['load_before']}, "
        f"after {r['load_after']}", "",
        f"eval batch {a['eval_batch_size']}: stacked batches of {r['rows_per_member_batch']} rows a member", "",
        "| way | fastest wall s | every run's wall s | least CPU s | every run's CPU s |", "|---|---:|---|---:|---|",
        *[f"| {label} | {b[k]} | {r['seconds'][k]} | {c[k]} | {r['cpu_seconds'][k]} |"
          for k, label in (("member_by_member", "member by member (load_member + runner.evaluate)"),
                           ("stacked", "stacked (Evaluator)"))], "",
        f"member by member / stacked: **{r['speedup']}x** wall, **{r['cpu_speedup']}x** CPU time (steadier when "
        f"other work shares the cores); rows whose class differs: {r['rows_differing']}; "
        f"largest regression-score difference: {r['max_abs_score_difference']:.2e}", "",
        f"each member's headline score, stacked {r['headline']['stacked']}, member by member "
        f"{r['headline']['member_by_member']}", ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fused_eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="BERT-Tiny")
    ap.add_argument("--init", default="random")
    ap.add_argument("--task", default="SST-2")
    ap.add_argument("--k", type=int, default=4, help="members")
    ap.add_argument("--max-train-examples", type=int, default=4000, help="the training rows (the stacked word rows)")
    ap.add_argument("--eval-batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each way, taking turns; the fastest counts")
    ap.add_argument("--glue-dir", default=default_glue_dir())
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "fused-eval"))
    a = ap.parse_args(argv)
    report = measure(a)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fused_eval.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "fused_eval.md").write_text(render(report))
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
