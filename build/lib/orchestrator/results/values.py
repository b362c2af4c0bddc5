"""Cell values shared by the results modules: what counts as a number, and how one is printed."""

from __future__ import annotations

import math
from typing import Iterable

import pandas as pd

from .. import config

PARTIAL_MARK = "*"     # a Score over the tasks present, or a figure whose trials are still running
MISSING = "-"          # no result


def finite(x) -> bool:
    """A finite number (or a string that reads as one); False for None, NaN, inf, pd.NA, text."""
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt(v, digits: int = 1) -> str:
    """A score as printed: ``81.1``, ``-`` when there is none."""
    return f"{float(v):.{digits}f}" if finite(v) else MISSING


def fmt_lr(lr) -> str:
    """A learning rate exactly, as the papers write it: ``1e-4``, ``3e-5``, ``2.5e-5``; ``-``
    when there is none."""
    return config.fmt_lr(float(lr)) if finite(lr) else MISSING


def nullable_ints(df: pd.DataFrame, cols: Iterable[str]) -> pd.DataFrame:
    """Integer columns that may hold gaps as pandas' nullable Int64 (CSV writes 4386178, not
    4.38618e+06)."""
    df = df.copy()
    for c in cols:
        if c in df.columns:
            df[c] = pd.array([int(v) if finite(v) else None for v in df[c]], dtype="Int64")
    return df


def names(s) -> set[str]:
    """The names of a comma-separated cell (``running_tasks``, ``missing_tasks``)."""
    return set(filter(None, str(s).split(","))) if isinstance(s, str) else set()
