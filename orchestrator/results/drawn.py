"""Pictures drawn once: which of a leaderboard's pictures are on disk already (drawn from the
same data by the same code), where to write the others, and how many processes draw them.

Used by :mod:`.figures`; matplotlib is imported only to read its version.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..fileio import atomic_write_json, read_json

# ``.figures.json`` beside the pictures' folder holds, per picture, the digest of what it was drawn
# from (the leaderboard's frames, or for a model's heatmaps its own configurations and the tasks'
# colour scales; the formats; the drawing code, the reference figures and matplotlib's version)
# and its files' sizes. A picture whose digest and files are unchanged is not drawn again; the
# rest are drawn, and the index is rewritten atomically.
_CODE = [Path(__file__).with_name(n) for n in ("figures.py", "drawing.py")]   # the drawing code


def frame_digest(*parts) -> str:
    """A digest of frames (values, columns, dtypes, index) and plain values."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, pd.DataFrame):
            h.update(json.dumps([list(map(str, part.columns)), list(map(str, part.dtypes))]).encode())
            try:
                h.update(pd.util.hash_pandas_object(part, index=True).to_numpy().tobytes())
            except (TypeError, ValueError):   # cells of lists or dicts
                h.update(part.to_json(orient="split", default_handler=str).encode())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


class Saver:
    """``save(fig, name, caption)`` writes a drawn picture in every format; ``drawn(name, *parts)``
    answers whether a picture of that digest is on disk already (then it counts as made)."""

    def __init__(self, plt, fig_dir: Path, formats, base: str):
        self.plt, self.fig_dir, self.formats, self.base = plt, fig_dir, tuple(formats), base
        self.index_path = fig_dir.parent / f".{fig_dir.name}.json"   # beside the folder: only pictures in it
        self.made: list[tuple[str, Path]] = []
        self.index = self._read_index()
        self.keys: dict[str, str] = {}
        self.new: dict[str, dict] = {}

    def _read_index(self) -> dict:
        try:
            d = read_json(self.index_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return {}
        return d if isinstance(d, dict) else {}

    def _paths(self, name: str) -> list[Path]:
        return [self.fig_dir / f"{Path(name).stem}.{ext}" for ext in self.formats]

    def drawn(self, name: str, *parts) -> bool:
        key = frame_digest(self.base, name, self.formats, *parts)
        self.keys[name] = key
        old = self.index.get(name)
        paths = self._paths(name)
        try:
            same = (isinstance(old, dict) and old.get("key") == key and isinstance(old.get("caption"), str)
                    and old.get("sizes") == [p.stat().st_size for p in paths])
        except OSError:
            same = False
        if same:
            self.made.append((old["caption"], paths[0]))
            self.new[name] = old
        return same

    def __call__(self, fig, name: str, caption: str, tight: bool = True, dpi: int | None = None) -> None:
        for p in self._paths(name):
            fig.savefig(p, **save_options(tight, dpi))
        self.plt.close(fig)
        self.record(name, caption)

    def record(self, name: str, caption: str) -> None:
        """A picture written in every format (here or by a worker process)."""
        paths = self._paths(name)
        self.made.append((caption, paths[0]))
        if name in self.keys:
            self.new[name] = {"key": self.keys[name], "caption": caption, "sizes": [p.stat().st_size for p in paths]}

    def write_index(self) -> None:
        try:
            atomic_write_json(self.index_path, self.new)
        except OSError:
            pass   # pictures are drawn again next time


def save_options(tight: bool = True, dpi: int | None = None) -> dict:
    """``savefig``'s options: ``tight`` fits the saved page to what is drawn (titles and labels
    never cut off; a second layout pass), else the figure is saved as laid out; ``dpi`` for PNG
    (default the pictures' own)."""
    return ({"bbox_inches": "tight", "pad_inches": 0.1} if tight else {}) | ({"dpi": dpi} if dpi else {})


def base_digest(dpi: int) -> str:
    """What every picture depends on besides its data: this module's code, the reference figures, matplotlib."""
    import matplotlib  # heavy: only when pictures are drawn

    ref = sorted((_CODE[0].parent.parent / "reference").glob("*.csv"))
    return frame_digest(hashlib.sha256(b"".join(p.read_bytes() for p in _CODE + ref)).hexdigest(),
                        matplotlib.__version__, dpi)


def drawing_workers() -> int:
    """Processes that draw the models' heatmaps: ``GLUE_SWEEP_DRAW_WORKERS``, else the cores this
    process may use, at most 4 (1: drawn here). On a quiet two-core machine two workers drew the
    paper grid's export in 47 s against 88 s in one process; on a loaded one they were slower
    (bench/results/exports-cpu.md): set 1 there."""
    env = os.environ.get("GLUE_SWEEP_DRAW_WORKERS", "").strip()
    if not env:
        return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
    try:
        return max(1, int(env))
    except ValueError:
        raise UserError(f"GLUE_SWEEP_DRAW_WORKERS must be a whole number, not {env!r}") from None