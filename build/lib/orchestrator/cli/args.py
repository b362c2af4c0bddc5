"""Argument types and argument groups shared by the ``glue-sweep`` commands (``cli``,
``cli_train``, ``cli_submit``). Pure: argparse only."""

from __future__ import annotations

import argparse


def positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{s} is not positive")
    return v


def _number(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None


def positive_float(s: str) -> float:
    v = _number(s)
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{s} is not a positive number")
    return v


def non_negative_float(s: str) -> float:
    v = _number(s)
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"{s} is not a finite number of at least 0")
    return v


def data_arguments(p) -> None:
    p.add_argument("--glue-dir", default=None, help="GLUE data directory (default: $GLUE_DIR, else the hub)")
    p.add_argument("--hub", default=None, help="hub dataset id or a local directory in its parquet layout")


def device_arguments(p) -> None:
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when there is one)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a checkpoint's own code to run")
