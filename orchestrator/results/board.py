"""The leaderboard of a run (its three frames) and the models it ranks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import UserError
from ..registry.models import resolve
from .values import finite

MODEL_COLUMNS = ["model", "base_model", "model_ref", "init", "training", "layers", "hidden", "n_params"]


@dataclass
class Leaderboard:
    results: pd.DataFrame        # one row per (model, task): the best configuration
    configs: pd.DataFrame        # one row per (model, task, batch_size, learning_rate)
    models: pd.DataFrame         # one row per model: layers, hidden, n_params, init
    problems: list[str] = field(default_factory=list)   # files and records skipped, and why
    evals: pd.DataFrame | None = None   # one row per dev evaluation (load.evals_frame): the learning curves
    final_epoch: bool = False
    teachers: list[dict] = field(default_factory=list)   # distillation teachers' own dev scores (teachers.json)
    budget: object = None        # budget.Budget: what the figures measured (rows, epochs, early stopping, seeds)
    cache: dict = field(default_factory=dict, repr=False, compare=False)   # tables derived once (tables.glue_wide)

    @property
    def selection(self) -> str:
        return "final epoch" if self.final_epoch else "best epoch"


def model_label(rec: Mapping) -> str:
    """The model's row label: its name, marked when it was not pre-trained (sweep records
    already carry the mark in their display name)."""
    name = str(rec["model"])
    init = rec.get("init", "pretrained")
    if init in (None, "pretrained") or f"({init} init)" in name:
        return name
    return f"{name} ({init} init)"


def model_shape(name: str, ref: str | None = None) -> tuple[int, int] | None:
    """(layers, hidden) of a miniature, else None."""
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


def models_frame(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per model label of ``trials`` (its first trial gives the name, reference and
    init; ``n_params`` is the median over its trials), smallest first."""
    if trials.empty:
        return pd.DataFrame(columns=MODEL_COLUMNS)
    g = trials.groupby("model", sort=False)
    out = g[["base_model", "model_ref", "init", "training"]].first()
    out["n_params"] = g["n_params"].agg(lambda s: np.median([float(v) for v in s if finite(v)])
                                        if any(finite(v) for v in s) else np.nan)
    shapes = [model_shape(r.base_model, r.model_ref) for r in out.itertuples()]
    out["layers"] = [s[0] if s else np.nan for s in shapes]
    out["hidden"] = [s[1] if s else np.nan for s in shapes]
    out = out.reset_index()[MODEL_COLUMNS]
    out["init"] = out["init"].fillna("pretrained")
    out["training"] = out["training"].fillna("fine-tune")
    keys = pd.DataFrame({"params": out["n_params"].fillna(np.inf), "layers": out["layers"].fillna(99),
                         "random": out["init"] != "pretrained", "model": out["model"]})
    return out.loc[keys.sort_values(list(keys.columns), kind="stable").index].reset_index(drop=True)
