"""Several runs side by side: one row per (model, task) that any run has (the GLUE Score as the
task ``Score``), one column per run with its best dev score there and the configuration that
gave it. Pure pandas; the leaderboards come from :func:`.load.load_run`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..registry.tasks import all_tasks
from .board import Leaderboard
from .tables import glue_wide
from .values import MISSING, PARTIAL_MARK, finite, fmt, fmt_lr

SCORE_ROW = "Score"


def run_names(runs: list[str | Path]) -> list[str]:
    """Column names of ``runs``: their directory names, made unique with their parent's name."""
    paths = [Path(r).resolve() for r in runs]
    names = [p.name for p in paths]
    out = [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]
    if len(set(out)) != len(out):
        raise UserError(f"runs given twice: {' '.join(str(r) for r in runs)}")
    return out


def compare_frame(boards: dict[str, Leaderboard]) -> pd.DataFrame:
    """Long and numeric: model, task, run, score, batch_size, learning_rate, epoch, partial; the
    GLUE Score of each model is the row with task ``Score``."""
    rows = []
    for name, lb in boards.items():
        for r in lb.results.itertuples():
            rows.append({"model": r.model, "task": r.task, "run": name, "score": r.score,
                         "batch_size": r.batch_size, "learning_rate": r.learning_rate, "epoch": r.epoch,
                         "partial": bool(r.partial)})
        for w in glue_wide(lb).itertuples():
            if finite(w.score):
                rows.append({"model": w.model, "task": SCORE_ROW, "run": name, "score": w.score,
                             "batch_size": pd.NA, "learning_rate": float("nan"), "epoch": float("nan"),
                             "partial": bool(w.score_partial)})
    df = pd.DataFrame(rows, columns=["model", "task", "run", "score", "batch_size", "learning_rate", "epoch",
                                     "partial"])
    return df.astype({"score": float, "batch_size": "Int64", "learning_rate": float, "epoch": float,
                      "partial": bool})


def compare_table(boards: dict[str, Leaderboard]) -> pd.DataFrame:
    """The printed comparison: ``Model | Task | <run> ...``, cells ``81.1 (bs 32, lr 1e-4)``, the
    Score rows ``64.0``; ``-`` where a run has no result, ``*`` a partial figure."""
    long = compare_frame(boards)
    order = {t: i for i, t in enumerate([SCORE_ROW] + list(all_tasks()))}
    models = list(dict.fromkeys(m for lb in boards.values() for m in lb.models["model"]))
    keys = sorted({(m, t) for m, t in zip(long["model"], long["task"])},
                  key=lambda k: (models.index(k[0]) if k[0] in models else len(models), order.get(k[1], 99)))
    out = pd.DataFrame([{"Model": m, "Task": t} for m, t in keys], columns=["Model", "Task"])
    for name in boards:
        sub = long[long["run"] == name].set_index(["model", "task"])
        out[name] = [_cell(sub.loc[k]) if k in sub.index else MISSING for k in keys]
    return out


def _cell(r: pd.Series) -> str:
    text = fmt(r["score"]) + (PARTIAL_MARK if r["partial"] and finite(r["score"]) else "")
    if r.name[1] == SCORE_ROW or not finite(r["score"]):
        return text
    return f"{text} (bs {int(r['batch_size'])}, lr {fmt_lr(r['learning_rate'])})"
