"""GLUE tasks as data: each file in ``tasks/*.yaml`` defines one task.

A definition names the task's text columns, its label set (or a regression range), its
splits and their files in the standard GLUE layout, the hub dataset's names for the same
things, and its metrics. Adding a task is adding a file; nothing here names a task.

A task may belong to a benchmark (``benchmark: glue``): it is then a column of that benchmark's
table, at ``order``, and counts in the benchmark's Score unless it is ``diagnostic``; a task
marked ``also_scored_without`` gets a second Score without it beside the first.

A file is read as sweep files are: by ``yamlstrict`` (YAML 1.2, a repeated key is an error with
its line) into pydantic models (:class:`TaskFile`, an unknown key is ``file:line`` with a
did-you-mean), every error one line naming ``file:line``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StrictInt, StrictStr, ValidationError

from .. import shipped, yamlstrict
from ..errors import UserError
from ..yamlstrict import Where, explain
from .metrics import METRICS

TASKS_DIR = Path(os.environ.get("GLUE_SWEEP_TASKS_DIR") or shipped("tasks"))

KINDS = ("classification", "regression")


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


# ----------------------------------------------------------------------------- the file's schema

def _check(test, message: str):
    """A before-validator: ``message`` (with the value) unless ``test(value)``."""
    def check(v):
        if not test(v):
            raise ValueError(f"{message}, not {v!r}")
        return v
    return BeforeValidator(check)


def _known_metrics(names: list[str]) -> list[str]:
    for m in names:
        if m not in METRICS:
            raise ValueError(f"unknown metric {m!r}; known: {sorted(METRICS)}")
    return names


def _flag(what: str):
    return _check(lambda v: isinstance(v, bool), f"{what} must be true or false")


Names = list[StrictStr]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitFile(_Strict):
    file: StrictStr
    columns: Names | None = None
    eval: Annotated[bool, _flag("eval")] = False
    labelled: Annotated[bool, _flag("labelled")] = True
    tag: StrictStr | None = None
    rows: StrictInt | None = None


class HubFile(_Strict):
    config: StrictStr
    text_columns: Names | None = None
    splits: dict[str, StrictStr] = {}
    repo: StrictStr = "nyu-mll/glue"


class TaskFile(_Strict):
    """A file of ``tasks/`` as written (read by ``yamlstrict``; rules between keys in :func:`_parse`)."""
    name: StrictStr
    aliases: Names = []
    kind: Annotated[str, _check(lambda v: v in KINDS, "kind must be classification or regression")]
    labels: list[Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, (str, int, float)) else v)]] = []
    label_names: Names = []
    label_range: tuple[float, float] | None = None
    metrics: Annotated[Names, AfterValidator(_known_metrics)]
    predict_with: StrictStr | None = None
    avg_tokens: StrictInt = 40
    text_columns: Names
    label_column: StrictStr = "label"
    index_column: StrictStr = "index"
    splits: dict[str, SplitFile]
    hub: HubFile
    benchmark: Annotated[str, _check(lambda v: isinstance(v, str) and v.strip(),
                                     "benchmark must be a name")] | None = None
    order: Annotated[int, _check(lambda v: isinstance(v, int) and not isinstance(v, bool),
                                 "order must be a whole number")] | None = None
    diagnostic: Annotated[bool, _flag("diagnostic")] | None = None
    also_scored_without: Annotated[bool, _flag("also_scored_without")] | None = None


def _parse(path: Path) -> Task:
    text = path.read_text(encoding="utf-8")
    raw, node = yamlstrict.read(text, str(path), "a task definition")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a task definition must be a mapping")
    where = Where(str(path), text, node)
    try:
        f = TaskFile.model_validate(raw)
    except ValidationError as e:
        raise explain(e, where, TaskFile, "the task definition") from None
    if f.kind == "classification" and not f.labels:
        where.fail(("kind",), "a classification task needs 'labels'")
    if f.kind == "regression" and not f.label_range:
        where.fail(("kind",), "a regression task needs 'label_range'")
    differ = set(f.hub.splits) ^ set(f.splits)
    if differ:
        where.fail(("hub", "splits"), f"hub.splits and splits must name the same splits (differ in {sorted(differ)})")
    for key in ("diagnostic", "also_scored_without"):
        if getattr(f, key) is not None and f.benchmark is None:
            where.fail((key,), f"{key} needs a benchmark")
    splits = {name: Split(name=name, file=s.file, columns=tuple(s.columns) if s.columns else None, eval=s.eval,
                          labelled=s.labelled, tag=s.tag, rows=s.rows) for name, s in f.splits.items()}
    return Task(
        name=f.name, kind=f.kind, metrics=tuple(f.metrics), text_columns=tuple(f.text_columns),
        label_column=f.label_column, index_column=f.index_column, splits=splits,
        hub_config=f.hub.config, hub_text_columns=tuple(f.hub.text_columns or f.text_columns),
        hub_splits=dict(f.hub.splits), hub_repo=f.hub.repo, labels=tuple(f.labels),
        label_names=tuple(f.label_names), label_range=f.label_range, predict_with=f.predict_with,
        aliases=tuple(f.aliases), avg_tokens=f.avg_tokens,
        benchmark=f.benchmark.strip().lower() if f.benchmark is not None else None, order=f.order,
        diagnostic=bool(f.diagnostic), also_scored_without=bool(f.also_scored_without))


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


def test_targets(task: Task) -> list[tuple[Task, Split]]:
    """(task, test split) pairs a model trained on ``task`` predicts: its own test splits, and
    those of the tasks predicted with it (AX with MNLI)."""
    return [(t, s) for t in all_tasks().values() if t is task or t.predict_with == task.name for s in t.test_splits]


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
