"""What bucketed batch widths cost on real GLUE training data: per task and batch size, the
padded tokens of 4 epochs of the runner's own batches (``batch_order``, grouped by length, and
``batch_widths``) against padding each batch to its own longest row (dynamic padding), and the
distinct batch shapes a trial sees (rows x width: what a compiled step compiles, and CUDA graphs
record, once each). The runner's rule (``buckets``: at most eight multiples of 8 fitted to the
rows' lengths to pad least) is compared with fixed multiples of 8, 16 and 32 tokens.

Tokenised with the uncased WordPiece vocabulary every miniature shares (the pretrained
all-MiniLM-L6-v2's, offline), at the trials' maximum length, through the feature cache.

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.buckets --glue-dir $GLUE_DIR --out bench/out/buckets

Writes ``<out>/buckets.json`` and ``<out>/buckets.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench._common import default_glue_dir, git_line
from bench._machine import environment

RULES = {"fitted": None, "x8": 8, "x16": 16, "x32": 32}   # the runner's rule first, then fixed multiples


def simulate(lengths: np.ndarray, batch_size: int, max_length: int, epochs: int, seed: int) -> dict:
    """Tokens and shapes of ``epochs`` epochs of a trial's batches, per bucket multiple."""
    from orchestrator.train.batches import batch_order, batch_widths, buckets

    rng = np.random.default_rng(seed)
    real, dynamic, dyn_shapes = int(lengths.sum()) * epochs, 0, set()
    padded = {s: 0 for s in RULES}
    shapes: dict[str, set] = {s: set() for s in RULES}
    for _ in range(epochs):
        order = batch_order(lengths, batch_size, rng, True)
        longest = [int(lengths[b].max()) for b in order]
        dynamic += sum(len(b) * w for b, w in zip(order, longest))
        dyn_shapes |= {(len(b), w) for b, w in zip(order, longest)}
        for s, step in RULES.items():
            widths = batch_widths(lengths, order, batch_size, max_length, step=step)
            padded[s] += sum(len(b) * w for b, w in zip(order, widths))
            shapes[s] |= {(len(b), w) for b, w in zip(order, widths)}
    return {"batch_size": batch_size, "buckets": buckets(lengths, max_length).tolist(), "real_tokens": real,
            "dynamic_tokens": dynamic, "dynamic_overhead_vs_real": round(dynamic / real - 1, 4),
            "dynamic_shapes": len(dyn_shapes),
            "rules": {s: {"tokens": padded[s], "shapes": len(shapes[s]),
                          "overhead_vs_dynamic": round(padded[s] / dynamic - 1, 4)} for s in RULES}}


def measure(a) -> dict:
    from orchestrator.data import features as feats
    from orchestrator.data.sources import GlueDir
    from orchestrator.errors import UserError
    from orchestrator.registry.models import load_tokenizer, resolve
    from orchestrator.registry.tasks import get_task

    src = GlueDir(a.glue_dir)
    tokenizer = load_tokenizer(resolve("all-MiniLM-L6-v2"))
    tasks = []
    for name in a.tasks:
        task = get_task(name)
        try:
            lengths = feats.features(task, "train", src, tokenizer, a.max_length).lengths
        except UserError:   # a task whose training file is absent is reported, not fatal
            tasks.append({"task": name, "missing": "its training file is not in the GLUE directory"})
            continue
        tasks.append({"task": name, "rows": len(lengths), "mean_length": round(float(lengths.mean()), 1),
                      "max_length_seen": int(lengths.max()),
                      "batch_sizes": [simulate(lengths, bs, a.max_length, a.epochs, a.seed) for bs in a.batch_sizes]})
    return {"environment": environment(), "config": {"max_length": a.max_length, "epochs": a.epochs, "seed": a.seed,
                                                     "batch_sizes": a.batch_sizes, "glue_dir": Path(a.glue_dir).name},
            "tasks": tasks}


def render(r: dict) -> str:
    c, env = r["config"], r["environment"]
    md = [f"# Bucketed batch widths on GLUE training data (max length {c['max_length']}, {c['epochs']} epochs, "
          f"seed {c['seed']})", "",
          f"{env['date']}; {env['cpu']}; torch {env.get('torch')}, transformers {env.get('transformers')}; "
          f"commit {git_line(env)}.", "",
          "Padding overhead: tokens of bucketed batches over tokens of batches padded to their own longest row, "
          "minus 1 (both grouped by length, the runner's `batch_order`). Shapes: distinct (rows, width) over all "
          "epochs. `fitted` is the runner's rule (at most eight multiples of 8 fitted to the rows' lengths: the "
          "set that pads the rows least); `xN`, fixed multiples of N. Every rule gives an epoch's short batch "
          "the widest bucket.", ""]
    for t in r["tasks"]:
        if "missing" in t:
            md += [f"## {t['task']}: not measured ({t['missing']})", ""]
            continue
        md += [f"## {t['task']}: {t['rows']} rows, mean length {t['mean_length']}, longest {t['max_length_seen']}, "
               f"buckets {t['batch_sizes'][0]['buckets']}", "",
               "| batch | dynamic: padding over real, shapes | " + " | ".join(f"{s}: overhead, shapes" for s in RULES)
               + " |", "|---:|---:|" + "---:|" * len(RULES)]
        for b in t["batch_sizes"]:
            md.append(f"| {b['batch_size']} | {100 * b['dynamic_overhead_vs_real']:.1f}%, {b['dynamic_shapes']} | "
                      + " | ".join(f"{100 * b['rules'][s]['overhead_vs_dynamic']:.1f}%, {b['rules'][s]['shapes']}"
                                   for s in RULES) + " |")
        md.append("")
    rows = [b for t in r["tasks"] if "batch_sizes" in t for b in t["batch_sizes"]]
    md += ["## Summary (every task and batch size above)", "",
           "| rule | worst overhead vs dynamic | mean overhead | most shapes |", "|---|---:|---:|---:|"]
    md += [f"| {s}{' (the runner)' if s == 'fitted' else ''} | "
           f"{100 * max(b['rules'][s]['overhead_vs_dynamic'] for b in rows):.1f}% | "
           f"{100 * float(np.mean([b['rules'][s]['overhead_vs_dynamic'] for b in rows])):.1f}% | "
           f"{max(b['rules'][s]['shapes'] for b in rows)} |" for s in RULES] if rows else []
    return "\n".join(md) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--glue-dir", default=default_glue_dir())
    ap.add_argument("--tasks", nargs="+", default=["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE",
                                                   "WNLI"])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/out/buckets")
    a = ap.parse_args(argv)
    if not a.glue_dir:
        ap.error("no GLUE directory: give --glue-dir or set GLUE_DIR")
    r = measure(a)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "buckets.json").write_text(json.dumps(r, indent=1) + "\n")
    (out / "buckets.md").write_text(render(r))
    print(render(r))


if __name__ == "__main__":
    main()
