"""A leaderboard's uncertainty and ensembles, from the outputs stored beside a run's records
(``store.outputs``) and the dev labels of the data the run read (``<run>/data.json``): the
frames behind ``glue-sweep leaderboard --uncertainty`` and ``--ensemble K``. The statistics
are ``uncertainty``'s; this module finds each cell's outputs and labels.

A cell whose outputs are not all stored (a run from before outputs were kept) gets NaN and a
note saying so; nothing is re-trained.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..data.sources import source_from
from ..registry.tasks import get_task
from ..store import outputs as stored, records as store
from . import uncertainty as U
from .values import fmt

NO_OUTPUTS = "no stored outputs (a run from before they were kept)"


class Cells:
    """Outputs and labels of a run's cells, each read once."""

    def __init__(self, run):
        self.run, self._outs, self._labels = run, {}, {}
        glue_dir, hub = store.data_source(run)
        self.source = source_from(glue_dir, hub) if (glue_dir or hub) else None

    def labels(self, task_name: str) -> dict[str, np.ndarray] | None:
        if task_name not in self._labels:
            task = get_task(task_name)
            try:
                self._labels[task_name] = {s.name: self.source.load(task, s.name).labels for s in task.eval_splits}
            except Exception:   # no data source recorded, or its dev files are gone: no labels, no statistics
                self._labels[task_name] = None
        return self._labels[task_name]

    def outputs(self, trial_ids: str, epoch: float) -> list[dict[str, np.ndarray]] | None:
        """The outputs of a cell's trials (its seeds) at ``epoch``, or None unless all are stored."""
        out = []
        for tid in str(trial_ids).split(";"):   # a cell's seeds, as select.rank_configs joins them
            if tid not in self._outs:
                self._outs[tid] = stored.read(self.run, tid)
            got = self._outs[tid].get(stored.epoch_key(epoch))
            if got is None:
                return None
            out.append(got)
        return out or None


def uncertainty_frame(lb, run, n: int = U.RESAMPLES, seed: int = U.SEED) -> pd.DataFrame:
    """Per (model, task) best cell: its score, the 95% bootstrap interval over dev rows; its
    difference from the task's best model with the paired bootstrap's p-value (``sure``: p <
    0.05); the held-out estimate of choosing among the model's configurations on half the dev
    rows (``optimism``: what picking the best of the grid adds)."""
    cells = Cells(run)
    rows = []
    res = lb.results[lb.results["score"].map(lambda v: isinstance(v, float) and math.isfinite(v))]
    best_of_task = res.sort_values("score", ascending=False).groupby("task", sort=False).head(1).set_index("task")
    for r in res.itertuples():
        task, labels = get_task(r.task), cells.labels(r.task)
        outs = cells.outputs(r.trial_ids, r.epoch)
        row = {"model": r.model, "task": r.task, "score": r.score, "n_seeds": r.n_seeds}
        if labels is None or outs is None:
            rows.append(row | {"note": NO_OUTPUTS if outs is None else "no dev labels (data source unknown)"})
            continue
        row["ci_low"], row["ci_high"] = U.interval(task, outs, labels, n, seed)
        top = best_of_task.loc[r.task]
        top_outs = cells.outputs(top.trial_ids, top.epoch)
        if top.model != r.model and top_outs is not None:
            row["vs_best"], row["p"] = U.paired(task, outs, top_outs, labels, n, seed)
            row["sure"] = row["p"] < 0.05
        configs = lb.configs[(lb.configs["model"] == r.model) & (lb.configs["task"] == r.task)]
        cands = {(c.batch_size, c.learning_rate): cells.outputs(c.trial_ids, c.epoch) for c in configs.itertuples()}
        cands = {k: v for k, v in cands.items() if v is not None}
        if cands:
            h = U.held_out(task, cands, labels, seed)
            row["held_out"], row["optimism"] = h.score, h.optimism
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", "task", "score", "n_seeds", "ci_low", "ci_high", "vs_best", "p",
                                       "sure", "held_out", "optimism", "note"])


def uncertainty_table(frame: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """The frame as printed: ``score [low, high]``, the difference from the task's best with
    ``*`` where p < 0.05, the held-out score and the optimism of picking the best."""
    def ci(r):
        return f"[{fmt(r.ci_low, digits)}, {fmt(r.ci_high, digits)}]" if pd.notna(r.ci_low) else "-"

    def vs(r):
        if pd.isna(r.vs_best):
            return "best" if pd.notna(r.ci_low) else "-"
        return f"{r.vs_best:+.{digits}f}{'*' if r.sure else ''} (p {r.p:.3f})"

    return pd.DataFrame({"Model": frame["model"], "Task": frame["task"],
                         "Score": [fmt(v, digits) for v in frame["score"]],
                         "95% interval": [ci(r) for r in frame.itertuples()],
                         "vs task's best": [vs(r) for r in frame.itertuples()],
                         "held-out": [fmt(v, digits) for v in frame["held_out"]],
                         "optimism": [fmt(v, digits) for v in frame["optimism"]],
                         "note": frame["note"].fillna("")})


def ensemble_frame(lb, run, k: int) -> pd.DataFrame:
    """Per (model, task): the score of the mean of its ``k`` best configurations' stored outputs
    (every seed of each, at its epoch), beside the best single configuration's."""
    cells = Cells(run)
    rows = []
    for (model, task_name), g in lb.configs.groupby(["model", "task"], sort=False):
        top = g.sort_values("rank").head(k)
        labels = cells.labels(task_name)
        outs = [cells.outputs(c.trial_ids, c.epoch) for c in top.itertuples()]
        row = {"model": f"{model} (ensemble of {len(top)})", "task": task_name, "members": len(top),
               "best_single": float(top["score"].iloc[0])}
        if labels is None or any(o is None for o in outs):
            rows.append(row | {"score": float("nan"), "note": NO_OUTPUTS if labels is not None else "no dev labels"})
            continue
        row["score"] = U.score(get_task(task_name), U.ensemble([s for o in outs for s in o]), labels)
        rows.append(row | {"note": ""})
    return pd.DataFrame(rows, columns=["model", "task", "members", "score", "best_single", "note"])
