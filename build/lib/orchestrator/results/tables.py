"""The leaderboard's tables: the benchmark's wide table (one row per model, the Score and every
per-metric figure), the GLUE table as printed, the miniature grids and the chosen
hyperparameters. Printed tables are DataFrames of strings: ``-`` where there is no result,
``*`` a partial figure (tasks missing, or trials still running)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..registry.models import HIDDEN, LAYERS, NAMED
from .board import Leaderboard
from .columns import display_columns, metric_columns, table_headers, table_tasks, wide_columns
from .score import (
    glue_score_from_wide,
    left_out_of_second_score,
    scored_names,
    second_score_column,
    second_score_from_wide,
    second_score_header,
    task_score,
)
from .values import MISSING, PARTIAL_MARK, finite, fmt, fmt_lr, names, nullable_ints

GRID_INDEX = "layers \\ hidden"


def glue_wide(lb: Leaderboard) -> pd.DataFrame:
    """One row per model: the GLUE Score, the second Score (without the ``also_scored_without``
    tasks) and every per-metric figure, named like the published CSVs (cola_mcc, ..., ax_r3);
    NaN where there is none. Computed once per leaderboard."""
    if "glue_wide" not in lb.cache:
        lb.cache["glue_wide"] = _wide(lb)
    return lb.cache["glue_wide"].copy()


def _metrics_by_model(lb: Leaderboard) -> pd.DataFrame:
    """The results' metrics pivoted to one row per model, one wide column per metric."""
    colmap = {(t.name, key): col for t in table_tasks() for col, key in metric_columns(t)}
    keys = sorted({k for _, k in colmap} & set(lb.results.columns))
    long = lb.results.melt(id_vars=["model", "task"], value_vars=keys, var_name="key")
    long = long.assign(col=[colmap.get(tk) for tk in zip(long["task"], long["key"])]).dropna(subset=["col", "value"])
    wide = long.pivot_table(index="model", columns="col", values="value", aggfunc="first")
    return wide.reindex(index=list(lb.models["model"]), columns=wide_columns()).astype(float)


def _wide(lb: Leaderboard) -> pd.DataFrame:
    wide = _metrics_by_model(lb)
    table = [t.name for t in table_tasks()]
    res = lb.results[lb.results["partial"].astype(bool) & lb.results["task"].isin(table)]
    running = res.groupby("model", sort=False)["task"].agg(",".join).reindex(wide.index).fillna("")
    scores = [glue_score_from_wide(r) for r in wide.to_dict("records")]
    out = pd.DataFrame({"model": wide.index,
                        "score": [s.value if s.value is not None else np.nan for s in scores],
                        "score_partial": [s.partial or bool(names(run) & set(scored_names()))
                                          for s, run in zip(scores, running)]})
    if left_out_of_second_score():
        out[second_score_column()] = [s.value if s.value is not None else np.nan
                                      for s in map(second_score_from_wide, wide.to_dict("records"))]
    out = out.assign(n_tasks=[s.n_tasks for s in scores], missing_tasks=[",".join(s.missing) for s in scores],
                     running_tasks=list(running), n_params=list(lb.models["n_params"]))
    out = pd.concat([out, wide.reset_index(drop=True)], axis=1)
    return nullable_ints(out, ["n_tasks", "n_params"])


def glue_table(lb: Leaderboard, digits: int = 1) -> pd.DataFrame:
    """The GLUE leaderboard as printed: ``Model | Score | <task columns> | Score w/o ...``;
    pairs as ``F1/acc`` and ``Pearson/Spearman``; ``-`` where there is no result; ``*`` marks a
    partial Score (tasks missing or still running) and a task whose trials are still running."""
    rows = [_glue_row(w, digits) for _, w in glue_wide(lb).iterrows()]
    second = [second_score_header()] if left_out_of_second_score() else []
    return pd.DataFrame(rows, columns=["Model", "Score"] + table_headers() + second)


def _glue_row(w: pd.Series, digits: int) -> dict:
    running = names(w["running_tasks"])
    row = {"Model": w["model"],
           "Score": fmt(w["score"], digits) + (PARTIAL_MARK if w["score_partial"] and finite(w["score"]) else "")}
    for t in table_tasks():
        for header, cols in display_columns(t):
            vals = [w[c] for c in cols]
            cell = "/".join(fmt(v, digits) for v in vals) if any(finite(v) for v in vals) else MISSING
            row[header] = cell + (PARTIAL_MARK if t.name in running and cell != MISSING else "")
    if left_out_of_second_score():
        left_out = {t.name for t in left_out_of_second_score()}
        rule = set(scored_names()) - left_out
        partial = bool(names(w["missing_tasks"]) - left_out) or bool(running & rule)
        v = w[second_score_column()]
        row[second_score_header()] = fmt(v, digits) + (PARTIAL_MARK if partial and finite(v) else "")
    return row


def has_grid(lb: Leaderboard) -> bool:
    """Any pretrained miniature in the run (the grid holds only those)."""
    m = lb.models
    return bool(len(m)) and bool((m["layers"].notna() & (m["init"] == "pretrained")).any())


def grid_tasks(lb: Leaderboard) -> list[str]:
    """The scored tasks the run has results for: one grid each."""
    return [t for t in scored_names() if (lb.results["task"] == t).any()]


def _grid_models(lb: Leaderboard, what: str) -> pd.DataFrame:
    """Pretrained miniatures of the run: layers, hidden, the figure ``what`` (``Score`` or a
    task's headline score) and whether it is partial."""
    wide = glue_wide(lb)
    m = lb.models[lb.models["layers"].notna() & (lb.models["init"] == "pretrained")]
    m = m[["model", "layers", "hidden"]].merge(wide, on="model")
    if what == "Score":
        value, partial = m["score"], m["score_partial"].astype(bool)
    else:
        value = pd.Series([task_score(what, r) for r in m.to_dict("records")], index=m.index, dtype=float)
        partial = m["running_tasks"].map(lambda s: what in names(s))
    return pd.DataFrame({"layers": m["layers"].astype(int), "hidden": m["hidden"].astype(int),
                         "value": value.astype(float), "partial": partial.astype(bool)})


def _grid(cells: pd.DataFrame, column: str, fill) -> pd.DataFrame:
    grid = cells.pivot_table(index="layers", columns="hidden", values=column, aggfunc="last") if len(cells) else None
    grid = pd.DataFrame(grid).reindex(index=list(LAYERS), columns=list(HIDDEN)).fillna(fill)
    grid.index = [f"L={l}" for l in grid.index]
    grid.columns = [f"H={h}" for h in grid.columns]
    return grid


def grid_values(lb: Leaderboard, what: str = "Score") -> pd.DataFrame:
    """The miniature grid: layers (rows, ``L=2``..) x hidden size (columns, ``H=128``..) of the
    GLUE Score (``what="Score"``) or of a task's headline score; NaN where there is none.
    Pretrained miniatures only."""
    return _grid(_grid_models(lb, what).dropna(subset=["value"]), "value", np.nan).astype(float)


def grid_partial(lb: Leaderboard, what: str = "Score") -> pd.DataFrame:
    """Which cells of :func:`grid_values` are partial."""
    return _grid(_grid_models(lb, what), "partial", False).astype(bool)


def grid_table(lb: Leaderboard, what: str = "Score", digits: int = 1) -> pd.DataFrame:
    """:func:`grid_values` as printed: named models labelled (``64.1 (BERT-Tiny)``)."""
    vals, part = grid_values(lb, what), grid_partial(lb, what)
    cells = vals.map(lambda v: fmt(v, digits)) + (part & vals.notna()).map(lambda p: PARTIAL_MARK if p else "")
    for l in vals.index:
        for h in vals.columns:
            name = NAMED.get((int(l[2:]), int(h[2:])))
            if name:
                cells.loc[l, h] = f"{cells.loc[l, h]} ({name})"
    cells.index.name = GRID_INDEX
    return cells.reset_index()


def hyperparameter_table(lb: Leaderboard, digits: int = 1) -> pd.DataFrame:
    """The chosen configuration per model and task."""
    rows = []
    for _, r in lb.results.iterrows():
        chosen = dict.fromkeys(["Batch size", "LR", "Epoch", "Seeds", "Score"], MISSING)
        if finite(r.get("score")):
            std = r.get("score_std")
            chosen = {"Batch size": str(int(r["batch_size"])), "LR": fmt_lr(r["learning_rate"]),
                      "Epoch": f"{float(r['epoch']):g}" if finite(r["epoch"]) else "per seed",
                      "Seeds": str(r["seeds"]),
                      "Score": fmt(r["score"], digits) + (f" ± {float(std):.{digits}f}" if finite(std) else "")
                      + (PARTIAL_MARK if r["partial"] else "")}
        rows.append({"Model": r["model"], "Task": r["task"], **chosen, "Configs": str(int(r["n_configs"])),
                     "Trials": trials_note(r)})
    return pd.DataFrame(rows, columns=["Model", "Task", "Batch size", "LR", "Epoch", "Seeds", "Score", "Configs",
                                       "Trials"])


def trials_note(r) -> str:
    """``12 (1 running, 2 failed)``: a result's trial count and those that did not finish well."""
    extra = [f"{int(r[f'n_{s}'])} {s}" for s in ("running", "diverged", "failed") if int(r[f"n_{s}"])]
    return f"{int(r['n_trials'])}" + (f" ({', '.join(extra)})" if extra else "")
