"""Argument types and argument groups shared by the ``glue-sweep`` commands (``main``,
``train``, ``submit``), and the flags made from a dataclass's fields (:func:`config_arguments`,
as ``transformers.HfArgumentParser`` makes them). Pure: argparse only."""

from __future__ import annotations

import argparse
import dataclasses

from ..errors import UserError


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
    p.add_argument("--hub", default=None, help="hub dataset id or a local directory in its parquet layout, read when no GLUE "
                                                    "directory is given (default: $GLUE_HUB, else nyu-mll/glue)")


def device_arguments(p, trust_remote_code: bool = True) -> None:
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when there is one)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: torch's, one per core)")
    if trust_remote_code:
        p.add_argument("--trust-remote-code", action="store_true", help="allow a checkpoint's own code to run")


_TYPES = {("whole", True): positive_int, ("whole", False): int,
          ("number", True): positive_float, ("number", False): non_negative_float}


def _bounded(base, rule):
    """``base`` (a flag's type) that also keeps the rule's bounds (at most, between, below), so a
    value out of range is argparse's one line naming the flag, before anything runs."""
    if rule.low is None and rule.high is None and rule.below is None:
        return base

    def check(s: str):
        v = base(s)
        try:
            rule(v)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return v

    check.__name__ = base.__name__   # what argparse names in "invalid ... value"
    return check


def config_arguments(p, cls, groups: dict | None = None, helps: dict | None = None) -> list[str]:
    """A flag for each field of the dataclass ``cls`` made with ``config.setting`` (unless its
    ``cli`` is false): ``--kebab-case`` of its name (or its ``flag``), its rule's type or choices,
    ``--x/--no-x`` for a true-or-false one, required when it has no default, its help (``helps``
    overrides one; ``groups`` names the argument group of a field's ``group``). A flag left out is
    None in the namespace, so ``cls`` applies its own default (said in the help). Returns the
    fields' names, for :func:`config_values`."""
    names = []
    for f in dataclasses.fields(cls):
        m = f.metadata
        if not m.get("cli"):
            continue
        rule = m["rule"]
        kw = {"dest": f.name, "help": (helps or {}).get(f.name, m["help"])}
        if f.default is dataclasses.MISSING:
            kw["required"] = True
        else:
            kw["default"] = None
            if f.default is not None:
                shown = f"{f.default:g}" if isinstance(f.default, float) else str(f.default).lower()
                kw["help"] = f"{kw['help'] or ''} (default: {shown})".lstrip()
        if rule.kind == "flag":
            kw["action"] = argparse.BooleanOptionalAction
        elif rule.kind == "choice":
            kw["choices"] = rule.choices
        elif rule.kind in ("whole", "number"):
            kw["type"] = _bounded(_TYPES[rule.kind, rule.positive], rule)
        flag = m.get("flag") or "--" + f.name.replace("_", "-")
        if rule.kind != "flag":
            kw["metavar"] = flag[2:].replace("-", "_").upper()
        (groups or {}).get(m.get("group"), p).add_argument(flag, **kw)
        names.append(f.name)
    return names


def config_values(a: argparse.Namespace, names: list[str]) -> dict:
    """The fields given on the command line (those left out take the dataclass's defaults)."""
    return {n: getattr(a, n) for n in names if getattr(a, n) is not None}
