"""GLUE metrics as GLUE computes them, scaled x100 like the paper tables.

Pure functions over numpy arrays: predictions are class ids (or floats for STS-B),
labels likewise. No `evaluate` (it fetches metric scripts from the hub at run time), and no
scipy or scikit-learn: the formulas are theirs (``tests/registry/test_metrics.py`` checks them
against both), written in numpy so that a sweep worker does not import either.
"""

from __future__ import annotations

import math

import numpy as np


def _nan_safe(x: float) -> float:
    # A constant prediction makes correlations undefined; GLUE reports those as 0.
    return 0.0 if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def accuracy(preds, labels) -> float:
    return 100.0 * float(np.mean(np.asarray(preds) == np.asarray(labels)))


def f1(preds, labels) -> float:
    """F1 of the positive class (label 1), as GLUE reports it for MRPC and QQP (0 when there
    is no positive prediction nor label)."""
    preds, labels = np.asarray(preds) == 1, np.asarray(labels) == 1
    tp, wrong = int(np.sum(preds & labels)), int(np.sum(preds != labels))
    return 100.0 * (2 * tp / (2 * tp + wrong) if tp + wrong else 0.0)


def _matthews(preds, labels) -> float:
    """Matthews correlation over any number of classes (Gorodkin's R_K, scikit-learn's formula)."""
    classes, both = np.unique(np.concatenate([labels, preds]), return_inverse=True)
    t, p = both[:len(labels)], both[len(labels):]
    k, n = len(classes), len(labels)
    t_sum, p_sum = np.bincount(t, minlength=k).astype(np.float64), np.bincount(p, minlength=k).astype(np.float64)
    correct = float(np.sum(t == p))
    cov_tp = correct * n - t_sum @ p_sum
    cov_pp, cov_tt = n * n - p_sum @ p_sum, n * n - t_sum @ t_sum
    return 0.0 if cov_pp * cov_tt == 0 else float(cov_tp / math.sqrt(cov_tt * cov_pp))


def mcc(preds, labels) -> float:
    """Matthews correlation (CoLA)."""
    return 100.0 * _nan_safe(_matthews(np.asarray(preds), np.asarray(labels)))


def r3(preds, labels) -> float:
    """R3: Matthews correlation generalised to three classes (the AX diagnostic)."""
    return 100.0 * _nan_safe(_matthews(np.asarray(preds), np.asarray(labels)))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    sx = x[order]
    starts = np.flatnonzero(np.r_[True, sx[1:] != sx[:-1]])
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0                     # mean of the 1-based ranks starts+1 .. ends
    out = np.empty(len(x), dtype=np.float64)
    out[order] = np.repeat(avg, ends - starts)
    return out


def _constant(x: np.ndarray) -> bool:
    """Every value equal (a correlation with it is undefined: GLUE reports 0). Not ``std() == 0``:
    the standard deviation of equal floats can come out a rounding error above 0."""
    return len(x) == 0 or bool(np.all(x == x[0]))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float(np.clip((a @ b) / math.sqrt((a @ a) * (b @ b)), -1.0, 1.0))


def pearson(preds, labels) -> float:
    preds, labels = np.asarray(preds, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if _constant(preds) or _constant(labels):
        return 0.0
    return 100.0 * _nan_safe(_correlation(preds, labels))


def spearman(preds, labels) -> float:
    preds, labels = np.asarray(preds, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if _constant(preds) or _constant(labels):
        return 0.0
    return 100.0 * _nan_safe(_correlation(_ranks(preds), _ranks(labels)))


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


def task_metrics(task, preds: dict, labels: dict) -> dict[str, float]:
    """A task's metrics (x100) over its dev splits, by split name: keyed by metric, or by
    ``metric_<split tag>`` when the task has several dev splits (MNLI's matched, mismatched)."""
    result: dict[str, float] = {}
    multi = len(task.eval_splits) > 1
    for split in task.eval_splits:
        result.update(compute(task.metrics, preds[split.name], labels[split.name],
                              suffix=(split.tag or split.name) if multi else ""))
    return result


def headline(metrics: dict[str, float]) -> float:
    """A task's headline score: the mean of its metrics (MNLI: of matched and mismatched),
    the rule GLUE uses for a task inside its Score."""
    if not metrics:
        raise ValueError("no metrics")
    return float(sum(metrics.values()) / len(metrics))
