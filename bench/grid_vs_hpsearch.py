"""A whole grid: our sweep against ``Trainer.hyperparameter_search`` (Ray backend).

The same grid (by default the paper's 5 batch sizes x 4 learning rates = 20 configurations)
on one task, one model, one seed, run twice from a cold start:

* ``ours``    ``glue-sweep run`` on a generated sweep spec (Ray Tune, one CPU per trial, one trial
              per process unless ``--fuse auto``, the runner's dynamic padding and length
              grouping, no checkpoints; optionally ASHA per (model, task): side ``ours-asha``);
* ``hf-ray``  ``transformers.Trainer.hyperparameter_search(backend="ray")`` over the same grid
              (``tune.grid_search`` on learning rate and batch size), the Trainer set up as
              ``run_glue.py`` sets it up by default (every example padded to 128,
              ``default_data_collator``, random sampling), ``hyperparameter_search``'s own
              defaults for everything Ray (one CPU per trial, no scheduler), and evaluation
              at every epoch end so each epoch's dev score is reported.

Both get the same training rows (``runner.train_subset``), the same recipe (AdamW, weight decay
0.01 off biases and LayerNorm, eps 1e-6, 10% linear warm-up then linear decay, clipping at
1.0), the same seed and the same scoring code (``orchestrator.registry.metrics``) on the whole dev
split. Each side is timed as a user would see it: wall time of its process, Python start
and Ray start-up included, with the feature cache already warm for ours (``glue-sweep``
tokenises once per data set and tokenizer, not per trial) and the data tokenised once before
the search for the Trainer (as ``run_glue.py`` does). Disk written under each side's output
directory is reported too (the Trainer side may write checkpoints).

The score compared is each side's best dev score over all configurations and epochs, and the
per-configuration differences (same configuration, our score minus the Trainer's), whose
spread shows the noise of a single seed.

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.grid_vs_hpsearch --out bench/out/grid

Writes ``<out>/grid_vs_hpsearch.json`` and ``<out>/grid_vs_hpsearch.md``.
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

from bench._common import default_glue_dir, fmt
from bench._features import EncodedDataset, trainer_metrics, warm_features
from bench._machine import REPO, environment, loadavg
from orchestrator.data.features import features
from orchestrator.data.sources import source_from
from orchestrator.registry import metrics as M
from orchestrator.registry.models import load_model, load_tokenizer, resolve
from orchestrator.registry.tasks import get_task
from orchestrator.spec.sweep import PAPER_BATCH_SIZES, PAPER_LEARNING_RATES
from orchestrator.train.runner import train_subset


def _key(bs: int, lr: float) -> str:
    return f"bs{int(bs)}_lr{float(lr):.0e}"


def _du(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


# ----------------------------------------------------------------------------- ours

def sweep_spec(a, scheduler: str) -> str:
    sched = ("scheduler:\n  type: asha\n  grace_period: 1\n  reduction_factor: 2\n" if scheduler == "asha"
             else "scheduler: none\n")
    return (f"name: grid-bench\nmodels:\n  - {{name: {a.model}, init: {a.init}}}\ntasks: [{a.task}]\n"
            f"search:\n  mode: grid\n  batch_size: [{', '.join(str(b) for b in a.batch_sizes)}]\n"
            f"  learning_rate: [{', '.join(f'{x:g}' for x in a.learning_rates)}]\n"
            f"epochs: {a.epochs:g}\n" + (f"max_train_examples: {a.max_train_examples}\n" if a.max_train_examples else "")
            + f"seeds: [{a.seed}]\n{sched}fuse: {a.fuse}\n"
            f"resources:\n  cpus_per_trial: 1\ndata:\n  glue_dir: {a.glue_dir}\n")


def run_ours(a, work: Path, scheduler: str) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "grid-bench.yaml"
    spec.write_text(sweep_spec(a, scheduler))
    results = work / "results"
    cmd = [sys.executable, "-m", "orchestrator.cli.main", "run", str(spec), "--results", str(results)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    (work / "ours.log").write_text(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f"glue-sweep run exited {proc.returncode}; log: {work / 'ours.log'}\n{proc.stdout[-2000:]}")
    configs = {}
    for f in sorted((results / "grid-bench" / "trials").glob("*.json")):
        r = json.loads(f.read_text())
        configs[_key(r["batch_size"], r["learning_rate"])] = {
            "batch_size": r["batch_size"], "learning_rate": r["learning_rate"], "status": r["status"],
            "scores": [e["score"] for e in r["evals"]], "epochs": [e["epoch"] for e in r["evals"]]}
    return {"wall_s": round(wall, 2), "configs": configs, "disk_bytes": _du(results / "grid-bench"),
            "command": " ".join(cmd[1:])}


# ----------------------------------------------------------------------------- Trainer + Ray

def _hf_datasets(a, task, spec) -> tuple:
    """The training rows (``runner.train_subset``) and the first dev split, tokenised once and
    padded to 128 as run_glue.py does; the seconds that took."""
    tok = load_tokenizer(spec, a.init, False)
    source = source_from(a.glue_dir, None)
    t_tok = time.perf_counter()
    train = features(task, "train", source, tok, 128, None, {})
    train = train.subset(train_subset(len(train), a.max_train_examples))
    dev = features(task, task.eval_splits[0].name, source, tok, 128, None, {})
    tokenise_s = time.perf_counter() - t_tok
    use_types = True   # BERT-style models take token types
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    return EncodedDataset(train, use_types, 128, pad_id), EncodedDataset(dev, use_types, 128, pad_id), tokenise_s


def _hf_configs(analysis) -> dict:
    """Every configuration's dev scores by epoch, from Ray Tune's results."""
    configs = {}
    for trial in analysis.trials:
        df = analysis.trial_dataframes.get(trial.path)
        if df is None:
            df = next((d for p, d in analysis.trial_dataframes.items() if str(p).endswith(trial.trial_id)), None)
        cfg = trial.config
        rows = [] if df is None else [(float(e), float(o)) for e, o in zip(df.get("epoch", []), df.get("objective", []))
                                      if o == o]
        configs[_key(cfg["per_device_train_batch_size"], cfg["learning_rate"])] = {
            "batch_size": int(cfg["per_device_train_batch_size"]), "learning_rate": float(cfg["learning_rate"]),
            "status": str(trial.status), "scores": [round(o, 4) for _, o in rows], "epochs": [e for e, _ in rows]}
    return configs


def child_hf(a) -> dict:
    """Runs inside its own process: the Trainer's hyperparameter search over the grid."""
    t_proc = time.perf_counter()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Heavy, and only this side's process needs them (the parent runs glue-sweep as a command).
    import ray
    from ray import tune
    from transformers import Trainer, TrainingArguments, default_data_collator

    task, spec = get_task(a.task), resolve(a.model)
    train_ds, dev_ds, tokenise_s = _hf_datasets(a, task, spec)

    def objective(metrics: dict) -> float:
        m = {k[len("eval_"):]: v for k, v in metrics.items() if k.startswith("eval_") and k[5:] in task.metric_keys()}
        return M.headline(m)

    out_dir = Path(a.work) / "hf-output"
    storage = Path(a.work) / "hf-ray-results"
    args = TrainingArguments(
        output_dir=str(out_dir), per_device_eval_batch_size=a.eval_batch_size, num_train_epochs=a.epochs,
        weight_decay=0.01, adam_epsilon=1e-6, max_grad_norm=1.0, lr_scheduler_type="linear", warmup_steps=0.1,
        seed=a.seed, eval_strategy="epoch", report_to="none", disable_tqdm=True, use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model_init=lambda trial=None: load_model(spec, task.num_labels, a.init, False), args=args,
                      train_dataset=train_ds, eval_dataset=dev_ds, data_collator=default_data_collator,
                      compute_metrics=trainer_metrics(task))
    # A fresh local Ray, like our driver's: ray.init() alone joins any cluster an earlier
    # session left registered on this machine.
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    t_search = time.perf_counter()
    best = trainer.hyperparameter_search(
        hp_space=lambda _: {"learning_rate": tune.grid_search(list(a.learning_rates)),
                            "per_device_train_batch_size": tune.grid_search(list(a.batch_sizes))},
        backend="ray", n_trials=1, direction="maximize", compute_objective=objective,
        storage_path=str(storage), name="hf-grid")
    search_s = time.perf_counter() - t_search
    return {"configs": _hf_configs(best.run_summary),
            "best_run": {"objective": best.objective, "hyperparameters": best.hyperparameters},
            "tokenise_s": round(tokenise_s, 2), "search_s": round(search_s, 2),
            "in_process_s": round(time.perf_counter() - t_proc, 2),
            "disk_bytes": _du(out_dir) + _du(storage)}


def run_hf(a, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    result = work / "hf.json"
    cmd = [sys.executable, "-m", "bench.grid_vs_hpsearch", "--child", "hf-ray", "--work", str(work),
           "--child-out", str(result)] + _shared_args(a)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    (work / "hf.log").write_text(proc.stdout)
    if proc.returncode != 0 or not result.is_file():
        raise RuntimeError(f"hyperparameter_search exited {proc.returncode}; log: {work / 'hf.log'}\n{proc.stdout[-3000:]}")
    out = json.loads(result.read_text())
    out["wall_s"] = round(wall, 2)
    out["command"] = "Trainer.hyperparameter_search(backend='ray', hp_space=grid_search(lr) x grid_search(batch size))"
    return out


def _shared_args(a) -> list[str]:
    return ["--model", a.model, "--init", a.init, "--task", a.task, "--epochs", f"{a.epochs:g}", "--seed", str(a.seed),
            "--max-train-examples", str(a.max_train_examples or 0), "--glue-dir", str(a.glue_dir),
            "--batch-sizes", ",".join(str(b) for b in a.batch_sizes),
            "--learning-rates", ",".join(f"{x:g}" for x in a.learning_rates),
            "--eval-batch-size", str(a.eval_batch_size)]


# ----------------------------------------------------------------------------- report

def best_of(configs: dict) -> tuple[float | None, str | None]:
    best, where = None, None
    for k, c in configs.items():
        for s, e in zip(c["scores"], c["epochs"]):
            if s is not None and s == s and (best is None or s > best):
                best, where = s, f"{k} epoch {e:g}"
    return best, where


def epochs_run(configs: dict) -> float:
    return sum(max(c["epochs"], default=0.0) for c in configs.values())


def build_report(a, sides: dict, env: dict) -> tuple[dict, str]:
    rows = {}
    for name, side in sides.items():
        best, where = best_of(side["configs"])
        rows[name] = {"wall_s": side["wall_s"], "best_dev": best, "best_at": where, "configs": len(side["configs"]),
                      "epochs_run": epochs_run(side["configs"]), "disk_bytes": side.get("disk_bytes")}
    base = rows.get("hf-ray")
    diffs = {}
    if base:
        for name, side in sides.items():
            if name == "hf-ray":
                continue
            rows[name]["speedup_vs_hf_ray"] = round(base["wall_s"] / side["wall_s"], 2)
            if rows[name]["best_dev"] is not None and base["best_dev"] is not None:
                rows[name]["best_dev_minus_hf_ray"] = round(rows[name]["best_dev"] - base["best_dev"], 2)
            d = []
            for k, c in side["configs"].items():
                o = sides["hf-ray"]["configs"].get(k)
                if o and c["scores"] and o["scores"] and c["status"] == "completed":
                    d.append(round(max(c["scores"]) - max(o["scores"]), 2))
            diffs[name] = d
    report = {"benchmark": "grid_vs_hpsearch", "grid": {"batch_sizes": a.batch_sizes, "learning_rates": a.learning_rates,
              "epochs": a.epochs, "model": a.model, "init": a.init, "task": a.task, "seed": a.seed,
              "max_train_examples": a.max_train_examples},
              "results": rows, "per_config_best_diff": diffs, "sides": sides, "environment": env}
    md = [f"# Grid of {len(a.batch_sizes) * len(a.learning_rates)} configurations: glue-sweep vs "
          f"Trainer.hyperparameter_search (Ray)", "",
          f"{a.model} ({a.init}) on {a.task}, {a.max_train_examples or 'all'} training rows, {a.epochs:g} epoch(s), "
          f"seed {a.seed}; batch sizes {list(a.batch_sizes)} x learning rates {list(a.learning_rates)}; "
          f"{env.get('cores')} cores, {env.get('cpu')}.", "",
          "| side | wall (s) | speed-up | best dev | best at | epochs run | disk written |",
          "|---|---:|---:|---:|---|---:|---:|"]
    for name, r in rows.items():
        sp = "1.00" if name == "hf-ray" else fmt(r.get("speedup_vs_hf_ray"), missing="n/a")
        md.append(f"| {name} | {r['wall_s']:.0f} | {sp}x | {fmt(r['best_dev'], missing='n/a')} | {r['best_at']} | "
                  f"{r['epochs_run']:g} | {(r['disk_bytes'] or 0) / 1e6:.1f} MB |")
    for name, d in diffs.items():
        if d:
            md += ["", f"{name} minus hf-ray, same configuration (best epoch), {len(d)} configurations run to the end: "
                       f"mean {statistics.mean(d):+.2f}, median {statistics.median(d):+.2f}, "
                       f"min {min(d):+.2f}, max {max(d):+.2f} points."]
    return report, "\n".join(md) + "\n"


def parent(a) -> int:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    t0 = time.perf_counter()
    warm_features(a.model, a.init, a.task, a.glue_dir)   # what any earlier sweep would have done
    env["cache_warm_s"] = round(time.perf_counter() - t0, 2)
    work = Path(tempfile.mkdtemp(prefix="grid-bench-"))
    sides = {}
    try:
        for side in a.sides:
            print(f"[{time.strftime('%H:%M:%S')}] {side} ...", file=sys.stderr, flush=True)
            if side == "hf-ray":
                sides[side] = run_hf(a, work / side)
            else:
                sides[side] = run_ours(a, work / side, "asha" if side == "ours-asha" else "none")
            print(f"[{time.strftime('%H:%M:%S')}] {side}: {sides[side]['wall_s']:.0f} s, best dev "
                  f"{best_of(sides[side]['configs'])[0]}", file=sys.stderr, flush=True)
    finally:
        env["loadavg_end"] = loadavg()
        if sides:
            report, md = build_report(a, sides, env)
            (out / "grid_vs_hpsearch.json").write_text(json.dumps(report, indent=1, default=str))
            (out / "grid_vs_hpsearch.md").write_text(md)
            print(md)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if len(sides) == len(a.sides) else 1


def _floats(s: str) -> tuple[float, ...]:
    return tuple(float(x) for x in s.split(","))


def _sides(s: str) -> list[str]:
    out = s.split(",")
    bad = [x for x in out if x not in ("ours", "ours-asha", "hf-ray")]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown side(s) {', '.join(bad)}: choose from ours, ours-asha, hf-ray")
    return out


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(","))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.grid_vs_hpsearch", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--init", default="pretrained", choices=("pretrained", "random"))
    p.add_argument("--task", default="SST-2")
    p.add_argument("--epochs", type=float, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train-examples", type=int, default=500, help="0: the whole training split")
    p.add_argument("--batch-sizes", type=_ints, default=PAPER_BATCH_SIZES)
    p.add_argument("--learning-rates", type=_floats, default=PAPER_LEARNING_RATES)
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--fuse", default="off", choices=("off", "auto", "on"),
                   help="ours: off, one trial per process as the Trainer runs them (the recorded report); "
                        "auto, fused units where they pay (on CPU: small models); on, fused units of every BERT")
    p.add_argument("--sides", type=_sides, default=["ours", "hf-ray"],
                   help="comma-separated, run in this order: ours (every configuration to the end), ours-asha "
                        "(ASHA per (model, task), grace 1 epoch, reduction factor 2), hf-ray")
    p.add_argument("--glue-dir", default=default_glue_dir())
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "grid"))
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, results)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--work", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    a.max_train_examples = a.max_train_examples or None
    a.glue_dir = str(Path(a.glue_dir).resolve())
    if a.child == "hf-ray":
        res = child_hf(a)
        Path(a.child_out).write_text(json.dumps(res, default=str))
        return 0
    return parent(a)


if __name__ == "__main__":
    sys.exit(main())
