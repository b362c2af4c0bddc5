"""Every dev evaluation of a run as one tidy table (``trials.csv``, ``trials.parquet``).

One row per trial and evaluation: the trial's configuration (model, init, task, batch_size,
learning_rate, seed, epochs), the evaluation (epoch, step), every metric under its GLUE name
(``cola_mcc``, ``mrpc_f1``, ``mnli_m_acc``, ...: the published CSVs' names, one column per metric
of every known task, so the columns never depend on the run), the headline ``score``,
``train_loss``, ``elapsed_s`` and the trial's ``status``. A trial with no evaluation yet has one
row with empty evaluation columns. The dtypes are fixed (:data:`DTYPES`): text is ``string``,
counts ``Int64`` (nullable), figures ``float64``.
"""

from __future__ import annotations

import math

import pandas as pd

from ..registry.tasks import all_tasks
from .board import model_label
from .columns import metric_columns
from .values import finite

CONFIG = {"trial_id": "string", "model": "string", "base_model": "string", "model_ref": "string",
          "init": "string", "task": "string", "batch_size": "Int64", "learning_rate": "float64", "seed": "Int64",
          "epochs": "float64", "status": "string", "epoch": "float64", "step": "Int64"}
TAIL = {"score": "float64", "train_loss": "float64", "elapsed_s": "float64"}


def metric_names() -> dict[tuple[str, str], str]:
    """(task, metric key) -> GLUE name, for every known task."""
    return {(t.name, key): col for t in all_tasks().values() for col, key in metric_columns(t)}


def dtypes() -> dict[str, str]:
    """The table's columns in order, with their dtypes."""
    metrics = dict.fromkeys(metric_names().values(), "float64")
    return {**CONFIG, **metrics, **TAIL}


def _number(v) -> float:
    return float(v) if finite(v) else math.nan


def _rows(rec: dict, names: dict[tuple[str, str], str]) -> list[dict]:
    t = rec["trial"]
    task = str(t.get("task"))
    base = {"trial_id": rec["trial_id"], "model": model_label({"model": rec.get("model", t["model"]),
                                                                "init": t.get("init")}),
            "base_model": rec.get("model", t["model"]), "model_ref": t["model"], "init": t.get("init", "pretrained"),
            "task": task, "batch_size": t.get("batch_size"), "learning_rate": _number(t.get("learning_rate")),
            "seed": t.get("seed"), "epochs": _number(t.get("epochs")), "status": rec.get("status")}
    out = []
    for ev in rec.get("evals") or [{}]:
        row = dict(base, epoch=_number(ev.get("epoch")), step=ev.get("step"), score=_number(ev.get("score")),
                   train_loss=_number(ev.get("train_loss")), elapsed_s=_number(ev.get("elapsed_s")))
        for key, v in (ev.get("metrics") or {}).items():
            col = names.get((task, key))
            if col:
                row[col] = _number(v)
        out.append(row)
    return out


def evaluations(records: list[dict]) -> pd.DataFrame:
    """The tidy table of ``records`` (``store.read_records``), ordered by trial id and step."""
    names = metric_names()
    types = dtypes()
    rows = [row for rec in records for row in _rows(rec, names)]
    df = pd.DataFrame(rows).reindex(columns=list(types))
    df = df.astype({c: ("object" if d in ("Int64", "string") else d) for c, d in types.items()})
    df = df.astype(types)
    return df.sort_values(["trial_id", "epoch", "step"], kind="stable", na_position="first").reset_index(drop=True)
