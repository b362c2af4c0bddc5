"""Choosing the best configuration per (model, task).

* a *configuration* is (batch size, learning rate); its seeds are the trials that share it;
* a configuration's score is the mean over its seeds of the task's headline dev score (the
  evaluation's ``score``) at one epoch: by default the epoch where that mean is best (among the
  epochs every seed reached; ties: the earliest), with ``final_epoch=True`` each seed's last
  evaluation; seeds that share no epoch (fractional evaluations) are each judged at their best;
* ``stopped``: a seed of the configuration was stopped early (ASHA); ``epochs_reached``: the
  last epoch all its seeds were evaluated at, so a stopped cell shows how far it got;
* configurations rank by that mean (then more seeds, smaller batch, smaller learning rate);
  the best one gives the (model, task) result, with its metrics (means over seeds), the
  standard deviation of its score over seeds (sample std; NaN with one seed), epoch and seeds;
* ``diverged`` and ``failed`` trials never count; ``running`` ones count with what they have
  evaluated so far, and mark the group partial.

Inputs are the frames of :mod:`.load`: one row per evaluation (``evals``) and per trial (``trials``).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from .values import finite

CONFIG = ["model", "task", "batch_size", "learning_rate"]
GROUP = ["model", "task"]
STATUSES = ("completed", "stopped", "running", "diverged", "failed")
NEVER_COUNT = ("diverged", "failed")


def lr_key(lr) -> float:
    """A learning rate as a grouping key (``1e-4`` and ``0.00010000000001`` are one)."""
    return float(f"{float(lr):.6g}")


def epoch_key(e) -> float:
    """An epoch as a grouping key."""
    return round(float(e), 6)


def usable_evals(rec: Mapping) -> list[dict]:
    """A record's evaluations that can be ranked: a finite score at a finite epoch."""
    return [e for e in rec["evals"] if finite(e.get("score")) and finite(e.get("epoch", 0))]


def usable(evals: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``evals`` that can be ranked (:func:`usable_evals`), of trials that count,
    in (trial, epoch, step) order, with ``epoch_key``."""
    ok = np.isfinite(evals["score"]) & np.isfinite(evals["epoch"]) & ~evals["status"].isin(NEVER_COUNT)
    out = evals[ok].sort_values(["trial_id", "epoch", "step"], kind="stable")
    return out.assign(epoch_key=out["epoch"].map(epoch_key)).reset_index(drop=True)


def judged(evals: pd.DataFrame, final_epoch: bool = False) -> pd.DataFrame:
    """Per trial that counts, the evaluation its configuration is judged by; ``config_epoch``
    is the configuration's epoch (NaN when its seeds share none)."""
    ev = usable(evals)
    if ev.empty:
        return ev.assign(config_epoch=np.nan)
    if final_epoch:
        chosen = ev.groupby("trial_id", sort=False).tail(1)
        return chosen.assign(config_epoch=chosen.groupby(CONFIG)["epoch_key"].transform("max"))
    last = ev.drop_duplicates(["trial_id", "epoch_key"], keep="last")   # the last evaluation of an epoch value
    n_seeds = last.groupby(CONFIG)["trial_id"].transform("nunique")
    per_epoch = (last.assign(n_seeds=n_seeds).groupby(CONFIG + ["epoch_key"])
                 .agg(mean=("score", "mean"), n=("trial_id", "size"), n_seeds=("n_seeds", "first")))
    common = per_epoch[per_epoch["n"] == per_epoch["n_seeds"]]
    best = common.groupby(CONFIG)["mean"].idxmax()        # sorted epochs: ties go to the earliest
    best_epochs = pd.DataFrame(best.tolist(), columns=CONFIG + ["epoch_key"])
    at_best = last.merge(best_epochs, on=CONFIG + ["epoch_key"])
    at_best = at_best.assign(config_epoch=at_best["epoch_key"])
    rest = ev[~ev.set_index(CONFIG).index.isin(best_epochs.set_index(CONFIG).index)]
    own_best = rest.loc[rest.groupby("trial_id", sort=False)["score"].idxmax()] if len(rest) else rest
    return pd.concat([at_best, own_best.assign(config_epoch=np.nan)], ignore_index=True)


def rank_configs(evals: pd.DataFrame, metric_keys: list[str], final_epoch: bool = False) -> pd.DataFrame:
    """One row per configuration: its mean score over seeds, their std, the epoch, the seeds,
    the metrics' means (NaN unless every seed has the metric) and its ``rank`` in its (model,
    task)."""
    chosen = judged(evals, final_epoch).sort_values(["seed", "trial_id"], kind="stable")
    if chosen.empty:
        cols = ["batch_size", "learning_rate", "rank", "score", "score_std", "n_seeds", "seeds", "epoch", "running",
                "stopped", "epochs_reached", "trial_ids"] + metric_keys
        return pd.DataFrame(columns=GROUP + cols).astype(dict.fromkeys(cols, float))
    chosen = chosen.reindex(columns=list(dict.fromkeys(list(chosen.columns) + metric_keys)))
    reached = usable(evals).groupby("trial_id")["epoch"].max()   # the last epoch each trial was evaluated at
    chosen = chosen.assign(seed_text=chosen["seed"].astype(str), is_running=chosen["status"].eq("running"),
                           is_stopped=chosen["status"].eq("stopped"), reached=chosen["trial_id"].map(reached))
    g = chosen.groupby(CONFIG, sort=False)
    out = g.agg(score=("score", "mean"), score_std=("score", "std"), n_seeds=("trial_id", "size"),
                seeds=("seed_text", ",".join), epoch=("config_epoch", "first"), running=("is_running", "any"),
                stopped=("is_stopped", "any"), epochs_reached=("reached", "min"), trial_ids=("trial_id", ";".join))
    metrics = g[metric_keys].mean().where(g[metric_keys].count().eq(g.size(), axis=0))
    out = out.join(metrics).reset_index()
    out = out.sort_values(["model", "task", "score", "n_seeds", "batch_size", "learning_rate"],
                          ascending=[True, True, False, False, True, True], kind="stable")
    out["rank"] = out.groupby(GROUP).cumcount() + 1
    return out.reset_index(drop=True)


def best_per_group(trials: pd.DataFrame, configs: pd.DataFrame, final_epoch: bool = False) -> pd.DataFrame:
    """One row per (model, task) of ``trials``: its trial counts by status, partial while any
    runs, and the best configuration's figures (NaN when none counts)."""
    g = trials.groupby(GROUP, sort=False)
    counts = g["status"].value_counts().unstack(fill_value=0).reindex(columns=list(STATUSES), fill_value=0)
    out = counts.add_prefix("n_").assign(n_trials=g.size())
    out["n_configs"] = configs.groupby(GROUP).size().reindex(out.index, fill_value=0) if len(configs) else 0
    out["n_params"] = g["n_params"].agg(lambda s: np.median([float(v) for v in s if finite(v)])
                                        if any(finite(v) for v in s) else np.nan)
    out["partial"] = out["n_running"] > 0
    out["status"] = np.where(out["partial"], "partial", np.where(out["n_configs"] > 0, "completed", "none"))
    out["selection"] = "final epoch" if final_epoch else "best epoch"
    best = configs[configs["rank"] == 1].drop(columns=["rank", "running", "stopped", "epochs_reached"]).set_index(GROUP)
    out = out.join(best).reset_index()
    single = (out["n_seeds"] == 1) & out["seeds"].astype(str).str.lstrip("-").str.isdigit()
    out["seed"] = [int(s) if one else None for s, one in zip(out["seeds"], single)]
    return out
