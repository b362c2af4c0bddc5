"""``glue-sweep plan``: what a sweep will do, computed from the spec alone (no Ray, no torch)."""

from __future__ import annotations

from collections import Counter

from ..config import fmt_lr
from ..registry.tasks import all_tasks, get_task
from . import cost
from .resources import model_params, trial_gpu_share
from .sweep import Sweep


def estimate(sweep: Sweep) -> dict:
    trials = sweep.trials() if sweep.mode == "grid" else []
    train_ex = eval_ex = 0
    flops = 0.0
    unknown = set()
    for trial in trials:
        t = trial.config
        task = get_task(t.task)
        n = task.splits["train"].rows or 0
        if t.max_train_examples:
            n = min(n, t.max_train_examples)
        dev = sum(s.rows or 0 for s in task.eval_splits)
        evals = t.epochs / (t.eval_every or 1)
        train_ex += n * t.epochs
        eval_ex += dev * evals
        p = model_params(t.model)
        if p is None:
            unknown.add(trial.label)
            continue
        tokens_train = n * t.epochs * task.avg_tokens
        tokens_eval = dev * evals * task.avg_tokens
        flops += 6 * p[1] * tokens_train + 2 * p[1] * tokens_eval
    return {"trials": len(trials), "train_examples": int(train_ex), "eval_examples": int(eval_ex), "flops": flops,
            "unknown_size": sorted(unknown)}


def cost_estimate(sweep: Sweep, fuse: str | None = None, padding: dict | None = None,
                  calls: tuple[cost.Calls, cost.Calls] = (cost.SOLO_CALLS, cost.FUSED_CALLS),
                  early_stopping: bool | None = None, grace: float | None = None, rf: float | None = None) -> dict:
    """The cost model's H100-hours of a grid sweep on one H100 (``cost.estimate_range``): its
    trials or fused units (``fuse``, default the sweep's), each at the GPU share the sweep gives it
    on an H100, with the sweep's early stopping (``early_stopping``: force it on or off)."""
    works, firsts, unknown = cost.works_of(sweep, fuse, padding)
    shares = [trial_gpu_share(t, cost.H100_MEMORY_BYTES, w.members) for w, t in zip(works, firsts)]
    es = sweep.scheduler == "asha" if early_stopping is None else early_stopping
    grace = grace or (sweep.grace_period if sweep.scheduler == "asha" else 1.0)
    rf = rf or (sweep.reduction_factor if sweep.scheduler == "asha" else 2.0)
    fractions = cost.halving_fractions(works, grace if es else None, rf)
    out = cost.estimate_range(works, shares, fractions, calls)
    out.update(fuse=fuse or sweep.fuse, early_stopping=es, unknown_size=unknown,
               shares={s: shares.count(s) for s in sorted(set(shares))})
    return out


def cost_line(sweep: Sweep) -> str:
    """``estimate: ...``: the cost model's range on one H100, its assumptions, and the other
    fuse setting's range where fusing would change anything."""
    c = cost_estimate(sweep)
    how = (f"fuse {c['fuse']}, " + ("with ideal ASHA halving" if c["early_stopping"] else "without early stopping"))
    line = (f"estimate: {_hours(c)} on one H100 ({how}; {c['items']:,} "
            f"{'units and solo trials' if c['fuse'] != 'off' else 'trials'}, {_count(c['steps'])} optimizer "
            f"steps{' at most' if c['early_stopping'] else ''}, {_share(c['detail']['point']['host_bound_fraction'])} "
            f"of them bound by host time")
    if c["fuse"] == "off":
        other = cost_estimate(sweep, fuse="auto")
        if other["items"] < c["items"]:
            line += f"; with fuse: auto {_hours(other)}"
    if c["unknown_size"]:
        line += f"; sizes unknown for {', '.join(c['unknown_size'])}, left out"
    return line + f") (assumptions: {'; '.join(c['assumptions'])})"


def _share(x: float) -> str:
    return "over 99%" if 0.99 < x < 1 else f"{x:.0%}"


def _count(n: float) -> str:
    return f"{n / 1e6:,.1f} M" if n >= 1e6 else f"{n:,.0f}"


def _hours(c: dict) -> str:
    h = lambda x: f"{x:,.0f}" if x >= 10 else f"{x:.2g}"   # noqa: E731
    return f"{h(c['low'])}-{h(c['high'])} H100-hours (point {h(c['point'])})"


def render(sweep: Sweep) -> str:
    out = [f"sweep {sweep.name} ({sweep.path})"]
    if sweep.mode == "optuna":
        n_groups = len(sweep.models) * len(sweep.tasks)
        out.append(f"  search: optuna (TPE), {sweep.optuna_trials} trials per (model, task) x {n_groups} groups "
                   f"x {len(sweep.seeds)} seed(s) = {sweep.optuna_trials * n_groups * len(sweep.seeds):,} trials; "
                   f"batch size from {sweep.batch_sizes}, learning rate in [{sweep.learning_rates[0]:g}, "
                   f"{sweep.learning_rates[1]:g}] (log scale)")
        return "\n".join(out)
    trials = sweep.trials()
    n_cfg = len(sweep.batch_sizes) * len(sweep.learning_rates)
    kinds = sweep.trainings()
    by_kind = f"{len(kinds)} kinds of training ({', '.join(kinds)}) x " if len(kinds) > 1 else ""
    out.append(f"  {len(trials):,} trials = {len(sweep.models)} models x {by_kind}{len(sweep.tasks)} tasks x {n_cfg} "
               f"configurations (batch sizes {sweep.batch_sizes} x learning rates "
               f"[{', '.join(fmt_lr(x) for x in sweep.learning_rates)}]) x {len(sweep.seeds)} seed(s)")
    out.append(f"  {sweep.epochs:g} epochs, evaluated every {sweep.eval_every:g} epoch; early stopping: "
               + (f"ASHA per (model, task), grace {sweep.grace_period:g} epoch, reduction factor {sweep.reduction_factor:g}"
                  if sweep.scheduler == "asha" else "none (every trial runs every epoch)"))
    if sweep.distill:
        d = sweep.distill
        out.append(f"  distillation: teacher {d.teacher.identity}; transfer data "
                   f"{'the training inputs' if d.train else 'extra files only'}{' and extra files' if d.files and d.train else ''}; "
                   f"temperature {d.temperature:g}, alpha {d.alpha:g}"
                   + ("; then fine-tuned on gold labels" if d.then_finetune else "")
                   + "; the teacher labels each task's transfer set once, before the trials")
    if sweep.max_train_examples:
        out.append(f"  training examples capped at {sweep.max_train_examples:,} per task")
    ax = [t for t in all_tasks().values() if t.predict_with and get_task(t.predict_with) in sweep.tasks]
    if ax:
        out.append("  " + ", ".join(f"{t.name} is predicted with the {t.predict_with} trials' models" for t in ax))
    data = f"GLUE directory {sweep.glue_dir}" if sweep.glue_dir else (f"hub {sweep.hub}" if sweep.hub else
                                                                         "$GLUE_DIR if set, else the hub")
    out.append(f"  data: {data}; results: {sweep.run_dir}/")
    counts = Counter((t.label, t.config.task) for t in trials)
    tasks = [t.name for t in sweep.tasks]
    names = list(dict.fromkeys(t.label for t in trials))
    w = max(len("model"), *(len(n) for n in names))
    cols = [max(len(x), 4) for x in tasks]
    out.append("")
    out.append("  " + "model".ljust(w) + "  " + "  ".join(x.rjust(c) for x, c in zip(tasks, cols)) + "  total")
    for n in names:
        row = [counts[(n, x)] for x in tasks]
        out.append("  " + n.ljust(w) + "  " + "  ".join(str(v).rjust(c) for v, c in zip(row, cols)) + f"  {sum(row):5d}")
    e = estimate(sweep)
    out.append("")
    out.append(f"  examples processed (at most, official GLUE sizes): {e['train_examples']:,} training, "
               f"{e['eval_examples']:,} dev")
    note = f" (sizes unknown for {', '.join(e['unknown_size'])})" if e["unknown_size"] else ""
    out.append(f"  compute: about {_flops(e['flops'])} (6 x non-embedding parameters x tokens){note}")
    out.append("  " + cost_line(sweep))
    out.append(f"  stored dev outputs (float16, every evaluation, before early stopping): at most "
               f"{outputs_bytes(trials) / 1e6:,.0f} MB (compressed: less)")
    return "\n".join(out)


NPZ_OVERHEAD = 260   # bytes per stored array in an .npz (zip entry and numpy headers; measured: 253-264)


def outputs_bytes(trials) -> int:
    """What the store's dev outputs of ``trials`` take at most (``store.outputs``, before its
    compression): every evaluation's dev outputs, 2 bytes per class per row (one per row for
    regression). The test outputs (a byte a row, compressed) are not counted."""
    total = 0
    for t in trials:
        task, cfg = get_task(t.config.task), t.config
        evals = cfg.epochs / (cfg.eval_every or 1)
        per = sum((s.rows or 0) * task.num_labels * 2 + NPZ_OVERHEAD for s in task.eval_splits)
        total += int(per * evals)
    return total


def _flops(x: float) -> str:
    for unit, scale in (("EFLOP", 1e18), ("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if x >= scale:
            return f"{x / scale:,.1f} {unit}"
    return f"{x:,.0f} FLOP"
