"""One page of every benchmark's headline figures, and the speed targets they meet or miss.

Reads the JSON that ``make bench`` writes under ``bench/out/`` (``trial-*/compare_trainer.json``,
``grid/grid_vs_hpsearch.json``, ``startup/startup.json``, ``gpu/gpu.json``,
``estimate/estimate.json``, ``fused-*/fused.json``; whichever exist) and writes ``bench/out/summary.json`` and
``bench/out/summary.md``. A missing benchmark is listed as not run; nothing is made up.

    .venv/bin/python -m bench.summary [--out bench/out]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

from bench._common import fmt
from bench._machine import REPO


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


_f = functools.partial(fmt, missing="n/a")


def trial_rows(out: Path) -> list[dict]:
    rows = []
    for f in sorted(out.glob("trial-*/compare_trainer.json")):
        d = _load(f)
        if not d:
            continue
        c, v, r = d["config"], d["variants"], d["ratios"]
        score = {k: v[k].get("final_score") for k in v}
        rows.append({"name": f.parent.name, "model": c["model"], "init": c.get("init"), "task": c["task"],
                     "examples": c.get("max_train_examples"), "batch_size": c["batch_size"], "lr": c["lr"],
                     "epochs": c["epochs"], "seed": c["seed"], "threads": d["environment"].get("threads"),
                     "ex_per_s": {k: v[k].get("examples_per_s") for k in v},
                     "dev": score, "ours_vs_default": r.get("ours/default", {}).get("examples_per_s"),
                     "ours_vs_tuned": r.get("ours/tuned", {}).get("examples_per_s")})
    return rows


def _trials_section(trials: list[dict], md: list, checks: list) -> None:
    md += ["## One trial: our runner against transformers.Trainer", ""]
    if not trials:
        md.append("not run")
        return
    md += ["| trial | ours ex/s | Trainer default ex/s | Trainer tuned ex/s | ours/default | ours/tuned | "
           "dev: ours / default / tuned |", "|---|---:|---:|---:|---:|---:|---|"]
    for t in trials:
        e, s = t["ex_per_s"], t["dev"]
        md.append(f"| {t['model']}{' (random)' if t['init'] == 'random' else ''} {t['task']}, "
                  f"{t['examples'] or 'all'} ex, bs {t['batch_size']}, lr {t['lr']:g}, {t['epochs']:g} ep, "
                  f"seed {t['seed']} | {_f(e.get('ours'), '.1f')} | {_f(e.get('trainer-default'), '.1f')} | "
                  f"{_f(e.get('trainer-tuned'), '.1f')} | {_f(t['ours_vs_default'])}x | {_f(t['ours_vs_tuned'])}x | "
                  f"{_f(s.get('ours'))} / {_f(s.get('trainer-default'))} / {_f(s.get('trainer-tuned'))} |")
        checks.append({"target": f"{t['name']}: ours >= 2x Trainer default", "measured": t["ours_vs_default"],
                       "pass": t["ours_vs_default"] is not None and t["ours_vs_default"] >= 2.0})
        checks.append({"target": f"{t['name']}: ours >= Trainer tuned", "measured": t["ours_vs_tuned"],
                       "pass": t["ours_vs_tuned"] is not None and t["ours_vs_tuned"] >= 1.0})


def _grid_section(grid: dict | None, md: list, checks: list) -> None:
    md += ["", "## A 20-configuration grid: glue-sweep against Trainer.hyperparameter_search (Ray)", ""]
    if not grid:
        md.append("not run")
        return
    g = grid["grid"]
    md.append(f"{g['model']} on {g['task']}, {g['max_train_examples'] or 'all'} training rows, {g['epochs']:g} "
              f"epoch(s), seed {g['seed']}, batch sizes {g['batch_sizes']} x learning rates {g['learning_rates']}.")
    md += ["", "| side | wall s | speed-up | best dev | disk written |", "|---|---:|---:|---:|---:|"]
    for name, r in grid["results"].items():
        md.append(f"| {name} | {r['wall_s']:.0f} | {'1.00' if name == 'hf-ray' else _f(r.get('speedup_vs_hf_ray'))}x"
                  f" | {_f(r['best_dev'])} | {(r.get('disk_bytes') or 0) / 1e6:.1f} MB |")
        if name != "hf-ray" and r.get("speedup_vs_hf_ray") is not None:
            checks.append({"target": f"grid ({name}): >= 3x sooner than hyperparameter_search",
                           "measured": r["speedup_vs_hf_ray"], "pass": r["speedup_vs_hf_ray"] >= 3.0})
            checks.append({"target": f"grid ({name}): best dev within 1.5 points of hyperparameter_search",
                           "measured": r.get("best_dev_minus_hf_ray"),
                           "pass": r.get("best_dev_minus_hf_ray") is not None
                           and abs(r["best_dev_minus_hf_ray"]) <= 1.5})


def _startup_section(st: dict | None, md: list, checks: list) -> None:
    md += ["", "## Per-trial start-up (trial start to first training step, process start excluded)", ""]
    if not st:
        md.append("not run")
        return
    md += ["| model | task | cold s | warm s | warm: raw data read |", "|---|---|---:|---:|---|"]
    for r in st["results"]:
        c, w = r.get("cold") or {}, r.get("warm") or {}
        md.append(f"| {r['model']} ({r['init']}) | {r['task']} | {_f(c.get('startup_s'))} | {_f(w.get('startup_s'))} | "
                  f"{'yes' if w.get('raw_data_read') else 'no'} |")
    worst = max((r["warm"]["startup_s"] for r in st["results"] if r.get("warm")), default=None)
    checks.append({"target": f"warm start-up < {st['limit_s']:g} s for every model", "measured": worst,
                   "pass": bool(st.get("all_pass"))})


def _gpu_section(gpu: dict | None, md: list, checks: list) -> None:
    md += ["", "## GPU path", ""]
    if not gpu:
        md.append("not run")
        return
    e = gpu.get("environment", {})
    mfu = (gpu.get("mfu") or {}).get("eager") or {}
    pk = gpu.get("packing") or {}
    on_gpu = bool(gpu["targets"]["mfu_bert_base"]["applies"])
    md.append(f"device: {e.get('device_name') or e.get('device')}" + ("" if on_gpu else
              " (no GPU: the reduced CPU form ran; the GPU figures are still to be taken)"))
    md.append(f"- BERT-Base shape, batch {mfu.get('batch')} x {mfu.get('seq')}: {_f(mfu.get('tokens_per_s'), '.0f')} "
              f"training tokens/s, {_f((mfu.get('achieved_flops') or 0) / 1e12, '.3f')} TFLOP/s achieved, MFU "
              f"{_f(mfu.get('mfu') and 100 * mfu['mfu'], '.1f')}{'%' if mfu.get('mfu') else ''}")
    md.append(f"- packed {pk.get('model')} trials (K = {pk.get('k')}): aggregate {_f(gpu['targets']['packing_gain']['measured'])}x "
              f"one trial alone")
    for key in ("mfu_bert_base", "packing_gain"):
        t = gpu["targets"][key]
        checks.append({"target": f"GPU {key.replace('_', ' ')} >= {t['target']:g}", "measured": t["measured"],
                       "pass": t["pass"] if t["applies"] else None})


def _estimate_section(est: dict | None, md: list) -> None:
    md += ["", "## GPU-hours of sweeps/paper.yaml on one H100", ""]
    if not est:
        md.append("not run")
        return
    h = est["h100"]
    md.append(f"{est['trials']:,} trials: {h['hours_full']:.1f} H100-hours without early stopping, "
              f"{h['hours_early_stopping']:.1f} with ASHA ({h['method']}).")
    if est.get("cpu"):
        c = est["cpu"]
        md.append(f"On this CPU machine: {c['machine_hours_full']:,.0f} hours without early stopping, "
                  f"{c['machine_hours_early_stopping']:,.0f} with it.")


def _fused_section(out: Path, md: list, checks: list) -> list[dict]:
    md += ["", "## Fused units: 4 learning rates as one stacked model", ""]
    rows = []
    for f in sorted(out.glob("fused-*/fused.json")):
        d = _load(f)
        if not d:
            continue
        c, v = d["config"], d["variants"]
        rows.append({"name": f.parent.name, **v["ratios"], "dev": v["dev"]})
        md.append(f"- {c['model']} ({c['init']}), {c['task']}, {c['max_train_examples']} rows, batch {c['batch_size']}, "
                  f"{c['threads']} threads: fused {_f(v['fused']['examples_per_s'], '.1f')} ex/s, one after another "
                  f"{_f(v['sequential']['examples_per_s'], '.1f')}, packed {_f(v['packed']['examples_per_s'], '.1f')}; dev "
                  "fused/solo " + ", ".join(f"{_f(x['fused'])}/{_f(x['solo'])}" for x in v["dev"]))
        checks.append({"target": f"{f.parent.name}: fused >= 2x one after another",
                       "measured": v["ratios"]["fused/sequential"], "pass": v["ratios"]["fused/sequential"] >= 2.0})
        checks.append({"target": f"{f.parent.name}: fused >= 1.3x packed processes",
                       "measured": v["ratios"]["fused/packed"], "pass": v["ratios"]["fused/packed"] >= 1.3})
    if not rows:
        md.append("not run")
    return rows


def build(out: Path) -> tuple[dict, str]:
    checks, md = [], ["# glue-sweep benchmarks", ""]
    trials = trial_rows(out)
    grid = _load(out / "grid" / "grid_vs_hpsearch.json")
    st = _load(out / "startup" / "startup.json")
    gpu = _load(out / "gpu" / "gpu.json")
    est = _load(out / "estimate" / "estimate.json")
    _trials_section(trials, md, checks)
    _grid_section(grid, md, checks)
    _startup_section(st, md, checks)
    _gpu_section(gpu, md, checks)
    _estimate_section(est, md)
    fused = _fused_section(out, md, checks)
    md += ["", "## Targets", "", "| target | measured | result |", "|---|---:|---|"]
    for c in checks:
        m = c["measured"]
        md.append(f"| {c['target']} | {_f(m) if isinstance(m, (int, float)) else 'n/a'} | "
                  f"{'PASS' if c['pass'] else ('not applicable here' if c['pass'] is None else 'FAIL')} |")
    report = {"trials": trials, "grid": grid and grid["results"], "startup": st and st["results"],
              "gpu_targets": gpu and gpu["targets"], "estimate": est and {k: est[k] for k in ("trials", "h100", "cpu")
                                                                         if k in est},
              "fused": fused, "checks": checks, "environment": grid and grid.get("environment")}
    return report, "\n".join(md) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.summary", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "bench" / "out"))
    a = p.parse_args(argv)
    out = Path(a.out)
    report, md = build(out)
    (out / "summary.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "summary.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
