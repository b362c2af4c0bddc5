"""``make gpu-check``: the GPU path checked and measured on one machine, without Ray.

On a CUDA machine (about 15 minutes on one H100):

1. the GPU tests (``tests/fused/test_loop.py``, ``tests/train/test_device.py``; they run on CUDA when there
   is one);
2. ``bench.gpu``: MFU of the BERT-Base shape (bf16 where the GPU has it), packed BERT-Tiny
   processes against one, per-shape throughput (with NVIDIA MPS if its daemon runs: start it
   with ``nvidia-cuda-mps-control -d`` before, stop it with ``echo quit | nvidia-cuda-mps-control``);
3. ``bench.fused``: a fused unit of 4 learning rates against the same 4 trials one after another
   and packed processes, for BERT-Tiny, -Mini, -Small and -Medium at batch 8 and 32;
4. a ``torch.profiler`` count of kernels and the host time per training step, solo and fused,
   for 2 and 12 layers;
5. out-of-memory recovery: a trial under a small ``set_per_process_memory_fraction`` must
   finish with gradient accumulation;
6. ``bench.estimate`` of ``sweeps/paper.yaml`` from the measured throughputs.

On a CPU-only machine it runs a reduced form of each (the fast tests, one shape, BERT-Tiny at
batch 32 on a few hundred rows, the profile of 2 layers; no OOM check), to show it works.
Writes ``<out>/gpu_check.json`` and ``<out>/gpu_check.md`` (commit them under ``bench/results/``).

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.gpu_check --out bench/out/gpu-check
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench._common import child_env, default_glue_dir
from orchestrator.config import TrialConfig
from orchestrator.fused import stacked
from orchestrator.train import device as D, runner

REPO = Path(__file__).resolve().parent.parent
MINIS = ("BERT-Tiny", "BERT-Mini", "BERT-Small", "BERT-Medium")


def sh(cmd: list[str], timeout: int, **env) -> dict:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=REPO, env=child_env(None, **env), capture_output=True, text=True, timeout=timeout)
        rc, tail = p.returncode, (p.stdout + p.stderr).strip().splitlines()[-5:]
    except subprocess.TimeoutExpired:
        rc, tail = 124, [f"timed out after {timeout} s"]
    return {"cmd": " ".join(cmd[2:]), "rc": rc, "wall_s": round(time.perf_counter() - t0, 1), "tail": tail}


def mps_running() -> bool:
    if not shutil.which("nvidia-cuda-mps-control"):
        return False
    p = subprocess.run(["pgrep", "-f", "nvidia-cuda-mps-control"], capture_output=True)
    return p.returncode == 0


def profile_step(layers: int, hidden: int, k: int, device, batch: int = 32, seq: int = 64) -> dict:
    """Kernels (CUDA) or operators (CPU) and host ms per training step of a random-init shape,
    one model (k=1, the runner's step) or a stacked unit of k members."""
    from torch.profiler import ProfilerActivity, profile
    from transformers import BertConfig, BertForSequenceClassification
    cfg = BertConfig(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=max(1, hidden // 64),
                     intermediate_size=4 * hidden, num_labels=2)
    model = BertForSequenceClassification(cfg).to(device).train()
    ids = torch.randint(1000, 2000, (batch, seq), device=device)
    batch_in = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    labels = torch.randint(0, 2, (batch,), device=device)
    _, autocast = D.precision(device)
    tc = TrialConfig(model="BERT-Tiny", task="SST-2", batch_size=batch, learning_rate=1e-4)
    parts = [(batch_in, labels, 1.0)]
    if k == 1:   # the runner's own step (train.step.train_step): prepared mask, device schedule, no host sync
        from orchestrator.train.step import Schedule, tensor_lr, train_step
        opt = runner.make_optimizer(model, tc, device)
        schedule = Schedule(1000, 0.1, device)
        lr = tensor_lr(opt, schedule, tc.learning_rate)

        def step():
            train_step(model, opt, schedule, lr, tc.learning_rate, parts, 1.0, autocast)
    else:        # the fused unit's own step (fused.loop.fused_step)
        from orchestrator.fused.adamw import StackedAdamW
        from orchestrator.fused.loop import fused_step
        params, net = stacked.stack_parameters(model, k), stacked.StackedBert(model.config, 2)
        opt = StackedAdamW(params, [1e-4] * k, {n for n in params if "weight" in n and "LayerNorm" not in n}, 0.01)
        factor = torch.ones((), device=device)
        fused_autocast = autocast if D.use_bf16(device) else (lambda: torch.autocast("cpu", enabled=False))

        def step():
            fused_step(net, params, opt, None, 0.01, factor, parts, 1.0, fused_autocast)
    for _ in range(3):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    n = 5
    with profile(activities=acts) as prof:
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        host = (time.perf_counter() - t0) / n
        sync()
        wall = (time.perf_counter() - t0) / n
    ev = prof.key_averages()
    if device.type == "cuda":
        kernels = sum(e.count for e in ev if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA) / n
    else:
        kernels = sum(e.count for e in ev if e.key.startswith("aten::")) / n
    return {"layers": layers, "hidden": hidden, "members": k, "batch": batch, "seq": seq,
            "kernels_per_step": round(kernels), "kernel_kind": "CUDA kernels" if device.type == "cuda" else "aten ops",
            "host_ms_per_step": round(1000 * host, 2), "wall_ms_per_step": round(1000 * wall, 2)}


def run_checks(a, device) -> dict:
    on_gpu = device.type == "cuda"
    out = Path(a.out)
    r: dict = {"device": torch.cuda.get_device_name(0) if on_gpu else "cpu", "mps": mps_running() if on_gpu else None,
               "precision": D.precision(device)[0], "torch": torch.__version__, "started": time.strftime("%F %T")}
    py, glue = sys.executable, ["--glue-dir", a.glue_dir] if a.glue_dir else []
    tests = ["tests/fused/test_loop.py", "tests/train/test_device.py"] if on_gpu else ["tests/train/test_device.py"]
    r["tests"] = sh([py, "-m", "pytest", "-q", "-x", *tests], 900)
    gpu_args = [] if on_gpu else ["--only", "mfu,shapes", "--shapes", "BERT-Tiny", "--mfu-batch", "2", "--mfu-steps", "1"]
    r["bench_gpu"] = sh([py, "-m", "bench.gpu", "--out", str(out / "gpu"), *gpu_args, *glue], 1200)
    r["fused"] = []
    for model in (MINIS if on_gpu else MINIS[:1]):
        for bs in ((8, 32) if on_gpu else (32,)):
            rows = 4000 if on_gpu else 256
            d = out / f"fused-{model}-bs{bs}"
            run = sh([py, "-m", "bench.fused", "--model", model, "--batch-size", str(bs), "--max-train-examples",
                      str(rows), "--threads", "2" if not on_gpu else "1", "--out", str(d), *glue], 900)
            res = json.loads((d / "fused.json").read_text()) if (d / "fused.json").is_file() else {}
            r["fused"].append({"model": model, "batch": bs, "rows": rows, "run": run,
                               **{k: res.get("variants", {}).get(k) for k in ("ratios", "dev")}})
    r["profile"] = [profile_step(layers, hidden, k, device) for layers, hidden in ((2, 128), (12, 768))[:2 if on_gpu else 1]
                    for k in (1, 4)]
    if on_gpu:
        r["oom"] = sh([py, "-m", "bench.gpu_check", "--oom-child", *glue], 600)
    r["estimate"] = sh([py, "-m", "bench.estimate", "--sweep", "sweeps/paper.yaml", "--throughputs",
                        str(out / "gpu" / "gpu.json"), "--out", str(out / "estimate"), *glue], 900)
    return r


def oom_child(glue_dir: str | None) -> int:
    """BERT-Base at batch 128 in a fifth of the GPU: must finish by accumulating gradients."""
    from orchestrator.data.sources import source_from
    D.set_memory_share(0.2)
    cfg = TrialConfig(model="BERT-Base", task="SST-2", batch_size=128, learning_rate=1e-4, epochs=1, init="random",
                      max_train_examples=512)
    res = runner.run_trial(cfg, source_from(glue_dir))
    print(json.dumps({"status": res.status, "grad_accum": res.grad_accum, "note": res.note}))
    return 0 if res.status == "completed" and res.grad_accum > 1 else 1


def render(r: dict) -> str:
    md = [f"# make gpu-check: {r['device']} ({r['precision']}), torch {r['torch']}, {r['started']}", "",
          f"MPS daemon: {r['mps']}", "", f"- tests: rc {r['tests']['rc']} ({r['tests']['wall_s']} s)",
          f"- bench.gpu: rc {r['bench_gpu']['rc']} (see gpu/gpu.md)",
          f"- estimate: rc {r['estimate']['rc']} (see estimate/)"]
    if "oom" in r:
        md.append(f"- OOM recovery: rc {r['oom']['rc']}: {r['oom']['tail'][-1:] }")
    md += ["", "| model | batch | rows | fused/sequential | fused/packed |", "|---|---:|---:|---:|---:|"]
    for f in r["fused"]:
        ratios = f.get("ratios") or {}
        md.append(f"| {f['model']} | {f['batch']} | {f['rows']} | {ratios.get('fused/sequential')} | "
                  f"{ratios.get('fused/packed')} |")
    md += ["", "| layers | hidden | members | kernels/step | host ms/step | wall ms/step |", "|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {p['layers']} | {p['hidden']} | {p['members']} | {p['kernels_per_step']} ({p['kernel_kind']}) | "
           f"{p['host_ms_per_step']} | {p['wall_ms_per_step']} |" for p in r["profile"]]
    return "\n".join(md) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "gpu-check"))
    ap.add_argument("--glue-dir", default=default_glue_dir())
    ap.add_argument("--oom-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    D.set_alloc_conf()
    if a.oom_child:
        return oom_child(a.glue_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    np.random.seed(0)
    r = run_checks(a, device)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(r, indent=1, default=str))
    (out / "gpu_check.md").write_text(render(r))
    print(render(r))
    return 0 if all(x["rc"] == 0 for x in (r["tests"], r["bench_gpu"], r["estimate"], r.get("oom", {"rc": 0}))) else 1


if __name__ == "__main__":
    sys.exit(main())
