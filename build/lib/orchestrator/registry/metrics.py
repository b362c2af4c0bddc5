"""GLUE metrics as GLUE computes them, scaled x100 like the paper tables.

Pure functions over numpy arrays: predictions are class ids (or floats for STS-B),
labels likewise. No `evaluate` (it fetches metric scripts from the hub at run time).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def _nan_safe(x: float) -> float:
    # A constant prediction makes correlations undefined; GLUE reports those as 0.
    return 0.0 if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def accuracy(preds, labels) -> float:
    return 100.0 * float(accuracy_score(labels, preds))


def f1(preds, labels) -> float:
    """F1 of the positive class (label 1), as GLUE reports it for MRPC and QQP."""
    return 100.0 * float(f1_score(labels, preds, pos_label=1, average="binary", zero_division=0.0))


def mcc(preds, labels) -> float:
    """Matthews correlation (CoLA)."""
    return 100.0 * _nan_safe(matthews_corrcoef(labels, preds))


def r3(preds, labels) -> float:
    """R3: Matthews correlation generalised to three classes (the AX diagnostic)."""
    return 100.0 * _nan_safe(matthews_corrcoef(labels, preds))


def pearson(preds, labels) -> float:
    preds, labels = np.asarray(preds, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if preds.std() == 0 or labels.std() == 0:
        return 0.0
    return 100.0 * _nan_safe(pearsonr(preds, labels)[0])


def spearman(preds, labels) -> float:
    preds, labels = np.asarray(preds, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if preds.std() == 0 or labels.std() == 0:
        return 0.0
    return 100.0 * _nan_safe(spearmanr(preds, labels)[0])


METRICS = {"accuracy": accuracy, "f1": f1, "mcc": mcc, "r3": r3, "pearson": pearson, "spearman": spearman}

# Short names used in table headers.
METRIC_LABELS = {"accuracy": "acc", "f1": "F1", "mcc": "MCC", "r3": "R3", "pearson": "Pearson", "spearman": "Spearman"}


def compute(metric_names, preds, labels, suffix: str = "") -> dict[str, float]:
    """The named metrics of one split, keyed ``name`` or ``name_suffix``."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions for {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("no examples to score")
    key = (lambda m: f"{m}_{suffix}") if suffix else (lambda m: m)
    return {key(m): METRICS[m](preds, labels) for m in metric_names}


def headline(metrics: dict[str, float]) -> float:
    """A task's headline score: the mean of its metrics (MNLI: of matched and mismatched),
    the rule GLUE uses for a task inside its Score."""
    if not metrics:
        raise ValueError("no metrics")
    return float(sum(metrics.values()) / len(metrics))
