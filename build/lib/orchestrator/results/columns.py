"""Column names of the tables, derived from the task definitions.

A *wide column* is one metric of one task named like the published CSVs: ``cola_mcc``,
``mrpc_f1``, ``mrpc_acc``, ``mnli_m_acc`` (a task with several dev splits gets one per split
tag). The benchmark table's tasks and their order come from ``tasks/*.yaml``.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import UserError
from ..registry.tasks import Task, benchmark_tasks, get_task

BENCHMARK = "glue"     # the benchmark whose table and Score the leaderboards show
SHORT = {"accuracy": "acc"}
LABEL = {"accuracy": "acc", "f1": "F1", "mcc": "MCC", "r3": "R3", "pearson": "Pearson", "spearman": "Spearman"}


def as_task(task: Task | str) -> Task:
    return get_task(task) if isinstance(task, str) else task


def table_tasks() -> list[Task]:
    """The columns of the benchmark table, in order (its diagnostic tasks included)."""
    return benchmark_tasks(BENCHMARK)


def slug(task: Task | str) -> str:
    return as_task(task).name.lower().replace("-", "")


def metric_columns(task: Task | str) -> list[tuple[str, str]]:
    """(wide column, metric key) of a task, e.g. MRPC -> [("mrpc_f1", "f1"), ("mrpc_acc", "accuracy")],
    MNLI -> [("mnli_m_acc", "accuracy_m"), ("mnli_mm_acc", "accuracy_mm")]."""
    t = as_task(task)
    splits = t.eval_splits
    if len(splits) <= 1:
        return [(f"{slug(t)}_{SHORT.get(m, m)}", m) for m in t.metrics]
    return [(f"{slug(t)}_{s.tag or s.name}_{SHORT.get(m, m)}", f"{m}_{s.tag or s.name}")
            for s in splits for m in t.metrics]


def task_of_column(col: str) -> str | None:
    """The table task a wide column belongs to, or None."""
    return next((t.name for t in table_tasks() for c, _ in metric_columns(t) if c == col), None)


def wide_columns(tasks: Iterable[Task | str] | None = None) -> list[str]:
    """The wide columns of ``tasks`` (default: the benchmark table's), in table order."""
    return [c for t in (table_tasks() if tasks is None else tasks) for c, _ in metric_columns(t)]


def display_columns(task: Task | str) -> list[tuple[str, list[str]]]:
    """A task's column(s) in the benchmark table: (header, wide columns shown as ``a/b``). One
    column per dev split (``<task>-<tag>``), its metrics joined by ``/``."""
    t = as_task(task)
    cols = metric_columns(t)
    if len(t.eval_splits) <= 1:
        return [(t.name, [c for c, _ in cols])]
    return [(f"{t.name}-{s.tag or s.name}", [c for c, k in cols if k.endswith(f"_{s.tag or s.name}")])
            for s in t.eval_splits]


def table_headers() -> list[str]:
    return [h for t in table_tasks() for h, _ in display_columns(t)]


def metric_label(col: str) -> str:
    """A wide column as a table header reads: ``mrpc_f1`` -> ``F1``, ``mnli_mm_acc`` -> ``acc (mm)``."""
    if col == "score":
        return "Score"
    for t in table_tasks():
        for c, key in metric_columns(t):
            if c == col:
                if len(t.eval_splits) > 1:
                    base, tag = key.rsplit("_", 1)
                    return f"{LABEL.get(base, base)} ({tag})"
                return LABEL.get(key, key)
    return col


def wide_column_for(task: str, metric: str) -> tuple[str, str] | None:
    """A published (task, metric) pair -> (our task, our wide column): (``<task>-<tag>``,
    ``acc``) -> (``<task>``, ``<slug>_<tag>_acc``); None when it is no figure of ours."""
    metric = SHORT.get(metric.lower(), metric.lower())
    try:
        t, tag = get_task(task), None
    except UserError:
        base, _, tag = task.rpartition("-")
        try:
            t = get_task(base)
        except UserError:
            return None
    multi = len(t.eval_splits) > 1
    for col, key in metric_columns(t):
        base_key, ktag = (key.rsplit("_", 1) if multi else (key, None))
        if SHORT.get(base_key, base_key) == metric and ktag == tag:
            return t.name, col
    return None
