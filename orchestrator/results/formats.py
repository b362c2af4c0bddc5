"""The formats ``glue-sweep leaderboard`` writes, and the speed-ups file it reads. Light: the
command line builds its parser from this without loading pandas."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..fileio import JSONTooDeep, read_json

FORMATS = ("csv", "md", "latex", "json", "html", "png", "pdf", "svg")
PICTURES = ("png", "pdf", "svg")   # the figures' formats (the HTML report embeds the PNGs)


def parse_formats(s: str) -> tuple[str, ...]:
    """``csv,md`` -> ("csv", "md"); ``all`` -> every format; UserError for an unknown one."""
    parts = [p.strip().lower() for p in str(s).split(",") if p.strip()]
    if not parts:
        raise UserError("no format given")
    out: list[str] = []
    for p in parts:
        if p == "all":
            out += FORMATS
        elif p in FORMATS:
            out.append(p)
        else:
            raise UserError(f"unknown format {p!r}; choose from {', '.join(FORMATS)} or all (comma-separated)")
    return tuple(dict.fromkeys(out))


def read_speedups(path: str | Path | None) -> dict[str, float]:
    """A JSON object of model -> measured inference speed-up over BERT-Base (``glue-sweep speed --out``)."""
    if not path:
        return {}
    p = Path(path)
    try:
        raw = read_json(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"speed-ups file {p}: unreadable ({e.msg if isinstance(e, JSONTooDeep) else type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise UserError(f"speed-ups file {p}: must be a JSON object of model name -> speed-up")
    out = {}
    for k, v in raw.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise UserError(f"speed-ups file {p}: {k}: {v!r} is not a number") from None
    return out
