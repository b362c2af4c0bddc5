"""Leaderboards from a run's result store: pure functions over ``store.read_records`` output.

Selection, per (model, task):

* a *configuration* is (batch size, learning rate); its seeds are the trials that share it;
* a configuration's score is the mean over its seeds of the task's headline dev score (the
  evaluation's ``score``) at one epoch: by default the epoch where that mean is best (among the
  epochs every seed reached), with ``final_epoch=True`` each seed's last evaluation;
* configurations rank by that mean (then more seeds, smaller batch, smaller learning rate);
  the best one gives the (model, task) result, with its metrics (means over seeds), the
  standard deviation of its score over seeds (sample std; NaN with one seed), epoch and seeds;
* ``diverged`` and ``failed`` trials never count; ``running`` ones count with what they have
  evaluated so far, and mark the group partial.

The GLUE Score follows GLUE's rule: the macro average over CoLA, SST-2, MRPC, STS-B, QQP, MNLI,
QNLI, RTE and WNLI of each task's headline score (a task's pair of metrics averaged: MRPC and
QQP F1/accuracy, STS-B Pearson/Spearman; MNLI the mean of matched and mismatched); AX is left
out. A model missing tasks gets its Score over the tasks it has, flagged partial, never silently.

No torch, no ray: only pandas and numpy.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import UserError
from .tasks import Task, all_tasks, get_task

GLUE_TASKS = ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI")
TABLE_TASKS = GLUE_TASKS + ("AX",)
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
PARTIAL_MARK = "*"
MISSING = "-"
_SHORT = {"accuracy": "acc"}
_LABEL = {"accuracy": "acc", "f1": "F1", "mcc": "MCC", "r3": "R3", "pearson": "Pearson", "spearman": "Spearman"}
# The compact-models table (XtremeDistil model card): column -> our wide metric column.
COMPACT_COLUMNS = {"MNLI": "mnli_m_acc", "QNLI": "qnli_acc", "QQP": "qqp_acc", "RTE": "rte_acc",
                   "SST": "sst2_acc", "MRPC": "mrpc_acc"}


# ----------------------------------------------------------------------------- tasks, metrics

def _task(name: str) -> Task:
    return get_task(name)


def _slug(task: Task) -> str:
    return task.name.lower().replace("-", "")


def metric_columns(task: Task | str) -> list[tuple[str, str]]:
    """(wide column, metric key) of a task, e.g. MRPC -> [("mrpc_f1", "f1"), ("mrpc_acc", "accuracy")],
    MNLI -> [("mnli_m_acc", "accuracy_m"), ("mnli_mm_acc", "accuracy_mm")]; the names of the
    published CSVs."""
    t = _task(task) if isinstance(task, str) else task
    splits = t.eval_splits
    if len(splits) <= 1:
        return [(f"{_slug(t)}_{_SHORT.get(m, m)}", m) for m in t.metrics]
    return [(f"{_slug(t)}_{s.tag or s.name}_{_SHORT.get(m, m)}", f"{m}_{s.tag or s.name}")
            for s in splits for m in t.metrics]


def wide_columns(tasks: Iterable[str] = TABLE_TASKS) -> list[str]:
    return [c for t in tasks for c, _ in metric_columns(t)]


def display_columns(task: Task | str) -> list[tuple[str, list[str]]]:
    """A task's column(s) in the GLUE table: (header, wide columns shown as ``a/b``).
    One column per dev split (MNLI-m, MNLI-mm), its metrics joined by ``/`` (MRPC F1/acc)."""
    t = _task(task) if isinstance(task, str) else task
    splits = t.eval_splits
    cols = metric_columns(t)
    if len(splits) <= 1:
        return [(t.name, [c for c, _ in cols])]
    out = []
    for s in splits:
        tag = s.tag or s.name
        out.append((f"{t.name}-{tag}", [c for c, k in cols if k.endswith(f"_{tag}")]))
    return out


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def task_score(task: Task | str, values: Mapping[str, float]) -> float | None:
    """A task's headline score from its wide metric columns (the mean of its metrics, GLUE's
    rule); None when any is missing."""
    cols = [c for c, _ in metric_columns(task)]
    vals = [values.get(c) for c in cols]
    if not cols or not all(_finite(v) for v in vals):
        return None
    return float(sum(float(v) for v in vals) / len(vals))


@dataclass(frozen=True)
class GlueScore:
    value: float | None          # the mean over the tasks present (None: none present)
    n_tasks: int                 # how many tasks it is over
    missing: tuple[str, ...]     # tasks of the rule that had no score

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    def fmt(self, digits: int = 1) -> str:
        if self.value is None:
            return MISSING
        return f"{self.value:.{digits}f}" + (PARTIAL_MARK if self.partial else "")


def glue_score(task_scores: Mapping[str, float | None], exclude: Iterable[str] = ()) -> GlueScore:
    """GLUE's Score: the macro average of the headline scores of the nine GLUE tasks (AX is
    never part of it; ``exclude=("WNLI",)`` gives the Score without WNLI). Tasks without a
    score are listed in ``missing`` and the value is over the others."""
    rule = [t for t in GLUE_TASKS if t not in set(exclude)]
    have = {t: float(task_scores[t]) for t in rule if _finite(task_scores.get(t))}
    missing = tuple(t for t in rule if t not in have)
    value = float(sum(have.values()) / len(have)) if have else None
    return GlueScore(value, len(have), missing)


def task_scores_from_wide(row: Mapping[str, float]) -> dict[str, float | None]:
    return {t: task_score(t, row) for t in TABLE_TASKS}


def glue_score_from_wide(row: Mapping[str, float], exclude: Iterable[str] = ()) -> GlueScore:
    """The GLUE Score of one row of per-metric figures named like the published CSVs
    (``cola_mcc``, ``mrpc_f1``, ``mrpc_acc``, ``mnli_m_acc``, ...)."""
    return glue_score(task_scores_from_wide(row), exclude)


# ----------------------------------------------------------------------------- models

def model_shape(name: str, ref: str | None = None) -> tuple[int, int] | None:
    """(layers, hidden) of a miniature, else None."""
    from .models import resolve

    for cand in (name, ref):
        if not cand:
            continue
        try:
            spec = resolve(cand)
        except UserError:
            continue
        if spec.shape:
            return spec.shape
    return None


def model_label(rec: Mapping) -> str:
    """The model's row label: its name, marked when it was not pre-trained (sweep records
    already carry the mark in their display name)."""
    name = str(rec["model"])
    init = rec.get("init", "pretrained")
    if init in (None, "pretrained") or name.endswith(f"({init} init)"):
        return name
    return f"{name} ({init} init)"


# ----------------------------------------------------------------------------- selection

@dataclass
class Leaderboard:
    results: pd.DataFrame        # one row per (model, task): the best configuration
    configs: pd.DataFrame        # one row per (model, task, batch_size, learning_rate)
    models: pd.DataFrame         # one row per model: layers, hidden, n_params, init
    problems: list[str] = field(default_factory=list)   # files and records skipped, and why
    final_epoch: bool = False
    _wide: pd.DataFrame | None = field(default=None, repr=False, compare=False)   # glue_wide's cache

    @property
    def selection(self) -> str:
        return "final epoch" if self.final_epoch else "best epoch"


def _lr_key(lr) -> float:
    return float(f"{float(lr):.6g}")


def _epoch_key(e) -> float:
    return round(float(e), 6)


def _usable_evals(rec: Mapping) -> list[dict]:
    return [e for e in rec["evals"] if _finite(e.get("score")) and _finite(e.get("epoch", 0))]


def _pick(seeds: list[dict], final_epoch: bool) -> tuple[float | None, list[dict]]:
    """The epoch and, per seed, the evaluation that a configuration is judged by."""
    per_seed = [sorted(_usable_evals(r), key=lambda e: (float(e.get("epoch", 0)), e.get("step", 0))) for r in seeds]
    if final_epoch:
        chosen = [ev[-1] for ev in per_seed]
        epochs = {_epoch_key(e.get("epoch", 0)) for e in chosen}
        return (max(epochs) if epochs else None), chosen
    by_epoch = [{_epoch_key(e.get("epoch", 0)): e for e in ev} for ev in per_seed]   # last eval of an epoch value
    common = set.intersection(*(set(d) for d in by_epoch)) if by_epoch else set()
    if common:
        def mean_at(ep):
            return float(np.mean([float(d[ep]["score"]) for d in by_epoch]))
        best = max(sorted(common), key=mean_at)   # ties: the earliest epoch (max keeps the first)
        return best, [d[best] for d in by_epoch]
    # Seeds that share no epoch (fractional evaluations): each seed's own best.
    chosen = [max(ev, key=lambda e: float(e["score"])) for ev in per_seed]
    return None, chosen


def build(records: list[dict], problems: Iterable[str] = (), final_epoch: bool = False) -> Leaderboard:
    """The leaderboard of a run from its records (see the module doc for the rules)."""
    from .store import flat

    records = [flat(r) if "trial" in r else r for r in records]
    problems = list(problems)
    groups: dict[tuple[str, str], list[dict]] = {}
    model_info: dict[str, dict] = {}
    for rec in records:
        try:
            task = _task(str(rec["task"]))
        except UserError:
            problems.append(f"{rec.get('trial_id')}: unknown task {rec.get('task')!r}, skipped")
            continue
        label = model_label(rec)
        groups.setdefault((label, task.name), []).append(rec)
        info = model_info.setdefault(label, {"model": label, "base_model": rec["model"], "model_ref": rec.get("model_ref"),
                                             "init": rec.get("init", "pretrained") or "pretrained", "_params": []})
        if _finite(rec.get("n_params")):
            info["_params"].append(int(rec["n_params"]))

    metric_keys = [k for t in all_tasks().values() for k in t.metric_keys()]
    metric_keys = list(dict.fromkeys(metric_keys))
    cfg_rows, res_rows = [], []
    for (label, task_name), recs in groups.items():
        task = _task(task_name)
        counts = {s: sum(1 for r in recs if r["status"] == s) for s in ("completed", "stopped", "running", "diverged", "failed")}
        partial = counts["running"] > 0
        by_cfg: dict[tuple[int, float], list[dict]] = {}
        for r in recs:
            if r["status"] in ("diverged", "failed") or not _usable_evals(r):
                continue
            by_cfg.setdefault((int(r["batch_size"]), _lr_key(r["learning_rate"])), []).append(r)
        rows = []
        for (bs, lr), seeds in by_cfg.items():
            seeds = sorted(seeds, key=lambda r: (r["seed"], r["trial_id"]))
            epoch, chosen = _pick(seeds, final_epoch)
            scores = [float(e["score"]) for e in chosen]
            row = {"model": label, "task": task.name, "batch_size": bs, "learning_rate": lr,
                   "score": float(np.mean(scores)),
                   "score_std": float(np.std(scores, ddof=1)) if len(scores) > 1 else float("nan"),
                   "n_seeds": len(seeds), "seeds": ",".join(str(r["seed"]) for r in seeds),
                   "epoch": epoch if epoch is not None else float("nan"),
                   "running": any(r["status"] == "running" for r in seeds),
                   "trial_ids": ";".join(r["trial_id"] for r in seeds)}
            for k in task.metric_keys():
                vals = [float(e["metrics"][k]) for e in chosen if _finite(e["metrics"].get(k))]
                row[k] = float(np.mean(vals)) if len(vals) == len(chosen) and vals else float("nan")
            rows.append(row)
        rows.sort(key=lambda r: (-r["score"], -r["n_seeds"], r["batch_size"], r["learning_rate"]))
        for i, r in enumerate(rows, 1):
            r["rank"] = i
        cfg_rows += rows
        info = model_info[label]
        res = {"model": label, "task": task.name,
               "status": "partial" if partial else ("complete" if rows else "none"),
               "partial": partial, "selection": "final epoch" if final_epoch else "best epoch",
               "n_trials": len(recs), "n_configs": len(rows),
               **{f"n_{s}": c for s, c in counts.items()}}
        if rows:
            best = rows[0]
            res.update({k: best[k] for k in ("score", "score_std", "n_seeds", "seeds", "batch_size", "learning_rate",
                                             "epoch", "trial_ids")})
            res["seed"] = int(best["seeds"]) if best["n_seeds"] == 1 and best["seeds"].lstrip("-").isdigit() else None
            for k in task.metric_keys():
                res[k] = best[k]
        params = [int(r["n_params"]) for r in recs if _finite(r.get("n_params"))]
        res["n_params"] = int(np.median(params)) if params else None
        res_rows.append(res)

    models = []
    for label, info in model_info.items():
        shape = model_shape(info["base_model"], info["model_ref"])
        models.append({"model": label, "base_model": info["base_model"], "model_ref": info["model_ref"],
                       "init": info["init"], "layers": shape[0] if shape else None, "hidden": shape[1] if shape else None,
                       "n_params": int(np.median(info["_params"])) if info["_params"] else None})
    models_df = pd.DataFrame(models, columns=["model", "base_model", "model_ref", "init", "layers", "hidden", "n_params"])
    models_df = _sort_models(models_df)
    order = {m: i for i, m in enumerate(models_df["model"])}
    torder = {t: i for i, t in enumerate(all_tasks())}

    res_cols = (["model", "task", "status", "partial", "score", "score_std", "n_seeds", "seeds", "seed",
                 "batch_size", "learning_rate", "epoch", "selection"] + metric_keys +
                ["n_configs", "n_trials", "n_completed", "n_stopped", "n_running", "n_diverged", "n_failed",
                 "n_params", "trial_ids"])
    results = pd.DataFrame(res_rows, columns=res_cols)
    cfg_cols = (["model", "task", "rank", "batch_size", "learning_rate", "score", "score_std", "n_seeds", "seeds",
                 "epoch", "running"] + metric_keys + ["trial_ids"])
    configs = pd.DataFrame(cfg_rows, columns=cfg_cols)
    def _order(df):
        if not len(df):
            return df
        return df.sort_values(by=["model", "task"], kind="stable",
                              key=lambda s: s.map(order) if s.name == "model" else s.map(torder)).reset_index(drop=True)

    results, configs = _order(results), _order(configs)
    results = _ints(results, ["n_seeds", "seed", "batch_size", "n_configs", "n_trials", "n_completed", "n_stopped",
                              "n_running", "n_diverged", "n_failed", "n_params"])
    configs = _ints(configs, ["rank", "batch_size", "n_seeds"])
    models_df = _ints(models_df, ["layers", "hidden", "n_params"])
    # Metric columns no task of the run has: dropped (the long table stays readable).
    present = {k for t in results["task"].unique() for k in _task(t).metric_keys()}
    results = results.drop(columns=[k for k in metric_keys if k not in present])
    configs = configs.drop(columns=[k for k in metric_keys if k not in present])
    return Leaderboard(results=results, configs=configs, models=models_df, problems=problems, final_epoch=final_epoch)


def _ints(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Integer columns that may hold gaps: pandas' nullable Int64 (CSV writes 4386178, not 4.38618e+06)."""
    df = df.copy()
    for c in cols:
        if c in df.columns:
            df[c] = pd.array([None if not _finite(v) else int(v) for v in df[c]], dtype="Int64")
    return df


def _sort_models(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df.reset_index(drop=True)
    key = df.apply(lambda r: (r["n_params"] if _finite(r["n_params"]) else float("inf"),
                              r["layers"] if _finite(r["layers"]) else 99, r["init"] != "pretrained", r["model"]), axis=1)
    return df.iloc[sorted(range(len(df)), key=lambda i: key.iloc[i])].reset_index(drop=True)


# ----------------------------------------------------------------------------- tables (numeric)

def glue_wide(lb: Leaderboard) -> pd.DataFrame:
    """One row per model: the GLUE Score, the Score without WNLI and every per-metric figure,
    named like the published CSVs (cola_mcc, ..., ax_r3); NaN where there is none."""
    if lb._wide is None:
        lb._wide = _glue_wide(lb)
    return lb._wide.copy()


def _glue_wide(lb: Leaderboard) -> pd.DataFrame:
    by_key = {(r["model"], r["task"]): r for r in lb.results.to_dict("records")}
    cols_of = {t: metric_columns(t) for t in TABLE_TASKS}
    rows = []
    for m in lb.models.to_dict("records"):
        row = {"model": m["model"]}
        partial_tasks = []
        for t in TABLE_TASKS:
            r = by_key.get((m["model"], t))
            for col, key in cols_of[t]:
                v = r.get(key) if r is not None else None
                row[col] = float(v) if _finite(v) else float("nan")
            if r is not None and bool(r["partial"]):
                partial_tasks.append(t)
        s, s8 = glue_score_from_wide(row), glue_score_from_wide(row, exclude=("WNLI",))
        rows.append({"model": m["model"], "score": s.value if s.value is not None else float("nan"),
                     "score_partial": s.partial or any(t in GLUE_TASKS for t in partial_tasks),
                     "score_no_wnli": s8.value if s8.value is not None else float("nan"),
                     "n_tasks": s.n_tasks, "missing_tasks": ",".join(s.missing), "running_tasks": ",".join(partial_tasks),
                     "n_params": m["n_params"], **{c: row[c] for c in wide_columns()}})
    cols = ["model", "score", "score_partial", "score_no_wnli", "n_tasks", "missing_tasks", "running_tasks",
            "n_params"] + wide_columns()
    return _ints(pd.DataFrame(rows, columns=cols), ["n_tasks", "n_params"])


def _fmt(v, digits: int = 1) -> str:
    return f"{float(v):.{digits}f}" if _finite(v) else MISSING


def fmt_lr(lr) -> str:
    if not _finite(lr):
        return MISSING
    s = f"{float(lr):.0e}"
    mant, exp = s.split("e")
    return f"{mant}e{int(exp)}" if float(mant + "e" + exp) == float(lr) else f"{float(lr):.2g}"


def glue_table(lb: Leaderboard, digits: int = 1) -> pd.DataFrame:
    """The GLUE leaderboard as printed: ``Model | Score | CoLA | SST-2 | MRPC | STS-B | QQP |
    MNLI-m | MNLI-mm | QNLI | RTE | WNLI | AX | Score w/o WNLI``; pairs as ``F1/acc`` and
    ``Pearson/Spearman``; ``-`` where there is no result; ``*`` marks a partial Score (tasks
    missing or still running) and a task whose trials are still running."""
    wide = glue_wide(lb)
    rows = []
    for _, w in wide.iterrows():
        running = set(filter(None, str(w["running_tasks"]).split(",")))
        row = {"Model": w["model"]}
        mark = PARTIAL_MARK if w["score_partial"] else ""
        row["Score"] = _fmt(w["score"], digits) + (mark if _finite(w["score"]) else "")
        for t in TABLE_TASKS:
            for header, cols in display_columns(t):
                vals = [w[c] for c in cols]
                cell = "/".join(_fmt(v, digits) for v in vals) if any(_finite(v) for v in vals) else MISSING
                row[header] = cell + (PARTIAL_MARK if t in running and cell != MISSING else "")
        no_wnli_partial = bool(set(filter(None, str(w["missing_tasks"]).split(","))) - {"WNLI"}) or bool(running - {"WNLI", "AX"})
        row["Score w/o WNLI"] = _fmt(w["score_no_wnli"], digits) + (PARTIAL_MARK if no_wnli_partial and _finite(w["score_no_wnli"]) else "")
        rows.append(row)
    cols = ["Model", "Score"] + [h for t in TABLE_TASKS for h, _ in display_columns(t)] + ["Score w/o WNLI"]
    return pd.DataFrame(rows, columns=cols)


def grid_values(lb: Leaderboard, what: str = "Score") -> pd.DataFrame:
    """The miniature grid: layers (rows, ``L=2``..) x hidden size (columns, ``H=128``..) of the
    GLUE Score (``what="Score"``) or of a task's headline score; NaN where there is none.
    Pretrained miniatures only."""
    from .models import HIDDEN, LAYERS

    df = pd.DataFrame(np.nan, index=[f"L={l}" for l in LAYERS], columns=[f"H={h}" for h in HIDDEN])
    wide = glue_wide(lb).set_index("model")
    for _, m in lb.models.iterrows():
        if not _finite(m["layers"]) or m["init"] != "pretrained" or m["model"] not in wide.index:
            continue
        w = wide.loc[m["model"]]
        v = w["score"] if what == "Score" else task_score(what, w.to_dict())
        if _finite(v):
            df.loc[f"L={int(m['layers'])}", f"H={int(m['hidden'])}"] = float(v)
    return df


def grid_partial(lb: Leaderboard, what: str = "Score") -> pd.DataFrame:
    """Which cells of :func:`grid_values` are partial."""
    from .models import HIDDEN, LAYERS

    df = pd.DataFrame(False, index=[f"L={l}" for l in LAYERS], columns=[f"H={h}" for h in HIDDEN])
    wide = glue_wide(lb).set_index("model")
    for _, m in lb.models.iterrows():
        if not _finite(m["layers"]) or m["init"] != "pretrained" or m["model"] not in wide.index:
            continue
        w = wide.loc[m["model"]]
        if what == "Score":
            p = bool(w["score_partial"])
        else:
            p = what in str(w["running_tasks"]).split(",")
        df.loc[f"L={int(m['layers'])}", f"H={int(m['hidden'])}"] = p
    return df


def grid_table(lb: Leaderboard, what: str = "Score", digits: int = 1) -> pd.DataFrame:
    """:func:`grid_values` as printed: named models labelled (``64.1 (BERT-Tiny)``)."""
    from .models import NAMED

    vals, part = grid_values(lb, what), grid_partial(lb, what)
    out = pd.DataFrame("", index=vals.index, columns=vals.columns)
    for (l, h) in [(i, c) for i in vals.index for c in vals.columns]:
        v = vals.loc[l, h]
        cell = _fmt(v, digits) + (PARTIAL_MARK if _finite(v) and part.loc[l, h] else "")
        name = NAMED.get((int(l[2:]), int(h[2:])))
        out.loc[l, h] = f"{cell} ({name})" if name else cell
    out.index.name = "layers \\ hidden"
    return out.reset_index()


def hyperparameter_table(lb: Leaderboard, digits: int = 1) -> pd.DataFrame:
    """The chosen configuration per model and task."""
    rows = []
    for _, r in lb.results.iterrows():
        has = _finite(r.get("score"))
        std = r.get("score_std")
        rows.append({"Model": r["model"], "Task": r["task"],
                     "Batch size": str(int(r["batch_size"])) if has else MISSING,
                     "LR": fmt_lr(r["learning_rate"]) if has else MISSING,
                     "Epoch": (f"{float(r['epoch']):g}" if _finite(r["epoch"]) else "per seed") if has else MISSING,
                     "Seeds": str(r["seeds"]) if has else MISSING,
                     "Score": (_fmt(r["score"], digits) + (f" ± {float(std):.{digits}f}" if _finite(std) else "")
                               + (PARTIAL_MARK if r["partial"] else "")) if has else MISSING,
                     "Configs": str(int(r["n_configs"])),
                     "Trials": _trials_note(r)})
    return pd.DataFrame(rows, columns=["Model", "Task", "Batch size", "LR", "Epoch", "Seeds", "Score", "Configs", "Trials"])


def _trials_note(r) -> str:
    parts = [f"{int(r['n_trials'])}"]
    extra = [f"{int(r[f'n_{s}'])} {s}" for s in ("running", "diverged", "failed") if int(r[f"n_{s}"])]
    return parts[0] + (f" ({', '.join(extra)})" if extra else "")


# ----------------------------------------------------------------------------- published figures

def _wide_col_for(task: str, metric: str) -> tuple[str, str] | None:
    """A published (task, metric) pair -> (our task, our wide column): ("MNLI-m", "acc") ->
    ("MNLI", "mnli_m_acc"); None when it is no GLUE figure of ours."""
    metric = {"accuracy": "acc"}.get(metric.lower(), metric.lower())
    try:
        t = get_task(task)
        tag = None
    except UserError:
        base, _, tag = task.rpartition("-")
        try:
            t = get_task(base)
        except UserError:
            return None
    for col, key in metric_columns(t):
        base_key = key.rsplit("_", 1)[0] if len(t.eval_splits) > 1 else key
        ktag = key.rsplit("_", 1)[1] if len(t.eval_splits) > 1 else None
        if _SHORT.get(base_key, base_key) == metric and ktag == tag:
            return t.name, col
    return None


def load_reference(ref_dir: str | Path = REFERENCE_DIR) -> pd.DataFrame:
    """Every published figure, one per row: model, task, metric (our wide column, or ``score``
    for a GLUE Score), value, split (dev/test), protocol, source."""
    return _load_reference(str(Path(ref_dir).resolve())).copy()


@functools.lru_cache(maxsize=8)
def _load_reference(ref_dir: str) -> pd.DataFrame:
    ref_dir = Path(ref_dir)
    rows = []
    test = ref_dir / "bert_miniatures_glue_test.csv"
    if test.is_file():
        df = pd.read_csv(test)
        for _, r in df.iterrows():
            rows.append({"model": r["model"], "task": "GLUE", "metric": "score", "value": float(r["score"]),
                         "split": r["split"], "protocol": "best of bs {8..128} x lr {3e-4..3e-5}, 4 epochs", "source": r["source"]})
            for t in TABLE_TASKS:
                for col, _ in metric_columns(t):
                    if col in df.columns and _finite(r[col]):
                        rows.append({"model": r["model"], "task": t, "metric": col, "value": float(r[col]),
                                     "split": r["split"], "protocol": "best of bs {8..128} x lr {3e-4..3e-5}, 4 epochs",
                                     "source": r["source"]})
    compact = ref_dir / "compact_models_glue_dev.csv"
    if compact.is_file():
        df = pd.read_csv(compact)
        src_cols = {"mnli_acc": ("MNLI", "mnli_m_acc"), "qnli_acc": ("QNLI", "qnli_acc"), "qqp_acc": ("QQP", "qqp_acc"),
                    "rte_acc": ("RTE", "rte_acc"), "sst2_acc": ("SST-2", "sst2_acc"), "mrpc_acc": ("MRPC", "mrpc_acc")}
        for _, r in df.iterrows():
            for c, (t, col) in src_cols.items():
                if _finite(r.get(c)):
                    rows.append({"model": r["model"], "task": t, "metric": col, "value": float(r[c]), "split": r["split"],
                                 "protocol": "", "source": r["source"]})
    dev = ref_dir / "miniatures_glue_dev_reported.csv"
    if dev.is_file():
        df = pd.read_csv(dev)
        for _, r in df.iterrows():
            found = _wide_col_for(str(r["task"]), str(r["metric"]))
            if found is None or not _finite(r["value"]):
                continue
            task, col = found
            rows.append({"model": r["model"], "task": task, "metric": col, "value": float(r["value"]),
                         "split": r["split"], "protocol": r.get("protocol", ""), "source": r["source"]})
    return pd.DataFrame(rows, columns=["model", "task", "metric", "value", "split", "protocol", "source"])


def load_compact_reference(ref_dir: str | Path = REFERENCE_DIR) -> pd.DataFrame:
    path = Path(ref_dir) / "compact_models_glue_dev.csv"
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def comparison(lb: Leaderboard, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our dev figure beside every published one for the same model and metric: ours, theirs,
    ours - theirs, and their split (dev or test: a test figure is not like for like)."""
    ref = load_reference() if reference is None else reference
    wide = glue_wide(lb).set_index("model")
    rows = []
    for _, p in ref.iterrows():
        if p["model"] not in wide.index:
            continue
        w = wide.loc[p["model"]]
        ours = w["score"] if p["metric"] == "score" else w.get(p["metric"])
        partial = bool(w["score_partial"]) if p["metric"] == "score" else p["task"] in str(w["running_tasks"]).split(",")
        ours = float(ours) if _finite(ours) else float("nan")
        rows.append({"model": p["model"], "task": p["task"], "metric": p["metric"], "ours": ours,
                     "ours_partial": partial, "theirs": float(p["value"]),
                     "diff": ours - float(p["value"]) if _finite(ours) else float("nan"),
                     "our_split": "dev", "their_split": p["split"], "protocol": p["protocol"], "source": p["source"]})
    out = pd.DataFrame(rows, columns=["model", "task", "metric", "ours", "ours_partial", "theirs", "diff",
                                      "our_split", "their_split", "protocol", "source"])
    morder = {m: i for i, m in enumerate(lb.models["model"])}
    torder = {t: i for i, t in enumerate(("GLUE",) + TABLE_TASKS)}
    key = out.apply(lambda r: (morder.get(r["model"], 99), r["their_split"] != "dev", torder.get(r["task"], 99)), axis=1) \
        if len(out) else pd.Series(dtype=object)
    return out.iloc[sorted(range(len(out)), key=lambda i: key.iloc[i])].reset_index(drop=True)


def comparison_table(lb: Leaderboard, reference: pd.DataFrame | None = None, digits: int = 1) -> pd.DataFrame:
    c = comparison(lb, reference)
    rows = []
    for _, r in c.iterrows():
        rows.append({"Model": r["model"], "Task": r["task"], "Metric": metric_label(r["metric"]),
                     "Ours (dev)": _fmt(r["ours"], digits) + (PARTIAL_MARK if r["ours_partial"] and _finite(r["ours"]) else ""),
                     "Theirs": _fmt(r["theirs"], digits),
                     "Diff": (f"{r['diff']:+.{digits}f}" if _finite(r["diff"]) else MISSING),
                     "Theirs on": r["their_split"] + (" (not like for like)" if r["their_split"] != "dev" else ""),
                     "Source": r["source"] + (f"; {r['protocol']}" if r["protocol"] else "")})
    return pd.DataFrame(rows, columns=["Model", "Task", "Metric", "Ours (dev)", "Theirs", "Diff", "Theirs on", "Source"])


# ----------------------------------------------------------------------------- compact models

def compact_values(lb: Leaderboard, speedups: Mapping[str, float] | None = None,
                   published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Numbers of the compact-models table: model, params (millions), speed-up, the six GLUE
    dev columns of the XtremeDistil card (MNLI = MNLI-m accuracy, QQP/MRPC accuracy) and their
    mean; ``published`` (the card's rows) are appended with ``source`` naming them. The card's own
    ``avg`` also averages SQuAD 2.0; here ``Avg`` is always over the six GLUE columns."""
    speedups = dict(speedups or {})
    wide = glue_wide(lb)
    rows = []
    for _, w in wide.iterrows():
        vals = {k: w[c] for k, c in COMPACT_COLUMNS.items()}
        have = [float(v) for v in vals.values() if _finite(v)]
        running = set(filter(None, str(w["running_tasks"]).split(",")))
        rows.append({"model": w["model"], "params_m": w["n_params"] / 1e6 if _finite(w["n_params"]) else float("nan"),
                     "speedup": float(speedups[w["model"]]) if _finite(speedups.get(w["model"])) else float("nan"),
                     **{k: float(v) if _finite(v) else float("nan") for k, v in vals.items()},
                     "avg": float(np.mean(have)) if have else float("nan"),
                     "avg_partial": len(have) < len(vals) or bool(running & {"MNLI", "QNLI", "QQP", "RTE", "SST-2", "MRPC"}),
                     "split": "dev", "source": "this run"})
    if published is not None and not published.empty:
        src = {"MNLI": "mnli_acc", "QNLI": "qnli_acc", "QQP": "qqp_acc", "RTE": "rte_acc", "SST": "sst2_acc", "MRPC": "mrpc_acc"}
        for _, p in published.iterrows():
            vals = {k: float(p[c]) if _finite(p.get(c)) else float("nan") for k, c in src.items()}
            have = [v for v in vals.values() if _finite(v)]
            rows.append({"model": p["model"], "params_m": float(p["params_millions"]),
                         "speedup": float(p["speedup_vs_bert_base"]) if _finite(p.get("speedup_vs_bert_base")) else float("nan"),
                         **vals, "avg": float(np.mean(have)) if have else float("nan"), "avg_partial": len(have) < len(vals),
                         "split": p["split"], "source": p["source"]})
    return pd.DataFrame(rows, columns=["model", "params_m", "speedup", *COMPACT_COLUMNS, "avg", "avg_partial", "split", "source"])


def compact_table(lb: Leaderboard, speedups: Mapping[str, float] | None = None,
                  published: pd.DataFrame | None = None, digits: int = 1) -> pd.DataFrame:
    """``Model | #Params | Speedup | MNLI | QNLI | QQP | RTE | SST | MRPC | Avg``; speed-ups come
    from ``speedups`` (model -> x over BERT-Base), ``-`` when not measured."""
    v = compact_values(lb, speedups, published)
    rows = []
    for _, r in v.iterrows():
        name = r["model"] if r["source"] == "this run" else f"{r['model']} [published {r['split']}]"
        params = MISSING if not _finite(r["params_m"]) else (
            f"{r['params_m']:.0f}M" if float(r["params_m"]).is_integer() else f"{r['params_m']:.1f}M")
        rows.append({"Model": name, "#Params": params,
                     "Speedup": f"{r['speedup']:.1f}x" if _finite(r["speedup"]) else MISSING,
                     **{k: _fmt(r[k], digits) for k in COMPACT_COLUMNS},
                     "Avg": _fmt(r["avg"], digits) + (PARTIAL_MARK if r["avg_partial"] and _finite(r["avg"]) else "")})
    return pd.DataFrame(rows, columns=["Model", "#Params", "Speedup", *COMPACT_COLUMNS, "Avg"])


# ----------------------------------------------------------------------------- renderers

def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    return str(v)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate needed)."""
    cols = [str(c) for c in df.columns]
    esc = lambda s: s.replace("|", "\\|")
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(cols))) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(esc(_cell(v)) for v in row) + " |")
    return "\n".join(lines)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$"}


def tex_escape(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def to_latex(df: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs table (needs ``\\usepackage{booktabs}``); written here, no jinja2."""
    cols = [str(c) for c in df.columns]
    spec = "l" + "r" * (len(cols) - 1)
    out = [r"\begin{table}[ht]", r"\centering", r"\small"]
    if caption:
        out.append(r"\caption{" + tex_escape(caption) + "}")
    if label:
        out.append(r"\label{" + label + "}")
    out += [r"\begin{tabular}{" + spec + "}", r"\toprule", " & ".join(tex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for row in df.itertuples(index=False):
        out.append(" & ".join(tex_escape(_cell(v)) for v in row) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out)


_NUMERIC = re.compile(r"^([-+]?\d|-$|- \()")   # 81.1/71.1, 65.5*, -14.6, 3e-5, "-", "- (BERT-Base)"


def to_html(df: pd.DataFrame) -> str:
    """An HTML table; cells that read as numbers (``81.1/71.1``, ``65.5*``, ``-``) are right-aligned
    (class ``num``), text left."""
    from html import escape

    head = "".join(f"<th>{escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            text = _cell(v)
            cls = " class='num'" if _NUMERIC.match(text) else ""
            cells.append(f"<td{cls}>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class='tbl'><thead><tr>{head}</tr></thead><tbody>" + "".join(body) + "</tbody></table>"


def metric_label(col: str) -> str:
    """A wide column as a table header reads: ``mrpc_f1`` -> ``F1``, ``mnli_mm_acc`` -> ``acc (mm)``."""
    if col == "score":
        return "Score"
    for t in TABLE_TASKS:
        for c, key in metric_columns(t):
            if c == col:
                if len(_task(t).eval_splits) > 1:
                    base, tag = key.rsplit("_", 1)
                    return f"{_LABEL.get(base, base)} ({tag})"
                return _LABEL.get(key, key)
    return col
