"""GLUE data from two sources behind one interface.

* ``GlueDir``: a local directory in the standard GLUE layout (``GLUE_DIR``). Files are read
  with quoting off, a BOM on the header is dropped, headerless files get the column names
  their task definition gives, and a malformed row is an error naming ``file:line``.
* ``Hub``: the hub dataset (``nyu-mll/glue``) through ``datasets``, or a local directory
  in the hub's parquet layout (``<dir>/<config>/<split>-00000-of-00001.parquet``).

Both return a ``SplitData``: the texts, the labels as class ids (floats for regression),
and each example's index as the source gives it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..registry.tasks import Split, Task
from .digest import file_digest

PARSER_VERSION = "1"


@dataclass
class SplitData:
    task: str
    split: str
    text_a: list[str]
    text_b: list[str] | None
    labels: np.ndarray | None      # int64 class ids, float32 scores, or None (unlabelled)
    index: list[str]
    origin: str

    def __len__(self) -> int:
        return len(self.text_a)


def _files_fingerprint(paths) -> str:
    """Identifies the files by their contents (``digest.file_digest``: the bytes are hashed
    once per file version, so checking at every trial start costs a ``stat``)."""
    h = hashlib.sha256(PARSER_VERSION.encode())
    for p in paths:
        h.update(f"{file_digest(p)}\n".encode())
    return h.hexdigest()


def _label_value(task: Task, raw: str, where: str):
    if task.is_regression:
        try:
            v = float(raw)
        except ValueError:
            raise UserError(f"{where}: label {raw!r} is not a number ({task.name} is a regression task)") from None
        lo, hi = task.label_range
        if not (lo <= v <= hi) or v != v:
            raise UserError(f"{where}: label {v} is outside {task.name}'s range [{lo}, {hi}]")
        return v
    try:
        return task.labels.index(raw)
    except ValueError:
        raise UserError(f"{where}: label {raw!r} is not one of {task.name}'s labels {list(task.labels)}") from None


def _build(task: Task, split: Split, texts: list[list[str]], labels: list | None, index: list[str], origin: str) -> SplitData:
    arr = None
    if labels is not None:
        arr = np.asarray(labels, dtype=np.float32 if task.is_regression else np.int64)
    return SplitData(task=task.name, split=split.name, text_a=texts[0],
                     text_b=texts[1] if len(texts) > 1 else None, labels=arr, index=index, origin=origin)


class GlueDir:
    """A directory in the standard GLUE layout."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise UserError(f"GLUE data directory {self.root} does not exist (set GLUE_DIR or --glue-dir)")

    def describe(self) -> str:
        return f"GLUE directory {self.root}"

    def path(self, task: Task, split: str) -> Path:
        if split not in task.splits:
            raise UserError(f"task {task.name} has no split {split!r} (it has {', '.join(task.splits)})")
        p = self.root / task.splits[split].file
        if not p.is_file():
            raise UserError(f"missing data file {p} ({task.name} {split})")
        return p

    def fingerprint(self, task: Task, split: str) -> str:
        return "tsv:" + _files_fingerprint([self.path(task, split)])

    def load(self, task: Task, split: str) -> SplitData:
        p = self.path(task, split)
        s = task.splits[split]
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise UserError(f"{p}: cannot read ({e.strerror})") from None
        lines = raw.split(b"\n")
        if lines and lines[-1] in (b"", b"\r"):
            lines.pop()
        first_data = 0
        if s.columns is not None:
            header = list(s.columns)
        else:
            if not lines:
                raise UserError(f"{p}: the file is empty (expected a header row)")
            header = self._decode(lines[0], p, 1).lstrip("\ufeff").rstrip("\r").split("\t")
            first_data = 1
        ncol = len(header)
        want = list(task.text_columns) + ([task.label_column] if s.labelled else [])
        missing = [c for c in want if c not in header]
        if missing:
            raise UserError(f"{p}:1: header lacks column(s) {missing} (found {header})")
        text_idx = [header.index(c) for c in task.text_columns]
        label_idx = header.index(task.label_column) if s.labelled else None
        index_idx = header.index(task.index_column) if task.index_column in header else None
        texts: list[list[str]] = [[] for _ in text_idx]
        labels = [] if s.labelled else None
        index = []
        for i in range(first_data, len(lines)):
            lineno = i + 1
            fields = self._decode(lines[i], p, lineno).rstrip("\r").split("\t")
            if len(fields) != ncol:
                raise UserError(f"{p}:{lineno}: expected {ncol} tab-separated columns, found {len(fields)}")
            for t, j in zip(texts, text_idx):
                t.append(fields[j])
            if labels is not None:
                labels.append(_label_value(task, fields[label_idx].strip(), f"{p}:{lineno}"))
            index.append(fields[index_idx] if index_idx is not None else str(i - first_data))
        if not index:
            raise UserError(f"{p}: no data rows")
        return _build(task, s, texts, labels, index, origin=str(p))

    @staticmethod
    def _decode(line: bytes, p: Path, lineno: int) -> str:
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{p}:{lineno}: not valid UTF-8 (byte {e.start})") from None


class Hub:
    """The hub's GLUE (``nyu-mll/glue``) through ``datasets``, or a local copy of its
    parquet layout when ``location`` is a directory."""

    def __init__(self, location: str = "nyu-mll/glue"):
        self.location = location
        self.local = Path(location).expanduser() if Path(location).expanduser().is_dir() else None

    def describe(self) -> str:
        return f"hub dataset {self.location}" if self.local is None else f"hub-layout parquet directory {self.local}"

    def _files(self, task: Task, split: str) -> list[Path]:
        hub_split = task.hub_splits[split]
        files = sorted((self.local / task.hub_config).glob(f"{hub_split}-*.parquet"))
        if not files:
            raise UserError(f"missing data file {self.local / task.hub_config / (hub_split + '-*.parquet')} ({task.name} {split})")
        return files

    def _dataset(self, task: Task, split: str):
        import datasets  # heavy, and only the hub source needs it (the runner imports without it)

        if split not in task.hub_splits:
            raise UserError(f"task {task.name} has no split {split!r} (it has {', '.join(task.hub_splits)})")
        datasets.disable_progress_bars()
        hub_split = task.hub_splits[split]
        try:
            if self.local is not None:
                files = [str(f) for f in self._files(task, split)]
                return datasets.load_dataset("parquet", data_files={hub_split: files}, split=hub_split)
            return datasets.load_dataset(self.location, task.hub_config, split=hub_split)
        except UserError:
            raise
        except Exception as e:  # offline, unknown repo, ...: one line, not a traceback
            raise UserError(f"cannot load {task.name} {split} from {self.describe()}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None

    def fingerprint(self, task: Task, split: str) -> str:
        if self.local is not None:
            return "parquet:" + _files_fingerprint(self._files(task, split))
        return "hub:" + self._dataset(task, split)._fingerprint

    def load(self, task: Task, split: str) -> SplitData:
        ds = self._dataset(task, split)
        s = task.splits[split]
        where = f"{self.describe()} {task.hub_config}/{task.hub_splits[split]}"
        missing = [c for c in task.hub_text_columns if c not in ds.column_names]
        if missing:
            raise UserError(f"{where}: lacks column(s) {missing} (found {ds.column_names})")
        texts = [list(ds[c]) for c in task.hub_text_columns]
        labels = None
        if s.labelled:
            raw = np.asarray(ds["label"])
            labels = []
            for row, v in enumerate(raw):
                if task.is_regression:
                    labels.append(_label_value(task, repr(float(v)), f"{where} row {row}"))
                elif not (0 <= int(v) < task.num_labels):
                    raise UserError(f"{where} row {row}: label id {int(v)} is outside 0..{task.num_labels - 1}")
                else:
                    labels.append(int(v))
        index = [str(i) for i in ds["idx"]] if "idx" in ds.column_names else [str(i) for i in range(len(ds))]
        return _build(task, s, texts, labels, index, origin=where)


def source_from(glue_dir: str | None = None, hub: str | None = None):
    """The data source a command uses: an explicit GLUE directory, else ``GLUE_DIR``, else
    the hub (``hub`` may name a local parquet mirror)."""
    if glue_dir:
        return GlueDir(glue_dir)
    if hub:
        return Hub(hub)
    if os.environ.get("GLUE_DIR"):
        return GlueDir(os.environ["GLUE_DIR"])
    return Hub(os.environ.get("GLUE_HUB", "nyu-mll/glue"))
