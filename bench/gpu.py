"""GPU benchmark of the training path: MFU, packing of small trials, per-shape throughput.

On a CUDA machine it measures the GPU path as the runner runs it (bf16 autocast where the GPU
supports it, TF32 on, the runner's fused AdamW from ``make_optimizer``, gradient clipping);
on a CPU-only machine it runs a reduced form of the same three measurements.

1. **MFU** of the BERT-Base shape: sequence-classification training steps (forward, backward,
   gradient clipping, fused AdamW step, ``loss.item()`` as the runner does) on synthetic
   fixed-length batches (default 32 x 128 on GPU, 8 x 128 on CPU; every token real), timed
   after warm-up (``torch.cuda.synchronize`` on GPU). Model FLOPs per step::

       6 x N_nonembedding x batch x seq  +  12 x layers x hidden x seq^2 x batch

   (the first term: matmuls of every non-embedding weight, forward 2 + backward 4 FLOPs per
   weight per token; the second: the attention score and value matmuls, QK^T and AV, 4 x
   seq^2 x hidden per layer and sequence forward, x3 with the backward). MFU = achieved
   FLOP/s / peak dense bf16 FLOP/s of the device (a table by device name, or ``--peak-flops``).
   On CPU without ``--peak-flops`` the achieved FLOP/s is reported and the MFU is null.
   ``--compile`` adds a ``torch.compile`` variant, reported separately (its error if it fails).
   Target on GPU: MFU >= 35%.
2. **Packing**: K real runner trials (``orchestrator.train.runner.prepare`` + ``run``: BERT-Tiny,
   random init, SST-2 capped at ``--pack-examples`` rows, batch 32, 1 epoch), each in its own
   subprocess, as Ray runs fractional-GPU trials. Every process prepares, then waits at a
   barrier so that the training loops start together. Each process's training examples/s is
   the runner's ``TrialResult.examples_per_s`` (training only, evaluation excluded); the
   aggregate is all processes' training examples over the span from the first training step
   of any to the last training step of any. On GPU: K=8, one CPU thread each, against one
   trial alone; peak GPU memory per trial (``torch.cuda.max_memory_allocated``). Target:
   packed aggregate >= 4x one alone. On CPU: K = the core count, one thread each, against one
   trial on one thread and one trial with K threads (do CPU-only machines gain by splitting
   cores between trials?).
3. **Per-shape throughput** for ``bench.estimate``: the same training step on each of the 24
   miniature shapes (``--shapes``; on CPU by default BERT-Tiny, -Mini, -Small, -Medium) at
   batch 32 and each of ``--shape-seqs`` (GPU default 32 and 128, so that the estimate can
   split a step's time into a fixed part and a part per token; CPU default 64): step time,
   training tokens/s, achieved FLOP/s (and MFU where the peak is known).

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.gpu --out bench/out/gpu

Writes ``<out>/gpu.json`` and ``<out>/gpu.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench._common import child_env, default_glue_dir, fmt
from bench._features import warm_features
from bench._machine import REPO, environment, loadavg
from bench.estimate import train_flops
from orchestrator.config import Runtime, TrialConfig
from orchestrator.data.sources import source_from
from orchestrator.registry.models import load_model, miniatures, resolve
from orchestrator.spec.resources import H100_BF16_FLOPS, gpu_memory_bytes
from orchestrator.train.runner import autocast_for, make_optimizer, prepare, run

MFU_TARGET = 0.35
PACK_TARGET = 4.0

# Dense bf16 peak FLOP/s by device name; the first matching entry wins (so the specific ones first).
PEAKS = [
    ("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("GH200", H100_BF16_FLOPS), ("H200", H100_BF16_FLOPS),
    ("H100", H100_BF16_FLOPS), ("H800", H100_BF16_FLOPS), ("B200", 2250e12), ("A100", 312e12), ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12), ("L4", 121e12), ("A10G", 70e12), ("A10", 125e12), ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
]


def peak_flops(device_name: str | None) -> float | None:
    """Dense bf16 peak of a GPU by its name, or None when unknown (and for CPUs)."""
    if not device_name:
        return None
    n = device_name.upper()
    for key, v in PEAKS:
        if key.upper() in n:
            return v
    return None


def step_flops(layers: int, hidden: int, n_nonembedding: int, batch: int, seq: int) -> float:
    """Model FLOPs of one training step (forward + backward): 6 N T + 12 L H s^2 per sequence."""
    return train_flops(layers, hidden, n_nonembedding, batch * seq, seq)


def non_embedding_params(model) -> int:
    """Parameters outside the embedding module (word, position, token-type embeddings and
    their LayerNorm): encoder layers, pooler and classification head."""
    emb = {id(p) for name, m in model.named_modules() if name.endswith("embeddings") for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in emb)


SHAPES_CPU = ["BERT-Tiny", "BERT-Mini", "BERT-Small", "BERT-Medium"]


# --------------------------------------------------------------------------- training step

def _setup_torch(threads: int | None):
    if threads:
        torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def build(model_name: str, device, num_labels: int = 2):
    spec = resolve(model_name)
    model = load_model(spec, num_labels, init="random").to(device)
    model.train()
    return spec, model


class Stepper:
    """The runner's training step on one fixed synthetic batch."""

    def __init__(self, model, device, batch: int, seq: int, compile_model: bool = False, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.device, self.model = device, model
        self.batch = {
            "input_ids": torch.randint(1000, 30000, (batch, seq), generator=g).to(device),
            "attention_mask": torch.ones(batch, seq, dtype=torch.long).to(device),
            "token_type_ids": torch.zeros(batch, seq, dtype=torch.long).to(device),
            "labels": torch.randint(0, 2, (batch,), generator=g).to(device),
        }
        cfg = TrialConfig(model="bench", task="SST-2", batch_size=batch, learning_rate=1e-5)
        self.optimizer = make_optimizer(model, cfg, device)
        self.fused = bool(self.optimizer.defaults.get("fused"))
        self.bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.autocast = autocast_for(device)   # the runner's: bf16 where the GPU has it
        self.fn = torch.compile(model) if compile_model else model

    def step(self) -> float:
        with self.autocast():
            loss = self.fn(**self.batch).loss
        loss.backward()
        value = loss.item()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return value

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def time(self, warmup: int, steps: int) -> dict:
        for _ in range(warmup):
            self.step()
        self.sync()
        t0 = time.perf_counter()
        losses = [self.step() for _ in range(steps)]
        self.sync()
        dt = time.perf_counter() - t0
        return {"steps": steps, "warmup": warmup, "seconds": round(dt, 4), "step_s": dt / steps,
                "loss_finite": all(math.isfinite(x) for x in losses)}


def measure_shape(model_name: str, device, batch: int, seq: int, warmup: int, steps: int,
                  peak: float | None, compile_model: bool = False) -> dict:
    """Times the training step of one model shape; FLOPs, tokens/s, MFU."""
    spec, model = build(model_name, device)
    layers, hidden = spec.shape or (model.config.num_hidden_layers, model.config.hidden_size)
    n_nonemb = non_embedding_params(model)
    st = Stepper(model, device, batch, seq, compile_model=compile_model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = st.time(warmup, steps)
    flops = step_flops(layers, hidden, n_nonemb, batch, seq)
    achieved = flops / t["step_s"]
    out = {"model": spec.name, "layers": layers, "hidden": hidden,
           "n_params": sum(p.numel() for p in model.parameters()), "n_nonembedding": n_nonemb,
           "batch": batch, "seq": seq, **t, "step_s": round(t["step_s"], 6),
           "tokens_per_s": round(batch * seq / t["step_s"], 1), "examples_per_s": round(batch / t["step_s"], 2),
           "flops_per_step": flops, "achieved_flops": round(achieved, 1),
           "mfu": round(achieved / peak, 4) if peak else None, "bf16_autocast": st.bf16, "fused_adamw": st.fused,
           "compiled": compile_model}
    if device.type == "cuda":
        out["peak_gpu_mem_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    del st, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


# --------------------------------------------------------------------------- packing (child side)

def child_trial(a) -> int:
    """One packed trial: prepare, signal ready, wait for the go file, run, write the result."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg = TrialConfig(model=a.pack_model, task=a.pack_task, batch_size=a.pack_batch, learning_rate=1e-4, epochs=1,
                      seed=a.child_index, init="random", max_train_examples=a.pack_examples or None)
    p = prepare(cfg, source_from(a.glue_dir), runtime=Runtime(threads=a.child_threads))
    if p.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    Path(a.child_dir, f"ready.{a.child_index}").write_text("1")
    go = Path(a.child_dir, "go")
    deadline = time.time() + 600
    while not go.exists():
        if time.time() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.005)
    last = {}

    def on_progress(step, total, loss):
        last["t"] = time.time()

    w0, t0 = time.time(), time.perf_counter()
    res = run(p, on_progress=on_progress, t_start=t0)
    start = w0 + res.startup_s
    out = {"index": a.child_index, "status": res.status, "device": str(p.device), "threads": torch.get_num_threads(),
           "train_examples": res.train_examples, "steps": res.steps, "examples_seen": res.steps and min(
               res.steps * cfg.batch_size, res.train_examples),
           "train_s": res.train_s, "eval_s": res.eval_s, "examples_per_s": res.examples_per_s,
           "train_start": start, "train_end": last.get("t", start + res.train_s), "n_params": res.n_params,
           "score": res.evals[-1].score if res.evals else None}
    if p.device.type == "cuda":
        out["peak_gpu_mem_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    Path(a.child_dir, f"result.{a.child_index}.json").write_text(json.dumps(out))
    return 0


# --------------------------------------------------------------------------- packing (parent side)

def pack_round(a, k: int, threads: int, label: str) -> dict:
    """K trials in K subprocesses, training loops started together."""
    load = loadavg()
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as d:
        procs = []
        env = child_env(threads)
        for i in range(k):
            cmd = [sys.executable, "-m", "bench.gpu", "--child-trial", "--child-dir", d, "--child-index", str(i),
                   "--child-threads", str(threads), "--pack-model", a.pack_model, "--pack-task", a.pack_task,
                   "--pack-batch", str(a.pack_batch), "--pack-examples", str(a.pack_examples)]
            if a.glue_dir:
                cmd += ["--glue-dir", str(a.glue_dir)]
            procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          text=True))
        deadline = time.time() + 600
        while sum(Path(d, f"ready.{i}").exists() for i in range(k)) < k:
            if any(p.poll() not in (None, 0) for p in procs) or time.time() > deadline:
                break
            time.sleep(0.02)
        Path(d, "go").write_text("1")
        errs = []
        for p in procs:
            _, err = p.communicate(timeout=1800)
            if p.returncode:
                errs.append((err or "").strip().splitlines()[-1:] or [f"exit {p.returncode}"])
        runs = [json.loads(Path(d, f"result.{i}.json").read_text()) for i in range(k) if Path(d, f"result.{i}.json").exists()]
    if errs or len(runs) < k:
        return {"label": label, "k": k, "threads_each": threads, "error": "; ".join(e[0] for e in errs) or "missing results"}
    return {"label": label, "k": k, "threads_each": threads, "loadavg_at_start": load, **aggregate_runs(runs), "runs": runs}


def aggregate_runs(runs: list[dict]) -> dict:
    """Aggregate training throughput of concurrent trials: all training examples over the span
    of their training windows (first start to last end)."""
    span = max(r["train_end"] for r in runs) - min(r["train_start"] for r in runs)
    total = sum(r["examples_seen"] for r in runs)
    out = {"total_examples": total, "span_s": round(span, 3),
           "aggregate_examples_per_s": round(total / span, 2) if span > 0 else None,
           "per_trial_examples_per_s": [r["examples_per_s"] for r in runs],
           "mean_trial_examples_per_s": round(sum(r["examples_per_s"] for r in runs) / len(runs), 2),
           "overlap_s": round(min(r["train_end"] for r in runs) - max(r["train_start"] for r in runs), 3)}
    mem = [r["peak_gpu_mem_mib"] for r in runs if r.get("peak_gpu_mem_mib") is not None]
    if mem:
        out["peak_gpu_mem_mib_max"] = max(mem)
    return out


def packing(a, on_gpu: bool) -> dict:
    k = a.pack_k or (8 if on_gpu else (os.cpu_count() or 1))
    warm_features(a.pack_model, "random", a.pack_task, a.glue_dir)   # no child pays for tokenising
    rounds = {"single": pack_round(a, 1, 1, "1 trial, 1 thread"),
              "packed": pack_round(a, k, 1, f"{k} trials, 1 thread each")}
    if not on_gpu and k > 1:
        rounds["single_all_threads"] = pack_round(a, 1, k, f"1 trial, {k} threads")
    out = {"model": a.pack_model, "task": a.pack_task, "batch": a.pack_batch, "max_train_examples": a.pack_examples,
           "k": k, "rounds": rounds}
    agg = lambda r: rounds.get(r, {}).get("aggregate_examples_per_s")
    if agg("single") and agg("packed"):
        out["gain_vs_single"] = round(agg("packed") / agg("single"), 3)
    if agg("single_all_threads") and agg("packed"):
        out["gain_vs_single_all_threads"] = round(agg("packed") / agg("single_all_threads"), 3)
        out["all_threads_vs_one_thread"] = round(agg("single_all_threads") / agg("single"), 3) if agg("single") else None
    mem = rounds["packed"].get("peak_gpu_mem_mib_max")
    if on_gpu and mem:
        total = gpu_memory_bytes() / 2**20   # as the sweep sizes its GPU shares
        out["peak_gpu_mem_mib_per_trial"] = mem
        out["trials_fitting_by_memory"] = int(total // (mem * 1.5))   # 1.5: CUDA context and allocator slack
    return out


# --------------------------------------------------------------------------- report

def _si(x):
    if x is None:
        return "-"
    for unit, s in (("PFLOP/s", 1e15), ("TFLOP/s", 1e12), ("GFLOP/s", 1e9)):
        if x >= s:
            return f"{x / s:.2f} {unit}"
    return f"{x:.3g} FLOP/s"


def render(r: dict) -> str:
    env, on_gpu = r["environment"], r["environment"]["device_type"] == "cuda"
    lines = [f"# Training-path benchmark on {env['device_name']} ({'GPU' if on_gpu else 'CPU only: reduced form'})", "",
             f"torch {env['torch']}, CUDA {env['cuda']}, bf16 autocast {env['bf16']}, TF32 {env['tf32']}, "
             f"{env['threads']} torch thread(s), {env['cores']} CPU(s), load average at start {env['loadavg_at_start']}; commit {(env['git']['commit'] or '?')[:10]}"
             f"{' + local changes' if env['git']['modified'] else ''}. Peak used: {_si(r['peak_flops'])} ({r['peak_source']}).",
             "", f"FLOPs per step: {r['flops_formula']}.", ""]
    m = r.get("mfu")
    if m:
        lines += [f"## MFU ({m['eager']['model']} shape)", "", "| variant | batch x seq | step ms | tokens/s | achieved | MFU |",
                  "|---|---|---:|---:|---:|---:|"]
        for k in ("eager", "compiled"):
            v = m.get(k)
            if v and "error" not in v:
                lines.append(f"| {k} | {v['batch']} x {v['seq']} | {1000 * v['step_s']:.1f} | {v['tokens_per_s']:,.0f} | "
                             f"{_si(v['achieved_flops'])} | {fmt(None if v['mfu'] is None else 100 * v['mfu'], '.1f')}{'%' if v['mfu'] else ''} |")
            elif v:
                lines.append(f"| {k} | failed: {v['error'][:100]} | | | | |")
        lines.append("")
    p = r.get("packing")
    if p:
        lines += [f"## Packing ({p['model']}, {p['task']}, {p['max_train_examples']} rows, batch {p['batch']}, 1 epoch)", "",
                  "| round | trials x threads | aggregate train ex/s | mean per trial ex/s | span s | overlap s | peak GPU MiB |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for v in p["rounds"].values():
            if "error" in v:
                lines.append(f"| {v['label']} | failed: {v['error'][:100]} | | | | | |")
                continue
            lines.append(f"| {v['label']} | {v['k']} x {v['threads_each']} | {v['aggregate_examples_per_s']:,.0f} | "
                         f"{v['mean_trial_examples_per_s']:,.0f} | {v['span_s']:.1f} | {v['overlap_s']:.1f} | "
                         f"{fmt(v.get('peak_gpu_mem_mib_max'), '.1f')} |")
        lines += ["", f"Packed / one alone: {fmt(p.get('gain_vs_single'), '.2f')}x"
                  + (f"; packed / one trial with all {p['k']} threads: {fmt(p.get('gain_vs_single_all_threads'), '.2f')}x"
                     f" (all threads / one thread: {fmt(p.get('all_threads_vs_one_thread'), '.2f')}x)"
                     if 'gain_vs_single_all_threads' in p else "")
                  + (f"; about {p['trials_fitting_by_memory']} such trials fit in GPU memory" if p.get("trials_fitting_by_memory") else ""), ""]
    s = r.get("shapes")
    if s:
        lines += ["## Per-shape training throughput", "", "| model | L | H | batch x seq | step ms | tokens/s | achieved | MFU |",
                  "|---|---:|---:|---|---:|---:|---:|---:|"]
        for v in s:
            for q in v["points"]:
                lines.append(f"| {v['model']} | {v['layers']} | {v['hidden']} | {q['batch']} x {q['seq']} | "
                             f"{1000 * q['step_s']:.1f} | {q['tokens_per_s']:,.0f} | {_si(q['achieved_flops'])} | "
                             f"{fmt(None if q['mfu'] is None else 100 * q['mfu'], '.1f')}{'%' if q['mfu'] else ''} |")
        lines.append("")
    lines += ["## Targets", ""]
    for k, t in r["targets"].items():
        verdict = ("pass" if t["pass"] else "FAIL") if t["applies"] else "not applicable (no GPU)"
        lines.append(f"- {k}: target {t['target']}, measured {fmt(t['measured'], '.3f')}: {verdict}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main

def parse_shapes(text: str | None, on_gpu: bool) -> list[str]:
    if not text:
        return miniatures() if on_gpu else list(SHAPES_CPU)
    if text.strip() == "all":
        return miniatures()
    return [x.strip() for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench/out/gpu")
    p.add_argument("--only", default="mfu,packing,shapes", help="comma list of mfu, packing, shapes")
    p.add_argument("--threads", type=int, default=1, help="torch threads of this process (MFU and shapes)")
    p.add_argument("--peak-flops", type=float, default=None, help="peak FLOP/s to compute MFU against")
    p.add_argument("--mfu-model", default="BERT-Base")
    p.add_argument("--mfu-batch", type=int, default=None, help="default 32 on GPU, 8 on CPU")
    p.add_argument("--mfu-seq", type=int, default=128)
    p.add_argument("--mfu-warmup", type=int, default=None, help="default 10 on GPU, 1 on CPU")
    p.add_argument("--mfu-steps", type=int, default=None, help="default 50 on GPU, 2 on CPU")
    p.add_argument("--compile", action="store_true", help="also time a torch.compile variant")
    p.add_argument("--pack-k", type=int, default=None, help="concurrent trials (default 8 on GPU, the core count on CPU)")
    p.add_argument("--pack-model", default="BERT-Tiny")
    p.add_argument("--pack-task", default="SST-2")
    p.add_argument("--pack-batch", type=int, default=32)
    p.add_argument("--pack-examples", type=int, default=None, help="training rows per trial (default 20000 GPU, 3000 CPU)")
    p.add_argument("--glue-dir", default=default_glue_dir())
    p.add_argument("--shapes", default=None, help="comma list of models, or 'all' (default: all 24 on GPU, 4 on CPU)")
    p.add_argument("--shape-batch", type=int, default=32)
    p.add_argument("--shape-seqs", default=None, help="comma list of lengths (default 32,128 on GPU, 64 on CPU)")
    p.add_argument("--shape-warmup", type=int, default=None, help="default 5 on GPU, 1 on CPU")
    p.add_argument("--shape-steps", type=int, default=None, help="default 30 on GPU, 2 on CPU")
    # child mode (one packed trial)
    p.add_argument("--child-trial", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-dir", help=argparse.SUPPRESS)
    p.add_argument("--child-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--child-threads", type=int, default=1, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    a = build_parser().parse_args(argv)
    if a.child_trial:
        return child_trial(a)
    device = _setup_torch(a.threads)
    on_gpu = device.type == "cuda"
    only = {x.strip() for x in a.only.split(",") if x.strip()}
    env = environment(torch, device)
    peak = a.peak_flops or (peak_flops(env["device_name"]) if on_gpu else None)
    source = "--peak-flops" if a.peak_flops else ("table by device name" if peak else "unknown: MFU not computed")
    formula = "6 x non-embedding parameters x batch x seq + 12 x layers x hidden x seq^2 x batch (attention matmuls), fwd+bwd"
    r = {"environment": env, "peak_flops": peak, "peak_source": source, "flops_formula": formula,
         "config": {k: v for k, v in vars(a).items() if not k.startswith("child")}}
    ok = True
    if "mfu" in only:
        b = a.mfu_batch or (32 if on_gpu else 8)
        w = a.mfu_warmup if a.mfu_warmup is not None else (10 if on_gpu else 1)
        n = a.mfu_steps or (50 if on_gpu else 2)
        print(f"MFU: {a.mfu_model} {b} x {a.mfu_seq}, {w} warm-up + {n} steps", file=sys.stderr)
        r["mfu"] = {"eager": measure_shape(a.mfu_model, device, b, a.mfu_seq, w, n, peak)}
        if a.compile:
            try:
                r["mfu"]["compiled"] = measure_shape(a.mfu_model, device, b, a.mfu_seq, max(w, 3), n, peak, True)
            except Exception as e:   # reported, not fatal: the compiled path is optional
                r["mfu"]["compiled"] = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"}
    if "packing" in only:
        if a.pack_examples is None:
            a.pack_examples = 20000 if on_gpu else 3000
        print(f"packing: {a.pack_model} on {a.pack_task}, {a.pack_examples} rows", file=sys.stderr)
        r["packing"] = packing(a, on_gpu)
        ok &= all("error" not in v for v in r["packing"]["rounds"].values())
    if "shapes" in only:
        seqs = [int(x) for x in (a.shape_seqs or ("32,128" if on_gpu else "64")).split(",")]
        w = a.shape_warmup if a.shape_warmup is not None else (5 if on_gpu else 1)
        n = a.shape_steps or (30 if on_gpu else 2)
        shapes = []
        for name in parse_shapes(a.shapes, on_gpu):
            pts = [measure_shape(name, device, a.shape_batch, s, w, n, peak) for s in seqs]
            print(f"shape {name}: " + ", ".join(f"seq {q['seq']} {q['tokens_per_s']:,.0f} tokens/s" for q in pts), file=sys.stderr)
            head = {k: pts[0][k] for k in ("model", "layers", "hidden", "n_params", "n_nonembedding")}
            shapes.append({**head, "points": [{k: q[k] for k in ("batch", "seq", "step_s", "tokens_per_s", "examples_per_s",
                                                                  "flops_per_step", "achieved_flops", "mfu")} for q in pts]})
        r["shapes"] = shapes
    mfu = r.get("mfu", {}).get("eager", {}).get("mfu")
    gain = r.get("packing", {}).get("gain_vs_single")
    r["targets"] = {"mfu_bert_base": {"target": MFU_TARGET, "measured": mfu, "applies": on_gpu,
                                      "pass": (mfu is not None and mfu >= MFU_TARGET) if on_gpu else None},
                    "packing_gain": {"target": PACK_TARGET, "measured": gain, "applies": on_gpu,
                                     "pass": (gain is not None and gain >= PACK_TARGET) if on_gpu else None}}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(r, indent=2) + "\n")
    md = render(r)
    (out / "gpu.md").write_text(md)
    print(md)
    print(f"wrote {out / 'gpu.json'} and {out / 'gpu.md'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
