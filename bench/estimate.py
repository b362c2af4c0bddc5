"""GPU-hours of a whole sweep on one H100, from measured training throughputs.

For every trial of the sweep's grid (``orchestrator.spec.sweep``), with official GLUE split sizes
(capped by ``max_train_examples``) and the task's ``avg_tokens``:

* training tokens = rows x epochs x avg_tokens x padding factor. The padding factor of
  dynamic padding with length grouping is measured on the real training data present in the
  GLUE directory with the runner's own ``batch_order`` (per task and batch size; tasks
  without data take the mean of the measured ones), or assumed (``--padding-factor``; stated).
  Evaluation batches are sorted by length, so evaluation tokens are counted unpadded.
* training time from the measured per-shape step model of ``bench.gpu`` (``gpu.json``):
  step time = a + b x tokens, fitted per shape over the measured lengths (with one length,
  a = 0: tokens / tokens/s); a trial takes steps x a + tokens x b. Evaluation takes 1/3 of
  that per token and per batch of 256 (a forward pass is about 1/3 of a training step's FLOPs).
* packing: trials that take a fractional GPU (``orchestrator.spec.resources.trial_gpu_share``
  on an H100: 0.125 / 0.25 / 0.5) run that many at once; their time is divided by the measured packing gain
  (``gpu.json``: K BERT-Tiny trials against one alone), capped at 1/gpu_share, or by
  1/gpu_share when no gain was measured (stated as such).
* early stopping: ASHA per (model, task) with grace period g, reduction factor r and max
  epochs R, counted as synchronous successive halving (n configurations run to rung g, the
  best n/r continue to g r, ... the survivors to R): the ideal-halving fraction of epochs, the
  same for every trial of a group. Real asynchronous ASHA promotes a little more.

Beside it, always, the project's cost model (``orchestrator.spec.cost``, as ``glue-sweep plan``
prints it): a range of H100-hours that counts each worker's and each trial's start, and per step
the larger of host time (operator calls x time per call) and device time, without and with
``fuse: auto``, without and with early stopping; its operator-call fits come from
``bench/results/ops-cpu.json`` (``bench.ops``) when that file exists (``--ops``), else the
module's defaults, and its padding factors from the measurement below.

When the throughput file is from a CPU run (no GPU measured), or when no file is given, the
H100 figure falls back to FLOPs (6 x non-embedding parameters x tokens + 12 x layers x hidden
x seq^2 per sequence, evaluation 1/3 of that per token) at the H100's dense bf16 peak
(989 TFLOP/s) x an MFU: measured on an H100/H200 (``--gpu-json``, its BERT-Base MFU) or an
explicitly labelled assumption (``--mfu``, default 30%). From a CPU file, the CPU-hours on that
machine are reported too, from its measured per-shape throughputs (one thread per trial).

    .venv/bin/python -m bench.estimate --sweep sweeps/paper.yaml --throughputs bench/out/gpu/gpu.json \\
        --out bench/out/estimate

Writes ``<out>/estimate.json`` and ``<out>/estimate.md``. The computation is in pure functions
(no torch); only measuring the padding factor tokenises data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench._common import default_glue_dir
from orchestrator.data.features import features
from orchestrator.data.sources import source_from
from orchestrator.registry.models import load_tokenizer, resolve, shape_of
from orchestrator.registry.tasks import get_task
from orchestrator.spec import cost, plan
from orchestrator.spec.cost import (ASSUMED_PADDING, EVAL_BATCH, EVAL_FRACTION, H100_MEMORY_BYTES,  # noqa: F401
                                    successive_halving, train_flops)
from orchestrator.spec.resources import ASSUMED_MFU, H100_BF16_FLOPS as H100_PEAK, model_params, trial_gpu_share
from orchestrator.spec.sweep import load
from orchestrator.train.runner import batch_order, train_subset

OPS_JSON = Path(__file__).parent / "results" / "ops-cpu.json"   # bench.ops's operator-call fits, when present
MEASURED_GPUS = ("H100", "H200", "GH200")


# --------------------------------------------------------------------------- pure computation

def fit_step_model(points: list[dict]) -> tuple[float, float]:
    """(a, b) with step seconds = a + b x tokens per step, least squares over the measured
    points (``batch``, ``seq``, ``step_s``); a single length gives a = 0 (pure tokens/s), as
    does a negative fitted intercept."""
    xs = [p["batch"] * p["seq"] for p in points]
    ys = [p["step_s"] for p in points]
    if len(set(xs)) >= 2:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        a = my - b * mx
        if a >= 0 and b > 0:
            return a, b
    return 0.0, sum(ys) / sum(xs)


@dataclass
class TrialCost:
    """One trial's work, independent of any machine."""
    model: str
    shape: tuple[int, int]
    n_nonemb: int
    gpu_share: float
    task: str
    batch: int
    epochs: float
    train_rows: int
    eval_rows: int
    eval_passes: float
    avg_tokens: float
    padding: float

    @property
    def steps(self) -> float:
        return math.ceil(self.train_rows / self.batch) * self.epochs

    @property
    def train_tokens(self) -> float:
        return self.train_rows * self.epochs * self.avg_tokens * self.padding

    @property
    def eval_tokens(self) -> float:
        return self.eval_rows * self.eval_passes * self.avg_tokens

    @property
    def eval_batches(self) -> float:
        return math.ceil(self.eval_rows / EVAL_BATCH) * self.eval_passes

    def flops(self) -> float:
        L, H = self.shape
        return (train_flops(L, H, self.n_nonemb, self.train_tokens, self.avg_tokens * self.padding)
                + EVAL_FRACTION * train_flops(L, H, self.n_nonemb, self.eval_tokens, self.avg_tokens))

    def seconds(self, a: float, b: float) -> float:
        """Training + evaluation seconds under the step model (a s per step, b s per token)."""
        return (self.steps * a + self.train_tokens * b) + EVAL_FRACTION * (self.eval_batches * a + self.eval_tokens * b)


def packing_divisor(share: float, measured_gain: float | None) -> tuple[float, str]:
    """By how much packed trials' time shrinks: the measured gain capped at 1/share
    (Ray runs 1/share such trials on one GPU), or 1/share when none was measured."""
    if share >= 1:
        return 1.0, "whole GPU"
    conc = 1 / share
    if measured_gain is None:
        return conc, f"1/gpu_share = {conc:g} (packing gain not measured)"
    return min(measured_gain, conc), f"measured gain {measured_gain:.2f} capped at 1/gpu_share = {conc:g}"


def hours_measured(trials: list[TrialCost], rates: dict, packing_gain: float | None,
                   fallback_flops_per_s: float | None, scale: float = 1.0) -> dict:
    """Hours from per-shape step models ``rates[(L, H)] = (a, b)``; a shape without a
    measurement falls back to FLOPs / ``fallback_flops_per_s``. Packing as ``packing_divisor``."""
    total, by_model, fallback_trials, notes = 0.0, {}, 0, set()
    for t in trials:
        if tuple(t.shape) in rates:
            s = t.seconds(*rates[tuple(t.shape)]) * scale
            div, why = packing_divisor(t.gpu_share, packing_gain)
            notes.add(why)
            s /= div
        elif fallback_flops_per_s:
            s, fallback_trials = t.flops() / fallback_flops_per_s, fallback_trials + 1
        else:
            raise ValueError(f"no throughput for shape {t.shape} and no fallback")
        total += s
        by_model[t.model] = by_model.get(t.model, 0.0) + s / 3600
    return {"hours": total / 3600, "by_model": by_model, "trials_by_flops_fallback": fallback_trials,
            "packing": sorted(notes)}


def hours_flops(trials: list[TrialCost], peak: float, mfu: float) -> dict:
    flops = sum(t.flops() for t in trials)
    by_model: dict = {}
    for t in trials:
        by_model[t.model] = by_model.get(t.model, 0.0) + t.flops() / (peak * mfu) / 3600
    return {"hours": flops / (peak * mfu) / 3600, "flops": flops, "by_model": by_model}


def with_early_stopping(trials: list[TrialCost], hours_fn, grace: float, rf: float) -> tuple[dict, dict]:
    """Applies the successive-halving fraction of each (model, task) group to its hours."""
    groups: dict = {}
    for t in trials:
        groups.setdefault((t.model, t.task), []).append(t)
    total, by_model, sh_info = 0.0, {}, {}
    for (model, task), ts in groups.items():
        sh = successive_halving(len(ts), grace, rf, max(t.epochs for t in ts))
        h = hours_fn(ts)["hours"] * sh["fraction"]
        sh_info[f"{len(ts)} configs"] = sh
        total += h
        by_model[model] = by_model.get(model, 0.0) + h
    return {"hours": total, "by_model": by_model}, sh_info


def padding_factor(lengths, batch_size: int, seed: int = 0, epochs: int = 1) -> float:
    """Padded tokens / real tokens of the runner's length-grouped dynamic padding."""
    lengths = np.asarray(lengths)
    rng = np.random.default_rng(seed)
    padded = 0
    for _ in range(epochs):
        for rows in batch_order(lengths, batch_size, rng, True):
            padded += len(rows) * int(lengths[rows].max())
    return padded / (int(lengths.sum()) * epochs)


# --------------------------------------------------------------------------- inputs

def read_throughputs(path: str | Path) -> dict:
    """The parts of a ``bench.gpu`` JSON the estimate uses."""
    r = json.loads(Path(path).read_text())
    env = r["environment"]
    rates, achieved = {}, []
    for s in r.get("shapes", []):
        rates[(s["layers"], s["hidden"])] = fit_step_model(s["points"])
        achieved += [p["achieved_flops"] for p in s["points"]]
    eager = (r.get("mfu") or {}).get("eager") or {}
    if eager.get("achieved_flops"):
        achieved.append(eager["achieved_flops"])
    pk = r.get("packing") or {}
    return {"path": str(path), "device_type": env["device_type"], "device_name": env["device_name"],
            "peak_flops": r.get("peak_flops"), "rates": rates, "bert_base_mfu": eager.get("mfu"),
            "median_achieved_flops": statistics.median(achieved) if achieved else None,
            "shape_mfu_median": statistics.median([p["mfu"] for s in r.get("shapes", []) for p in s["points"]
                                                   if p.get("mfu")] or [0]) or None,
            "packing_gain": pk.get("gain_vs_single"), "packing_k": pk.get("k"),
            "cpus": env.get("cores", env.get("cpus"))}   # "cpus": files written before the key was renamed


def trials_from_sweep(sweep, padding: dict[tuple[str, int], float], default_padding: float) -> list[TrialCost]:
    if sweep.mode != "grid":
        raise SystemExit("estimate: only grid sweeps have a fixed set of trials")
    out = []
    for trial in sweep.trials():
        t = trial.config
        shape, params, task = shape_of(resolve(t.model)), model_params(t.model), get_task(t.task)
        if shape is None or params is None:
            raise SystemExit(f"estimate: unknown shape of {trial.label}")
        n = task.splits["train"].rows or 0
        if t.max_train_examples:
            n = min(n, t.max_train_examples)
        out.append(TrialCost(model=trial.label, shape=tuple(shape), n_nonemb=params[1],
                             gpu_share=trial_gpu_share(t, H100_MEMORY_BYTES), task=task.name, batch=t.batch_size,
                             epochs=t.epochs, train_rows=n,
                             eval_rows=sum(s.rows or 0 for s in task.eval_splits),
                             eval_passes=t.epochs / (t.eval_every or 1), avg_tokens=task.avg_tokens,
                             padding=padding.get((task.name, t.batch_size), default_padding)))
    return out


def measure_padding(sweep, glue_dir: str | None, max_rows: int = 20000) -> tuple[dict, dict]:
    """Padding factor per (task, batch size) on the real training rows present (a fixed sample of
    at most ``max_rows``), tokenised as the miniatures do; tasks without data get the mean."""
    tok = load_tokenizer(resolve("BERT-Tiny"), "random")
    src = source_from(glue_dir)
    out, info = {}, {}
    for task in sweep.tasks:
        try:
            enc = features(task, "train", src, tok, sweep.max_length, None, {})
        except Exception as e:   # no data for this task here
            info[task.name] = {"measured": False, "why": str(e).splitlines()[0][:120] if str(e) else type(e).__name__}
            continue
        lengths = np.asarray(enc.lengths)[train_subset(len(enc), min(max_rows, sweep.max_train_examples or max_rows))]
        per_bs = {bs: round(padding_factor(lengths, bs), 4) for bs in sweep.batch_sizes}
        for bs, f in per_bs.items():
            out[(task.name, bs)] = f
        info[task.name] = {"measured": True, "rows_used": int(len(lengths)), "mean_length": round(float(lengths.mean()), 2),
                           "avg_tokens_in_task_file": task.avg_tokens, "by_batch_size": per_bs}
    if out:
        for task in sweep.tasks:
            for bs in sweep.batch_sizes:
                if (task.name, bs) not in out:
                    vals = [f for (tn, b), f in out.items() if b == bs]
                    out[(task.name, bs)] = round(sum(vals) / len(vals), 4)
                    info.setdefault(task.name, {})["by_batch_size_mean_of_measured"] = True
    return out, info


# --------------------------------------------------------------------------- report

def build(trials: list[TrialCost], tp: dict | None, gpu_json: dict | None, mfu_assumed: float,
          grace: float, rf: float) -> dict:
    """Every figure of the report from trials and throughputs (pure)."""
    res: dict = {"trials": len(trials), "train_tokens": sum(t.train_tokens for t in trials),
                 "eval_tokens": sum(t.eval_tokens for t in trials), "flops": sum(t.flops() for t in trials)}
    groups: dict = {}
    for t in trials:
        groups.setdefault((t.model, t.task), 0)
        groups[(t.model, t.task)] += 1
    sizes = sorted(set(groups.values()))
    max_ep = max((t.epochs for t in trials), default=0)
    res["early_stopping"] = {"grace": grace, "reduction_factor": rf, "max_epochs": max_ep,
                             "by_group_size": {n: successive_halving(n, grace, rf, max_ep) for n in sizes},
                             "note": "synchronous successive halving (ideal halving): asynchronous ASHA promotes "
                                     "somewhat more, so the real figure lies a little above"}
    on_gpu = tp is not None and tp["device_type"] == "cuda"
    if on_gpu:
        name = tp["device_name"] or "?"
        h100_like = any(g in name.upper() for g in MEASURED_GPUS)
        scale = 1.0 if h100_like else (tp["peak_flops"] / H100_PEAK if tp["peak_flops"] else 1.0)
        fb = (tp["shape_mfu_median"] or tp["bert_base_mfu"] or ASSUMED_MFU) * H100_PEAK
        fn = lambda ts: hours_measured(ts, tp["rates"], tp["packing_gain"], fb, scale)
        method = (f"measured on {name}" if h100_like else
                  f"measured on {name}, scaled to the H100 by the bf16 peak ratio {scale:.3f}")
    else:
        if gpu_json and gpu_json.get("device_type") == "cuda" and gpu_json.get("bert_base_mfu") and any(
                g in (gpu_json["device_name"] or "").upper() for g in MEASURED_GPUS):
            mfu, src = gpu_json["bert_base_mfu"], f"MFU {gpu_json['bert_base_mfu']:.1%} measured (BERT-Base) on {gpu_json['device_name']}"
        else:
            mfu, src = mfu_assumed, f"ASSUMED MFU {mfu_assumed:.0%} (not measured on a GPU)"
        fn = lambda ts: hours_flops(ts, H100_PEAK, mfu)
        method = (f"no GPU measurement{' (throughputs from a CPU run)' if tp else ''}: FLOPs at the H100 bf16 peak "
                  f"{H100_PEAK / 1e12:.0f} TFLOP/s x {src}")
        res["mfu_used"] = mfu
    full = fn(trials)
    es, _ = with_early_stopping(trials, fn, grace, rf)
    # What a fixed per-step cost (kernel launches, Python, the optimizer) adds: the FLOP figure
    # ignores it, and the small miniatures at small batch sizes are bound by it.
    steps_full = sum(t.steps for t in trials)
    steps_es, _ = with_early_stopping(trials, lambda ts: {"hours": sum(t.steps for t in ts)}, grace, rf)
    res["steps"] = {"full": steps_full, "early_stopping": steps_es["hours"],
                    "hours_per_ms_full": steps_full * 1e-3 / 3600,
                    "hours_per_ms_early_stopping": steps_es["hours"] * 1e-3 / 3600}
    res["h100"] = {"method": method, "measured_on_gpu": on_gpu, "hours_full": full["hours"], "hours_early_stopping": es["hours"],
                   "by_model_full": full["by_model"], "by_model_early_stopping": es["by_model"],
                   "trials_by_flops_fallback": full.get("trials_by_flops_fallback", 0), "packing": full.get("packing")}
    if tp is not None and tp["device_type"] == "cpu" and tp["rates"]:
        res["cpu"] = cpu_hours(trials, tp, grace, rf)
    return res


def cpu_hours(trials: list[TrialCost], tp: dict, grace: float, rf: float) -> dict:
    """Core-hours and machine-hours on the CPU machine a throughput file was measured on."""
    fb = tp["median_achieved_flops"]
    fn_cpu = lambda ts: hours_measured([TrialCost(**{**asdict(t), "gpu_share": 1.0}) for t in ts], tp["rates"], None, fb)
    cf = fn_cpu(trials)
    ce, _ = with_early_stopping(trials, fn_cpu, grace, rf)
    cores = tp.get("cpus") or 1
    gain = tp["packing_gain"] if tp["packing_gain"] else cores
    return {"device": tp["device_name"], "core_hours_full": cf["hours"], "core_hours_early_stopping": ce["hours"],
            "trials_by_flops_fallback": cf["trials_by_flops_fallback"],
            "fallback_flops_per_s": fb, "machine_cores": cores,
            "machine_gain_used": gain, "machine_hours_full": cf["hours"] / gain,
            "machine_hours_early_stopping": ce["hours"] / gain,
            "note": (f"one thread per trial; shapes not measured ({cf['trials_by_flops_fallback']} trials) at the "
                     f"median achieved {fb / 1e9:.1f} GFLOP/s of the measured ones; the machine runs "
                     f"{cores} trials at once with the measured aggregate gain {gain:.2f}"
                     if tp["packing_gain"] else f"machine hours assume {cores} trials at once scale linearly")}


def cost_model(sweep, padding: dict, ops_path: str | Path | None) -> dict:
    """The cost model's ranges (fuse off / auto x without / with early stopping), with the
    operator-call fits of ``ops_path`` when it exists."""
    calls, src = (cost.SOLO_CALLS, cost.FUSED_CALLS), "the cost model's defaults"
    if ops_path and Path(ops_path).exists():
        calls, src = cost.calls_from(json.loads(Path(ops_path).read_text())), str(ops_path)
    out = {"calls_source": src, "solo_calls": asdict(calls[0]), "fused_calls": asdict(calls[1])}
    for fuse in ("off", "auto"):
        for es in (False, True):
            c = plan.cost_estimate(sweep, fuse=fuse, padding=padding, calls=calls, early_stopping=es)
            out[f"fuse_{fuse}{'_early_stopping' if es else ''}"] = {
                k: c[k] for k in ("low", "point", "high", "items", "steps", "shares")} | {
                "host_bound_fraction": c["detail"]["point"]["host_bound_fraction"],
                "busy_hours_point": c["detail"]["point"]["busy_hours"]}
            out["assumptions"] = c["assumptions"]
    return out


def render_cost_model(c: dict) -> list[str]:
    lines = ["", "## One H100: the cost model (an estimate)", "",
             "Per step the larger of host time and device time; worker and trial start-ups; packing "
             f"(`orchestrator.spec.cost`). Operator calls per step: {c['calls_source']}.", "",
             "| | H100-hours (low-high) | point | work items | host-bound steps |", "|---|---:|---:|---:|---:|"]
    for key, name in (("fuse_off", "fuse off"), ("fuse_off_early_stopping", "fuse off, early stopping"),
                      ("fuse_auto", "fuse auto"), ("fuse_auto_early_stopping", "fuse auto, early stopping")):
        v = c[key]
        lines.append(f"| {name} | {v['low']:,.1f}-{v['high']:,.1f} | {v['point']:,.1f} | {v['items']:,} | "
                     f"{v['host_bound_fraction']:.0%} |")
    lines += ["", "Assumptions: " + "; ".join(c["assumptions"]) + "."]
    return lines


def render(sweep_name: str, r: dict, padding_note: str) -> str:
    h = r["h100"]
    lines = [f"# Compute estimate: sweep {sweep_name}", "",
             f"{r['trials']:,} trials; {r['train_tokens'] / 1e9:,.2f} G training tokens (padded), "
             f"{r['eval_tokens'] / 1e9:,.2f} G evaluation tokens, {r['flops'] / 1e18:,.2f} EFLOP.", "",
             f"Padding: {padding_note}.", "",
             f"## One H100: {h['method']}", "",
             f"- without early stopping: **{h['hours_full']:,.1f} H100-hours**",
             f"- with ASHA early stopping (grace {r['early_stopping']['grace']:g}, reduction factor "
             f"{r['early_stopping']['reduction_factor']:g}, max {r['early_stopping']['max_epochs']:g} epochs): "
             f"**{h['hours_early_stopping']:,.1f} H100-hours** (ideal synchronous halving: "
             + ", ".join(f"{n} configs run {v['epochs_run']:g} of {v['epochs_full']:g} epochs"
                         for n, v in r["early_stopping"]["by_group_size"].items()) + ")"]
    if not h["measured_on_gpu"]:
        lines.append(f"- NOT MEASURED ON A GPU: this figure is FLOPs / ({H100_PEAK / 1e12:.0f} TFLOP/s x {r['mfu_used']:.0%} MFU). The small "
                     "miniatures reach a far lower MFU than BERT-Base on their own (per-step overhead), partly made up by "
                     "packing several on one GPU, so for them it is optimistic.")
    st = r.get("steps")
    if st:
        lines.append(f"- optimizer steps: {st['full'] / 1e6:,.1f} M ({st['early_stopping'] / 1e6:,.1f} M with early "
                     f"stopping); each millisecond of fixed cost per step adds {st['hours_per_ms_full']:,.1f} GPU-hours "
                     f"({st['hours_per_ms_early_stopping']:,.1f} with early stopping) before packing"
                     + ("" if h["measured_on_gpu"] else ": a FLOP count leaves this out, so the figure above is a "
                        "lower bound; a GPU run of bench.gpu measures the per-step cost of every shape"))
    if h.get("trials_by_flops_fallback"):
        lines.append(f"- {h['trials_by_flops_fallback']} trials of unmeasured shapes counted by FLOPs at the median measured MFU")
    if h.get("packing"):
        lines.append("- packing: " + "; ".join(h["packing"]))
    lines += ["", "| model | H100-hours full | with early stopping |", "|---|---:|---:|"]
    for m, v in h["by_model_full"].items():
        lines.append(f"| {m} | {v:,.2f} | {h['by_model_early_stopping'][m]:,.2f} |")
    c = r.get("cpu")
    if c:
        lines += ["", f"## This CPU machine ({c['device']}), measured", "",
                  f"- {c['core_hours_full']:,.0f} core-hours without early stopping, {c['core_hours_early_stopping']:,.0f} with; "
                  f"on this {c['machine_cores']}-core machine {c['machine_hours_full']:,.0f} h ({c['machine_hours_full'] / 24:,.0f} days) "
                  f"and {c['machine_hours_early_stopping']:,.0f} h",
                  f"- {c['note']}"]
    if r.get("cost_model"):
        lines += render_cost_model(r["cost_model"])
    lines += ["", "Early stopping is counted as " + r["early_stopping"]["note"] + "."]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.estimate", description=__doc__.split("\n\n")[0])
    p.add_argument("--sweep", default="sweeps/paper.yaml")
    p.add_argument("--throughputs", default=None, help="a bench.gpu gpu.json (GPU run: measured; CPU run: fallback + CPU-hours)")
    p.add_argument("--gpu-json", default=None, help="a gpu.json from an H100/H200 whose MFU the FLOP fallback uses")
    p.add_argument("--mfu", type=float, default=ASSUMED_MFU, help="assumed MFU of the FLOP fallback (labelled as assumed)")
    p.add_argument("--padding", choices=("measure", "assume"), default="measure")
    p.add_argument("--padding-factor", type=float, default=ASSUMED_PADDING)
    p.add_argument("--glue-dir", default=default_glue_dir())
    p.add_argument("--grace", type=float, default=None, help="default: the sweep's, else 1")
    p.add_argument("--reduction-factor", type=float, default=None, help="default: the sweep's, else 2")
    p.add_argument("--ops", default=str(OPS_JSON), help="operator-call fits of bench.ops (used when the file exists)")
    p.add_argument("--out", default="bench/out/estimate")
    return p


def main(argv=None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    a = build_parser().parse_args(argv)
    sweep = load(a.sweep)
    if a.padding == "measure":
        padding, pinfo = measure_padding(sweep, a.glue_dir)
        measured = sorted(k for k, v in pinfo.items() if v.get("measured"))
        note = (f"measured with the runner's batch_order on real training data of {', '.join(measured)} "
                f"(per batch size; other tasks: the mean of these)" if measured else
                f"assumed factor {a.padding_factor:g} (no data to measure)")
    else:
        padding, pinfo, note = {}, {}, f"assumed factor {a.padding_factor:g}"
    trials = trials_from_sweep(sweep, padding, a.padding_factor)
    tp = read_throughputs(a.throughputs) if a.throughputs else None
    gj = read_throughputs(a.gpu_json) if a.gpu_json else None
    grace = a.grace or (sweep.grace_period if sweep.scheduler == "asha" else 1.0)
    rf = a.reduction_factor or (sweep.reduction_factor if sweep.scheduler == "asha" else 2.0)
    r = build(trials, tp, gj, a.mfu, grace, rf)
    r["cost_model"] = cost_model(sweep, padding, a.ops)
    r["padding"] = {"note": note, "by_task": pinfo,
                    "factors": {f"{t}|{bs}": f for (t, bs), f in sorted(padding.items())}}
    r["inputs"] = {"sweep": a.sweep, "throughputs": a.throughputs, "gpu_json": a.gpu_json,
                   "throughput_device": tp and tp["device_name"], "throughput_device_type": tp and tp["device_type"]}
    r["early_stopping"]["by_group_size"] = {str(k): v for k, v in r["early_stopping"]["by_group_size"].items()}
    md = render(sweep.name, r, note)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "estimate.json").write_text(json.dumps(r, indent=2) + "\n")
    (out / "estimate.md").write_text(md)
    print(md)
    print(f"wrote {out / 'estimate.json'} and {out / 'estimate.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
