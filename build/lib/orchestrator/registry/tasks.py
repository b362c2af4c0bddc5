"""GLUE tasks as data: each file in ``tasks/*.yaml`` defines one task.

A definition names the task's text columns, its label set (or a regression range), its
splits and their files in the standard GLUE layout, the hub dataset's names for the same
things, and its metrics. Adding a task is adding a file; nothing here names a task.

A task may belong to a benchmark (``benchmark: glue``): it is then a column of that benchmark's
table, at ``order``, and counts in the benchmark's Score unless it is ``diagnostic``; a task
marked ``also_scored_without`` gets a second Score without it beside the first.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import shipped
from ..errors import UserError
from .metrics import METRICS

TASKS_DIR = Path(os.environ.get("GLUE_SWEEP_TASKS_DIR") or shipped("tasks"))

_TASK_KEYS = {"name", "aliases", "kind", "labels", "label_names", "label_range", "metrics",
              "predict_with", "avg_tokens", "text_columns", "label_column", "index_column", "splits", "hub",
              "benchmark", "order", "diagnostic", "also_scored_without"}
_SPLIT_KEYS = {"file", "columns", "eval", "labelled", "tag", "rows"}
_HUB_KEYS = {"config", "text_columns", "splits", "repo"}


@dataclass(frozen=True)
class Split:
    name: str                      # train, dev, dev_matched, test, ...
    file: str                      # path relative to GLUE_DIR
    columns: tuple[str, ...] | None = None   # set when the file has no header row
    eval: bool = False             # scored after every epoch
    labelled: bool = True
    tag: str | None = None         # short name in metric keys (MNLI: m, mm)
    rows: int | None = None        # the official GLUE row count (for estimates without the data)


@dataclass(frozen=True)
class Task:
    name: str
    kind: str                      # classification | regression
    metrics: tuple[str, ...]
    text_columns: tuple[str, ...]
    label_column: str
    index_column: str
    splits: dict[str, Split]
    hub_config: str
    hub_text_columns: tuple[str, ...]
    hub_splits: dict[str, str]
    hub_repo: str = "nyu-mll/glue"
    labels: tuple[str, ...] = ()   # file values in class-id order
    label_names: tuple[str, ...] = ()
    label_range: tuple[float, float] | None = None
    predict_with: str | None = None  # test-only tasks predicted by another task's model
    aliases: tuple[str, ...] = field(default=())
    avg_tokens: int = 40           # mean tokens per example, for compute estimates
    benchmark: str | None = None   # the benchmark whose table has the task as a column (glue)
    order: int | None = None       # its column in that table (and its place in all_tasks())
    diagnostic: bool = False       # a column of the table, never part of the benchmark's Score
    also_scored_without: bool = False   # the table also gives the Score without this task

    @property
    def is_regression(self) -> bool:
        return self.kind == "regression"

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.labels)

    @property
    def trainable(self) -> bool:
        return "train" in self.splits

    @property
    def eval_splits(self) -> list[Split]:
        return [s for s in self.splits.values() if s.eval]

    @property
    def test_splits(self) -> list[Split]:
        return [s for s in self.splits.values() if not s.labelled]

    def metric_keys(self) -> list[str]:
        """Keys of the dev metrics one evaluation produces, e.g. ``f1``, ``accuracy`` or
        ``accuracy_m``, ``accuracy_mm`` when there are several dev splits."""
        splits = self.eval_splits
        if len(splits) <= 1:
            return list(self.metrics)
        return [f"{m}_{s.tag or s.name}" for s in splits for m in self.metrics]


def _parse(path: Path) -> Task:
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"{where}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a task definition must be a mapping")
    unknown = set(raw) - _TASK_KEYS
    if unknown:
        raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TASK_KEYS)}")
    for key in ("name", "kind", "metrics", "text_columns", "splits", "hub"):
        if key not in raw:
            raise UserError(f"{where}: missing key '{key}'")
    kind = raw["kind"]
    if kind not in ("classification", "regression"):
        raise UserError(f"{where}: kind must be classification or regression, not {kind!r}")
    if kind == "classification" and not raw.get("labels"):
        raise UserError(f"{where}: a classification task needs 'labels'")
    if kind == "regression" and not raw.get("label_range"):
        raise UserError(f"{where}: a regression task needs 'label_range'")
    for m in raw["metrics"]:
        if m not in METRICS:
            raise UserError(f"{where}: unknown metric {m!r}; known: {sorted(METRICS)}")
    splits = {}
    for name, s in raw["splits"].items():
        unknown = set(s) - _SPLIT_KEYS
        if unknown:
            raise UserError(f"{where}: split {name}: unknown key(s) {sorted(unknown)}")
        if "file" not in s:
            raise UserError(f"{where}: split {name}: missing 'file'")
        splits[name] = Split(name=name, file=s["file"],
                             columns=tuple(s["columns"]) if s.get("columns") else None,
                             eval=bool(s.get("eval", False)), labelled=bool(s.get("labelled", True)),
                             tag=s.get("tag"), rows=s.get("rows"))
    hub = raw["hub"]
    unknown = set(hub) - _HUB_KEYS
    if unknown:
        raise UserError(f"{where}: hub: unknown key(s) {sorted(unknown)}")
    missing = set(hub.get("splits", {})) ^ set(splits)
    if missing:
        raise UserError(f"{where}: hub.splits and splits must name the same splits (differ in {sorted(missing)})")
    return Task(
        name=raw["name"], kind=kind, metrics=tuple(raw["metrics"]),
        text_columns=tuple(raw["text_columns"]), label_column=raw.get("label_column", "label"),
        index_column=raw.get("index_column", "index"), splits=splits,
        hub_config=hub["config"], hub_text_columns=tuple(hub.get("text_columns", raw["text_columns"])),
        hub_splits=dict(hub["splits"]), hub_repo=hub.get("repo", "nyu-mll/glue"),
        labels=tuple(str(x) for x in raw.get("labels", ())),
        label_names=tuple(raw.get("label_names", ())),
        label_range=tuple(raw["label_range"]) if raw.get("label_range") else None,
        predict_with=raw.get("predict_with"), aliases=tuple(raw.get("aliases", ())),
        avg_tokens=int(raw.get("avg_tokens", 40)), **_benchmark(raw, where),
    )


def _benchmark(raw: dict, where: str) -> dict:
    """The benchmark keys of a definition, checked."""
    out = {}
    if raw.get("benchmark") is not None:
        if not isinstance(raw["benchmark"], str) or not raw["benchmark"].strip():
            raise UserError(f"{where}: benchmark must be a name, not {raw['benchmark']!r}")
        out["benchmark"] = raw["benchmark"].strip().lower()
    if raw.get("order") is not None:
        if isinstance(raw["order"], bool) or not isinstance(raw["order"], int):
            raise UserError(f"{where}: order must be a whole number, not {raw['order']!r}")
        out["order"] = raw["order"]
    for key in ("diagnostic", "also_scored_without"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise UserError(f"{where}: {key} must be true or false, not {raw[key]!r}")
            if "benchmark" not in out:
                raise UserError(f"{where}: {key} needs a benchmark")
            out[key] = raw[key]
    return out


@functools.lru_cache(maxsize=None)
def _registry(tasks_dir: str) -> dict[str, Task]:
    d = Path(tasks_dir)
    if not d.is_dir():
        raise UserError(f"task definitions not found: {d} is not a directory")
    tasks = {}
    for path in sorted(d.glob("*.yaml")):
        t = _parse(path)
        if t.name in tasks:
            raise UserError(f"{path}: task {t.name} is defined twice")
        tasks[t.name] = t
    return tasks


def all_tasks() -> dict[str, Task]:
    """Every defined task by its canonical name, by ``order`` (the benchmark table's column
    order), then those without one by name."""
    reg = _registry(str(TASKS_DIR))
    return dict(sorted(reg.items(), key=lambda kv: (kv[1].order is None, kv[1].order or 0, kv[0])))


def benchmark_tasks(benchmark: str = "glue") -> list[Task]:
    """The columns of a benchmark's table, in order: its scored tasks and its diagnostic ones."""
    key = benchmark.strip().lower()
    return [t for t in all_tasks().values() if t.benchmark == key]


def score_tasks(benchmark: str = "glue") -> list[Task]:
    """The tasks a benchmark's Score averages over (its diagnostic tasks left out)."""
    return [t for t in benchmark_tasks(benchmark) if not t.diagnostic]


def get_task(name: str) -> Task:
    """Look a task up by name or alias, case-insensitively."""
    key = name.strip().lower()
    for t in all_tasks().values():
        if key == t.name.lower() or key in (a.lower() for a in t.aliases):
            return t
    raise UserError(f"unknown task {name!r}; known tasks: {', '.join(all_tasks())}")
