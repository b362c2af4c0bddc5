"""The compact-models table: ours beside the published compact models (the XtremeDistil card's
layout, ``reference/compact_models_columns.csv``): parameters, speed-up over BERT-Base, six
GLUE dev columns and their mean."""

from __future__ import annotations

from typing import Mapping

import pandas as pd

from .board import Leaderboard
from .columns import as_task, display_columns, metric_columns, task_of_column
from .reference import compact_columns
from .tables import glue_wide
from .values import MISSING, PARTIAL_MARK, finite, fmt, names


def compact_values(lb: Leaderboard, speedups: Mapping[str, float] | None = None,
                   published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Numbers of the compact-models table: model, params (millions), speed-up, the card's GLUE
    dev columns and their mean; ``published`` (the card's rows) are appended with ``source``
    naming them. The card's own ``avg`` also averages SQuAD 2.0; here ``avg`` is always over
    the GLUE columns."""
    layout = compact_columns()
    heads = list(layout)
    speedups = {k: float(v) for k, v in (speedups or {}).items() if finite(v)}
    wide = glue_wide(lb)
    ours = pd.DataFrame({"model": wide["model"], "params_m": wide["n_params"].astype(float) / 1e6,
                         "speedup": wide["model"].map(speedups).astype(float),
                         **{h: wide[ours].astype(float) for h, (_, ours) in layout.items()}})
    tasks = {task_of_column(ours) for _, ours in layout.values()}
    running = wide["running_tasks"].map(lambda s: bool(names(s) & tasks))
    ours = ours.assign(avg=ours[heads].mean(axis=1), avg_partial=ours[heads].notna().sum(axis=1).lt(len(heads)) | running,
                       split="dev", source="this run")
    frames = [ours]
    if published is not None and not published.empty:
        pub = pd.DataFrame({"model": published["model"], "params_m": published["params_millions"].astype(float),
                            "speedup": pd.to_numeric(published.get("speedup_vs_bert_base"), errors="coerce"),
                            **{h: pd.to_numeric(published[card], errors="coerce") for h, (card, _) in layout.items()}})
        frames.append(pub.assign(avg=pub[heads].mean(axis=1), avg_partial=pub[heads].notna().sum(axis=1).lt(len(heads)),
                                 split=published["split"], source=published["source"]))
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else ours
    return out.reindex(columns=["model", "params_m", "speedup", *heads, "avg", "avg_partial", "split", "source"])


def compact_table(lb: Leaderboard, speedups: Mapping[str, float] | None = None,
                  published: pd.DataFrame | None = None, digits: int = 1) -> pd.DataFrame:
    """``Model | #Params | Speedup | <the card's GLUE columns> | Avg``; speed-ups come from
    ``speedups`` (model -> x over BERT-Base), ``-`` when not measured."""
    v = compact_values(lb, speedups, published)
    heads = list(compact_columns())
    return pd.DataFrame({
        "Model": [m if s == "this run" else f"{m} [published {sp}]"
                  for m, s, sp in zip(v["model"], v["source"], v["split"])],
        "#Params": v["params_m"].map(_params),
        "Speedup": v["speedup"].map(lambda x: f"{x:.1f}x" if finite(x) else MISSING),
        **{h: v[h].map(lambda x: fmt(x, digits)) for h in heads},
        "Avg": [fmt(a, digits) + (PARTIAL_MARK if p and finite(a) else "") for a, p in zip(v["avg"], v["avg_partial"])]},
        columns=["Model", "#Params", "Speedup", *heads, "Avg"])


def _params(millions) -> str:
    if not finite(millions):
        return MISSING
    return f"{millions:.0f}M" if float(millions).is_integer() else f"{millions:.1f}M"


def compact_note() -> str:
    """The note under the table: which of our figures each column holds, how Avg is made."""
    described: dict[str, list[str]] = {}
    for head, (_, col) in compact_columns().items():
        task = as_task(task_of_column(col))
        key = dict((c, k) for c, k in metric_columns(task))[col]
        metric = key.rsplit("_", 1)[0] if len(task.eval_splits) > 1 else key
        header, cols = next((h, cs) for h, cs in display_columns(task) if col in cs)
        if len(cols) > 1 or header != task.name:
            described.setdefault(metric if len(cols) > 1 else f"{header} {metric}", []).append(head)
    layout = "; ".join(f"{' and '.join(heads)}: {what}" for what, heads in described.items())
    return (f"{layout}. Avg: mean of the {len(compact_columns())} GLUE columns (the published card's own average "
            "also counts SQuAD 2.0, so it is recomputed here). Speedup: measured inference speed-up over "
            "BERT-Base, `-` when not measured. #Params of ours from the trial records.")
