"""A run's result store as DataFrames, and its leaderboard.

``trials_frame``: one row per trial (its configuration flattened, the model's row label, status,
n_params); ``evals_frame``: one tidy row per dev evaluation (trial, epoch, step, score, one
column per metric). :func:`build` ranks them (:mod:`.select`) into a :class:`Leaderboard`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import UserError
from ..registry.tasks import all_tasks, get_task
from ..store import location as storage, records as store
from .board import Leaderboard, model_label, models_frame
from .budget import budget_of
from .kinds import read_teachers
from .select import best_per_group, lr_key, rank_configs
from .values import nullable_ints

RESULT_COLUMNS = (["model", "task", "status", "partial", "score", "score_std", "n_seeds", "seeds", "seed",
                   "batch_size", "learning_rate", "epoch", "selection"], ["n_configs", "n_trials", "n_completed",
                  "n_stopped", "n_running", "n_diverged", "n_failed", "n_params", "trial_ids"])
CONFIG_COLUMNS = (["model", "task", "rank", "batch_size", "learning_rate", "score", "score_std", "n_seeds", "seeds",
                   "epoch", "running", "stopped", "epochs_reached"], ["trial_ids"])
RESULT_INTS = ["n_seeds", "seed", "batch_size", "n_configs", "n_trials", "n_completed", "n_stopped", "n_running",
               "n_diverged", "n_failed", "n_params"]
EVAL_COLUMNS = ["trial_id", "epoch", "step", "score"]


def metric_keys() -> list[str]:
    """Every task's metric keys, once each, in task order."""
    return list(dict.fromkeys(k for t in all_tasks().values() for k in t.metric_keys()))


def trials_frame(records: list[dict], problems: list[str]) -> pd.DataFrame:
    """One row per trial with a known task: ``model`` is its row label, ``base_model`` the
    record's model name, ``model_ref`` the model loaded. Unknown tasks are added to ``problems``."""
    cols = ["trial_id", "model", "model_ref", "init", "training", "task", "batch_size", "learning_rate", "seed",
            "status", "n_params"]
    flat = pd.DataFrame([store.flat(r) for r in records]).reindex(columns=cols)
    tasks = flat["task"].astype(str)
    names = tasks.map({t: _task_name(t) for t in tasks.unique()})
    problems += [f"{r.trial_id}: unknown task {r.task!r}, skipped" for r in flat[names.isna()].itertuples()]
    flat = flat.assign(task=names)[names.notna()].reset_index(drop=True)
    labels = [model_label(r) for r in flat[["model", "init"]].to_dict("records")]
    out = flat.rename(columns={"model": "base_model"}).assign(
        model=labels, training=flat["training"].astype(object).fillna("fine-tune"), batch_size=flat["batch_size"].astype(int), learning_rate=flat["learning_rate"].map(lr_key))
    return out[["trial_id", "model", "base_model"] + cols[2:]]


def _task_name(name: str) -> str | None:
    try:
        return get_task(name).name
    except UserError:
        return None


def evals_frame(records: list[dict], trials: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluation of ``trials``: its trial's configuration, epoch, step, score and
    one column per metric (NaN where it has none or it is not a finite number)."""
    raw = pd.DataFrame([_flat_eval(e) for r in records for e in r["evals"]])
    raw = raw.rename(columns=lambda c: c.removeprefix("metrics.")).drop(columns="trial_id", errors="ignore")
    raw = raw.reindex(columns=list(dict.fromkeys(EVAL_COLUMNS + list(raw.columns))))
    raw["trial_id"] = [r["trial_id"] for r in records for _ in r["evals"]]
    nums = [c for c in raw.columns if c != "trial_id"]
    raw[nums] = raw[nums].apply(pd.to_numeric, errors="coerce").replace([np.inf, -np.inf], np.nan)
    raw["step"] = raw["step"].fillna(0)
    keep = ["trial_id", "model", "task", "batch_size", "learning_rate", "seed", "status"]
    return trials[keep].merge(raw, on="trial_id")


def _flat_eval(e: dict, prefix: str = "") -> dict:
    """An evaluation's fields with nested ones as ``metrics.accuracy`` (``pd.json_normalize``'s
    names and column order: the plain fields first), built without its per-row overhead."""
    out = {prefix + k: v for k, v in e.items() if not isinstance(v, dict)}
    for k, v in e.items():
        if isinstance(v, dict):
            out.update(_flat_eval(v, f"{prefix}{k}."))
    return out


def build(records: list[dict], problems: Iterable[str] = (), final_epoch: bool = False) -> Leaderboard:
    """The leaderboard of a run from its records (``store.read_records``); see :mod:`.select`
    for the rules."""
    problems = list(problems)
    trials = trials_frame(records, problems)
    keys = metric_keys()
    evals = evals_frame(records, trials)
    configs = rank_configs(evals, keys, final_epoch)
    results = best_per_group(trials, configs, final_epoch) if len(trials) else \
        pd.DataFrame(columns=RESULT_COLUMNS[0] + RESULT_COLUMNS[1])
    models = nullable_ints(models_frame(trials), ["layers", "hidden", "n_params"])
    present = {k for t in results["task"].unique() for k in get_task(t).metric_keys()}
    keys = [k for k in keys if k in present]
    results = _in_order(results.reindex(columns=RESULT_COLUMNS[0] + keys + RESULT_COLUMNS[1]), models)
    configs = _in_order(configs.reindex(columns=CONFIG_COLUMNS[0] + keys + CONFIG_COLUMNS[1]), models)
    return Leaderboard(results=nullable_ints(results, RESULT_INTS),
                       configs=nullable_ints(configs, ["rank", "batch_size", "n_seeds"]),
                       models=models, problems=problems, final_epoch=final_epoch, evals=evals)


def _in_order(df: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Rows by model (the models frame's order), then task (table order), then rank."""
    if df.empty:
        return df.reset_index(drop=True)
    morder = {m: i for i, m in enumerate(models["model"])}
    torder = {t: i for i, t in enumerate(all_tasks())}
    by = ["model", "task"] + (["rank"] if "rank" in df.columns else [])
    return df.sort_values(by=by, kind="stable", key=lambda s: s.map(morder) if s.name == "model" else
                          s.map(torder) if s.name == "task" else s).reset_index(drop=True)


def load_run(run_dir: str | Path, final_epoch: bool = False) -> Leaderboard:
    """The leaderboard of a run directory; UserError when it does not exist, has no trials, or
    none of its records can be read."""
    return load_run_records(run_dir, final_epoch)[0]


def load_run_records(run_dir: str | Path, final_epoch: bool = False) -> tuple[Leaderboard, list[dict]]:
    """(the leaderboard, the records it was built from): for a caller that needs both, read once."""
    run = storage.at(run_dir)   # a local directory or a storage URI (s3://...)
    run_dir = str(run) if storage.is_uri(str(run_dir)) else run_dir   # a URI shown without its options
    if not run.exists() and not run.is_dir():
        raise UserError(f"run {run_dir} does not exist")
    if not run.is_dir():
        raise UserError(f"run {run_dir} is not a directory")
    tdir = run.join("trials")
    records, problems = store.read_records(run, cache=True)
    if not records and not problems:
        raise UserError(f"run {run_dir} has no trials ({tdir}/*.json)")
    if not records:
        raise UserError(f"run {run_dir}: none of its {len(problems)} trial records can be read ({problems[0]})")
    lb = build(records, problems, final_epoch=final_epoch)
    lb.teachers = read_teachers(run)
    lb.budget = budget_of(records, run)
    return lb, records
