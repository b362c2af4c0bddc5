"""Operator calls and host syncs per training step, counted with ``bench._dispatch.OpCounter``
on CPU (the operators a GPU would launch, a few CPU-only kernels aside): one solo trial's step
and one fused unit's step (K members), random-init BERT-shaped models of several depths, one
batch of ``--batch`` rows of ``--seq`` tokens. A step is what the training loop runs per
optimizer step: gathering the batch, forward, backward, clipping, AdamW, the schedule. Calls
do not depend on the hidden size, so the 12-layer model is BERT-Base's depth at a small width.

The per-layer fit (``calls = a + b * layers``, least squares over the depths) is what a cost
model reads from ``ops.json``: ``{"solo": {"a", "b"}, "fused": {"a", "b"}, "syncs_per_step": ...}``.

``--before FILE`` adds the same counts taken at an earlier commit (this script run there: it
counts that commit's own step, ``runner.forward_backward`` + ``runner.optimizer_step``) to the
report, side by side.

    .venv/bin/python -m bench.ops --out bench/out/ops [--before bench/out/ops-before/ops.json]

Writes ``<out>/ops.json`` and ``<out>/ops.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from bench._common import git_line
from bench._dispatch import OpCounter
from bench._machine import environment


def _model(layers: int, hidden: int):
    from transformers import BertConfig, BertForSequenceClassification
    cfg = BertConfig(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=max(1, hidden // 64),
                     intermediate_size=4 * hidden, num_labels=2)
    torch.manual_seed(0)
    return BertForSequenceClassification(cfg).train()


def _prepared(model, batch: int, seq: int, lrs: list[float]):
    from orchestrator.config import Runtime, TrialConfig
    from orchestrator.data.features import Encoded
    from orchestrator.registry.tasks import get_task
    from orchestrator.train import runner

    n = 2 * batch
    rng = np.random.default_rng(0)
    enc = Encoded(rng.integers(1000, 3000, n * seq).astype(np.int32), np.zeros(n * seq, np.int8),
                  np.arange(n + 1, dtype=np.int64) * seq, rng.integers(0, 2, n).astype(np.int64),
                  np.arange(n).astype(str))
    configs = [TrialConfig(model="BERT-Tiny", task="SST-2", batch_size=batch, learning_rate=lr, max_length=seq,
                           init="random") for lr in lrs]
    p = runner.Prepared(configs[0], Runtime(), get_task("SST-2"), None, model, enc, {}, torch.device("cpu"), True, {})
    return p, configs


def _count(step, warm: int = 2) -> dict:
    for _ in range(warm):
        step()
    with OpCounter() as c:
        step()
    return {"calls": c.calls, "syncs": sum(c.syncs.values()), "lifts": sum(c.lifts.values()),
            "sync_ops": dict(c.syncs), "lift_ops": dict(c.lifts)}


def solo_counts(layers: int, hidden: int, batch: int, seq: int) -> dict:
    from orchestrator.train import runner
    p, (cfg,) = _prepared(_model(layers, hidden), batch, seq, [1e-4])
    rows = np.arange(batch)
    if not _has_step_module():                                          # an earlier commit's step
        opt = runner.make_optimizer(p.model, cfg, p.device)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, runner.lr_factor(1000, 0.1))
        collate = runner.Collator(p.train, True, p.device, pin=False)
        labels = torch.from_numpy(p.train.labels)

        def step():
            runner.forward_backward(p.model, rows, batch, collate, labels, p.device, runner.autocast_for(p.device),
                                    None, None, sync=False)
            runner.optimizer_step(p.model, opt, sched, 1.0)
        return _count(step)
    from orchestrator.train.batches import DeviceRows
    from orchestrator.train.step import Schedule, tensor_lr, train_step
    opt = runner.make_optimizer(p.model, cfg, p.device)
    sched = Schedule(1000, 0.1, p.device)
    lr = tensor_lr(opt, sched, cfg.learning_rate)
    data = DeviceRows(p.train, True, p.device)
    on_device = data.rows(rows)
    return _count(lambda: train_step(p.model, opt, sched, lr, cfg.learning_rate, data.parts(on_device, seq, batch), 1.0))


def fused_counts(layers: int, hidden: int, batch: int, seq: int, k: int) -> dict:
    from orchestrator.fused import loop
    from orchestrator.train import runner
    p, configs = _prepared(_model(layers, hidden), batch, seq, [1e-4 / (i + 1) for i in range(k)])
    rows = np.arange(batch)
    if not _has_step_module():                                          # an earlier commit's step
        u = loop._Unit(p, configs, None, 0.0, None)
        collate = runner.Collator(u.train, True, p.device, pin=False)
        labels = torch.from_numpy(p.train.labels)

        def step():
            u.forward_backward(rows, batch, collate, labels)
            u.opt.clip_(1.0)
            u.opt.step(0.5)
            if u.words is not None:
                u.words.decay([lr * 0.5 for lr in u.opt.lrs], u.words_wd)
            u.opt.zero_grad()
        return _count(step)
    from orchestrator.train.batches import DeviceRows
    from orchestrator.train.step import Schedule
    u = loop.training_unit(p, configs)
    sched = Schedule(1000, 0.1, p.device)
    data = DeviceRows(u.train, True, p.device)
    on_device = data.rows(rows)
    return _count(lambda: u.train_step(data.parts(on_device, seq, batch), sched))


def _has_step_module() -> bool:
    import importlib.util
    return importlib.util.find_spec("orchestrator.train.step") is not None


def fit(layers: list[int], calls: list[int]) -> dict:
    b, a = np.polyfit(np.asarray(layers, float), np.asarray(calls, float), 1)
    return {"a": round(float(a), 1), "b": round(float(b), 2)}


def measure(a) -> dict:
    torch.set_num_threads(a.threads)
    rows = []
    for layers in a.layers:
        rows.append({"layers": layers, "hidden": a.hidden, "solo": solo_counts(layers, a.hidden, a.batch, a.seq),
                     "fused": fused_counts(layers, a.hidden, a.batch, a.seq, a.k)})
    out = {"environment": environment(torch, torch.device("cpu")),
           "config": {"batch": a.batch, "seq": a.seq, "k": a.k, "hidden": a.hidden, "layers": a.layers},
           "rows": rows}
    for kind in ("solo", "fused"):
        out[kind] = fit([r["layers"] for r in rows], [r[kind]["calls"] for r in rows])
    out["syncs_per_step"] = {kind: max(r[kind]["syncs"] for r in rows) for kind in ("solo", "fused")}
    out["lifts_per_step"] = {kind: max(r[kind]["lifts"] for r in rows) for kind in ("solo", "fused")}
    return out


def _table(r: dict, k: int) -> list[str]:
    md = [f"| layers | solo calls | solo syncs | solo lifts | fused K={k} calls | fused syncs | fused lifts |",
          "|---:|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {x['layers']} | {x['solo']['calls']} | {x['solo']['syncs']} | {x['solo']['lifts']} | "
           f"{x['fused']['calls']} | {x['fused']['syncs']} | {x['fused']['lifts']} |" for x in r["rows"]]
    md += ["", f"Fit: solo calls = {r['solo']['a']:g} + {r['solo']['b']:g} x layers; "
           f"fused calls = {r['fused']['a']:g} + {r['fused']['b']:g} x layers."]
    ops = {f"{kind} {x['layers']} layers": {**x[kind]["sync_ops"], **x[kind]["lift_ops"]}
           for x in r["rows"] for kind in ("solo", "fused") if x[kind]["sync_ops"] or x[kind]["lift_ops"]}
    if ops:
        md += ["", "Syncs and lifts by operator: " + "; ".join(f"{k}: {v}" for k, v in ops.items()) + "."]
    return md


def render(r: dict) -> str:
    c, env = r["config"], r["environment"]
    md = [f"# Operator calls per training step (CPU, batch {c['batch']} x {c['seq']} tokens, fused K={c['k']})", "",
          f"{env['date']}; {env['cpu']}; torch {env.get('torch')}, transformers {env.get('transformers')}; "
          f"commit {git_line(env)}.", "",
          f"Random-init BERT shapes, hidden {c['hidden']} (calls do not depend on it), one step after two warm-up "
          "steps: gathering the batch, forward, backward, clipping, AdamW, the schedule. A sync is an operator that "
          "makes the host wait for the device (`_local_scalar_dense`, `item`, `is_nonzero`, `equal`); a lift, a "
          "Python number made a tensor (a host-to-device copy on a GPU).", ""]
    if "before" in r:
        b = r["before"]
        md += [f"## Before (commit {git_line(b['environment'])})", ""] + _table(b, c["k"]) + ["", "## After", ""]
    md += _table(r, c["k"])
    return "\n".join(md) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/out/ops")
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 4, 12])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--before", help="ops.json of this benchmark run at an earlier commit")
    a = ap.parse_args(argv)
    r = measure(a)
    if a.before:
        r["before"] = json.loads(Path(a.before).read_text())
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ops.json").write_text(json.dumps(r, indent=1) + "\n")
    (out / "ops.md").write_text(render(r))
    print(render(r))


if __name__ == "__main__":
    main()
