"""Learning curves: the dev score at each evaluation of every (model, task)'s best configuration
(mean over its seeds), from the leaderboard's evaluations. Pure pandas; the figure is drawn by
:func:`.figures.draw_learning_curves`."""

from __future__ import annotations

import pandas as pd

from .board import Leaderboard
from .select import epoch_key, usable

CURVE_COLUMNS = ["model", "task", "batch_size", "learning_rate", "epoch", "score", "n_seeds"]


def best_trial_ids(lb: Leaderboard) -> dict[tuple[str, str], list[str]]:
    """(model, task) -> the trials of its best configuration."""
    out = {}
    for r in lb.results.itertuples():
        ids = r.trial_ids if isinstance(r.trial_ids, str) else ""
        if ids:
            out[(r.model, r.task)] = ids.split(";")
    return out


def learning_curves(lb: Leaderboard) -> pd.DataFrame:
    """One row per (model, task, epoch) of each best configuration: the mean dev score over the
    seeds evaluated at that epoch (diverged and failed trials never count)."""
    ids = best_trial_ids(lb)
    if lb.evals is None or lb.evals.empty or not ids:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    wanted = {t for v in ids.values() for t in v}
    ev = usable(lb.evals[lb.evals["trial_id"].isin(wanted)])
    if ev.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    ev = ev.drop_duplicates(["trial_id", "epoch_key"], keep="last")
    g = ev.groupby(["model", "task", "batch_size", "learning_rate", "epoch_key"], sort=False)
    out = g.agg(score=("score", "mean"), n_seeds=("trial_id", "nunique")).reset_index()
    out = out.rename(columns={"epoch_key": "epoch"}).sort_values(["model", "task", "epoch"], kind="stable")
    out["epoch"] = out["epoch"].map(epoch_key)
    return out[CURVE_COLUMNS].reset_index(drop=True)
