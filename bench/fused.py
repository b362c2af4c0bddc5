"""Fused units against one trial per learning rate: the same K trials (one model, task, batch
size and seed; K learning rates; with ``--seeds N``, K learning rates x N seeds) trained three
ways, each in fresh processes:

* ``fused``: one process with ``--threads`` threads trains the K trials as one fused unit
  (``orchestrator.fused.loop.run_unit``);
* ``sequential``: one process with the same threads runs the K trials one after another
  (``orchestrator.train.runner.run_trial``), which is also each member's solo trial;
* ``packed``: ``--processes`` processes with one thread each, the K trials dealt out between them
  and run one after another in each, all processes started together.

Training examples/s is the runner's (training only, evaluations excluded); the aggregate is all
trials' training examples over the training seconds (sequential: their sum; packed: the sum of
the processes' own rates, which run at the same time). Dev scores: each fused member against its
solo trial (on CPU a member draws its solo trial's dropout masks, so they agree to float
rounding: a prediction on the boundary may flip).

``--choice`` also times one fused step of the two ways to stack a model, on the same batches:
``torch.func.vmap`` over ``functional_call`` of the transformers model, and the stacked weights
with batched matmuls of ``orchestrator.fused.stacked``, against K separate models.

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.fused --model BERT-Tiny --init random --out bench/out/fused-tiny
    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.fused --seeds 3 --variants fused sequential packed --out bench/out/fused-seeds

Writes ``<out>/fused.json`` and ``<out>/fused.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench._common import child_env, default_glue_dir, fmt
from bench._machine import REPO, environment, loadavg

LRS = (3e-4, 1e-4, 5e-5, 3e-5)


VARIANTS = ("fused", "fused_all_words", "sequential", "packed")


def seeds_of(a) -> list[int]:
    return list(range(a.seed, a.seed + a.seeds))


def configs(a) -> list[dict]:
    """The trials: every learning rate of every seed (seed by seed)."""
    return [dict(model=a.model, task=a.task, batch_size=a.batch_size, learning_rate=lr, epochs=a.epochs, seed=seed,
                 init=a.init, max_train_examples=a.max_train_examples) for seed in seeds_of(a) for lr in a.lrs]


def child(spec: dict) -> dict:
    """In a child process: run the given trials fused or one after another; their results."""
    import torch

    from orchestrator.config import Runtime, TrialConfig
    from orchestrator.data.sources import source_from
    from orchestrator.fused import loop as fused
    from orchestrator.train import runner

    torch.set_num_threads(spec["threads"])
    fused.STACK_ALL_WORDS = spec["mode"] == "fused_all_words"
    cfgs = [TrialConfig(**c) for c in spec["configs"]]
    src, rt = source_from(spec["glue_dir"]), Runtime(threads=spec["threads"])
    t0, c0 = time.perf_counter(), time.process_time()
    if spec["mode"].startswith("fused"):
        results = fused.run_unit(cfgs, src, runtime=rt)
        train_s = results[0].train_s if results else 0.0
    else:
        results = [runner.run_trial(c, src, runtime=rt) for c in cfgs]
        train_s = sum(r.train_s for r in results)
    examples = sum(r.steps * c.batch_size for r, c in zip(results, cfgs))
    cpu_s = time.process_time() - c0
    return {"mode": spec["mode"], "threads": torch.get_num_threads(), "wall_s": round(time.perf_counter() - t0, 2),
            "cpu_s": round(cpu_s, 2), "examples_per_cpu_s": round(examples / cpu_s, 2) if cpu_s else None,
            "train_s": round(train_s, 3), "examples": examples,
            "examples_per_s": round(examples / train_s, 2) if train_s else None,
            "trials": [{"learning_rate": c.learning_rate, "seed": c.seed, "status": r.status, "steps": r.steps,
                        "dev": r.evals[-1].score if r.evals else None,
                        "train_loss": r.evals[-1].train_loss if r.evals else None, "train_s": r.train_s} for c, r in zip(cfgs, results)]}


def spawn(a, mode: str, cfgs: list[dict], threads: int) -> subprocess.Popen:
    spec = {"mode": mode, "configs": cfgs, "threads": threads, "glue_dir": a.glue_dir}
    return subprocess.Popen([sys.executable, "-m", "bench.fused", "--child", json.dumps(spec)], cwd=REPO,
                            env=child_env(threads), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect(procs: list[subprocess.Popen]) -> list[dict]:
    out = []
    for p in procs:
        stdout, err = p.communicate(timeout=3600)
        if p.returncode:
            raise SystemExit(f"bench.fused: a child failed: {(err or '').strip().splitlines()[-1:]}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def packed(a, cfgs: list[dict]) -> dict:
    packs = [cfgs[i::a.processes] for i in range(a.processes)]
    runs = collect([spawn(a, "sequential", part, 1) for part in packs if part])
    ex, cpu = sum(r["examples"] for r in runs), sum(r["cpu_s"] for r in runs)
    return {"processes": len(runs), "examples": ex, "cpu_s": round(cpu, 2),
            "examples_per_s": round(sum(r["examples_per_s"] for r in runs), 2),
            "examples_per_cpu_s": round(ex / cpu, 2) if cpu else None, "runs": runs}


def run_variants(a) -> dict:
    """Each variant ``--repeats`` times, the variants taking turns; each variant's fastest run
    counts (the others are kept under ``all``): on a shared machine the fastest run is the one
    least disturbed."""
    cfgs, t = configs(a), a.threads
    res: dict = {"load_before": loadavg(), "all": {}}
    for _ in range(a.repeats):
        for mode in [v for v in VARIANTS if v in a.variants]:
            run = packed(a, cfgs) if mode == "packed" else collect([spawn(a, mode, cfgs, t)])[0]
            res["all"].setdefault(mode, []).append(run)
    for mode, runs in res["all"].items():
        res[mode] = max(runs, key=lambda r: r["examples_per_s"] or 0)
    res["load_after"] = loadavg()
    f, s, p = (res[k]["examples_per_s"] for k in ("fused", "sequential", "packed"))
    res["ratios"] = {"fused/sequential": round(f / s, 3), "fused/packed": round(f / p, 3)}
    # Examples per CPU-second of the whole run (prepare, train, evaluate): steadier than wall
    # time when other work shares the cores, and what a dedicated machine would see at best.
    fc, sc, pc = (res[k]["examples_per_cpu_s"] for k in ("fused", "sequential", "packed"))
    res["cpu_ratios"] = {"fused/sequential": round(fc / sc, 3), "fused/packed": round(fc / pc, 3)}
    solo = {(x["learning_rate"], x.get("seed")): x for x in res["sequential"]["trials"]}
    res["dev"] = [{"learning_rate": x["learning_rate"], "seed": x.get("seed"), "fused": x["dev"],
                   "solo": solo.get((x["learning_rate"], x.get("seed")), {}).get("dev"),
                   "fused_loss": x.get("train_loss"),
                   "solo_loss": solo.get((x["learning_rate"], x.get("seed")), {}).get("train_loss")}
                  for x in res["fused"]["trials"]]
    res["wall_s"] = {m: res[m]["wall_s"] if m != "packed" else max(r["wall_s"] for r in res[m]["runs"])
                     for m in VARIANTS if m in res}
    return res


def choice(a, k: int, steps: int = 12) -> dict:
    """ms per fused forward+backward step: vmap(functional_call) vs stacked matmuls vs K models."""
    import numpy as np
    import torch
    from torch.func import functional_call, stack_module_state, vmap

    from orchestrator.config import Runtime, TrialConfig
    from orchestrator.data.sources import source_from
    from orchestrator.fused import stacked
    from orchestrator.train import runner
    from orchestrator.train.batches import DeviceRows

    torch.set_num_threads(a.threads)
    cfg = TrialConfig(**configs(a)[0])
    p = runner.prepare(cfg, source_from(a.glue_dir), runtime=Runtime(threads=a.threads))
    collate = DeviceRows(p.train, p.use_token_types, p.device).padded
    labels = torch.from_numpy(p.train.labels)
    order = runner.batch_order(p.train.lengths, cfg.batch_size, np.random.default_rng(0), True)[:steps + 2]
    models = [p.model] + [type(p.model)(p.model.config) for _ in range(k - 1)]
    params, buffers = stack_module_state(models)
    fn = vmap(lambda pr, bf, b, y: functional_call(p.model, (pr, bf), kwargs={**b, "labels": y}).loss,
              in_dims=(0, 0, None, None), randomness="different")
    net, stack = stacked.StackedBert(p.model.config, p.task.num_labels), stacked.stack_parameters(p.model, k)
    ways = {"vmap_functional_call": lambda b, y: fn(params, buffers, b, y).sum(),
            "stacked_matmuls": lambda b, y: net.losses(stack, b, y).sum(),
            "k_separate_models": lambda b, y: sum(m(**b, labels=y).loss for m in models)}
    out = {}
    for name, f in ways.items():
        times = []
        for i, rows in enumerate(order):
            t0 = time.perf_counter()
            f(collate(rows), labels[rows]).backward()
            times.append(time.perf_counter() - t0)
        out[name] = round(1000 * sorted(times[2:])[len(times[2:]) // 2], 1)   # median ms, 2 warm-up steps
    return {"k": k, "batch_size": cfg.batch_size, "steps": steps, "median_ms_forward_backward": out}


def render(r: dict) -> str:
    a, v, env = r["config"], r["variants"], r["environment"]
    seeds = list(range(a["seed"], a["seed"] + a.get("seeds", 1)))
    md = [f"# Fused unit: {a['model']} ({a['init']}), {a['task']}, {a['max_train_examples']} rows, batch "
          f"{a['batch_size']}, {a['epochs']:g} epoch, seed{'s' if len(seeds) > 1 else ''} "
          f"{', '.join(map(str, seeds))}, learning rates {a['lrs']}", "",
          f"{env.get('date', '')}; {env.get('cpu')}, {env.get('cores')} cores; torch {env.get('torch')}, "
          f"transformers {env.get('transformers')}", "",
          f"{a['threads']} threads; load average before {v['load_before']}, after {v['load_after']} (a shared machine: "
          "the ratios are measured in the same run, one variant after another)", "",
          "| variant | processes x threads | training examples/s | training s | wall s (prepare to end; packed: its slower process) |",
          "|---|---|---:|---:|---:|"]
    wall = v.get("wall_s", {})
    rows = [("fused", "fused unit", f"1 x {a['threads']}"),
            ("fused_all_words", "fused unit, every word-embedding row stacked", f"1 x {a['threads']}"),
            ("sequential", "one after another", f"1 x {a['threads']}"),
            ("packed", "packed", f"{v['packed']['processes']} x 1")]
    md += [f"| {label} | {procs} | {fmt(v[m]['examples_per_s'], '.1f')} | {v[m].get('train_s', '')} | "
           f"{fmt(wall.get(m), '.1f')} |" for m, label, procs in rows if m in v]
    if wall:
        md += ["", f"wall time: one after another / fused **{round(wall['sequential'] / wall['fused'], 2)}x**, "
                   f"packed / fused **{round(wall['packed'] / wall['fused'], 2)}x**"]
    md += ["",
          f"each variant's fastest of {a.get('repeats', 1)} runs counts; every run's examples/s: "
          + "; ".join(f"{m} {[x['examples_per_s'] for x in runs]}" for m, runs in v.get("all", {}).items()), "",
          f"fused / one after another: **{v['ratios']['fused/sequential']}x** (target 2x); fused / packed: "
          f"**{v['ratios']['fused/packed']}x** (target 1.3x)", "",
          f"per CPU-second of the whole run (prepare, train, evaluate; steadier under load): fused / one after "
          f"another {v['cpu_ratios']['fused/sequential']}x, fused / packed {v['cpu_ratios']['fused/packed']}x", "",
          "| learning rate | seed | dev, fused member | dev, solo trial | train loss, fused member | train loss, solo trial |",
          "|---|---:|---:|---:|---:|---:|"]
    md += [f"| {d['learning_rate']:g} | {d.get('seed', a['seed'])} | {fmt(d['fused'])} | {fmt(d['solo'])} | "
           f"{fmt(d.get('fused_loss'), '.6f')} | {fmt(d.get('solo_loss'), '.6f')} |" for d in v["dev"]]
    if r.get("choice"):
        c = r["choice"]
        md += ["", f"Stacking method, K = {c['k']}, batch {c['batch_size']}, median ms per forward+backward:", ""]
        md += [f"- {k}: {ms}" for k, ms in c["median_ms_forward_backward"].items()]
    return "\n".join(md) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fused", description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="BERT-Tiny")
    ap.add_argument("--init", default="random")
    ap.add_argument("--task", default="SST-2")
    ap.add_argument("--max-train-examples", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=1, help="seeds --seed, --seed + 1, ...: K learning rates x N seeds")
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                    help="which variants to run (fused, sequential and packed at least)")
    ap.add_argument("--lrs", type=float, nargs="+", default=list(LRS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--processes", type=int, default=2, help="packed variant: processes of one thread each")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each variant; the fastest counts")
    ap.add_argument("--choice", action="store_true", help="also time vmap vs stacked matmuls vs K models")
    ap.add_argument("--glue-dir", default=default_glue_dir())
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "fused"))
    a = ap.parse_args(argv)
    if not a.child and ({"fused", "sequential", "packed"} - set(a.variants) or a.seeds < 1):
        ap.error("--variants needs fused, sequential and packed; --seeds at least 1")
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return 0
    report = {"config": {k: getattr(a, k) for k in ("model", "init", "task", "max_train_examples", "batch_size",
                                                    "epochs", "seed", "seeds", "lrs", "threads", "processes",
                                                    "repeats", "variants")},
              "environment": environment(), "variants": run_variants(a)}
    if a.choice:
        report["choice"] = choice(a, len(a.lrs))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fused.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "fused.md").write_text(render(report))
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
