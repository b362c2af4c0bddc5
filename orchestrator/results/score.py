"""The GLUE Score, by GLUE's rule.

A task's headline score is the mean of its metrics (a pair such as F1/accuracy or
Pearson/Spearman averaged; a task with several dev splits, the mean over them). The Score is
the macro average of the headline scores of the benchmark's scored tasks (``tasks/*.yaml``:
``benchmark: glue``, not ``diagnostic``). A model missing tasks gets its Score over the tasks
it has, flagged partial, never silently. A task marked ``also_scored_without`` gets a second
Score without it beside the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from ..registry.tasks import Task, score_tasks
from .columns import BENCHMARK, as_task, metric_columns, slug, table_tasks
from .values import MISSING, PARTIAL_MARK, finite


@dataclass(frozen=True)
class GlueScore:
    value: float | None          # the mean over the tasks present (None: none present)
    n_tasks: int                 # how many tasks it is over
    missing: tuple[str, ...]     # tasks of the rule that had no score

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    def fmt(self, digits: int = 1) -> str:
        if self.value is None:
            return MISSING
        return f"{self.value:.{digits}f}" + (PARTIAL_MARK if self.partial else "")


def scored_names() -> list[str]:
    """The tasks the Score averages over, in table order."""
    return [t.name for t in score_tasks(BENCHMARK)]


def left_out_of_second_score() -> list[Task]:
    """The tasks the second Score leaves out (``also_scored_without``)."""
    return [t for t in score_tasks(BENCHMARK) if t.also_scored_without]


def second_score_column() -> str:
    """The wide column of the second Score: ``score_no_<task slug>``."""
    return "score_no_" + "_".join(slug(t) for t in left_out_of_second_score())


def second_score_header() -> str:
    return "Score w/o " + "/".join(t.name for t in left_out_of_second_score())


def task_score(task: Task | str, values: Mapping[str, float]) -> float | None:
    """A task's headline score from its wide metric columns (the mean of its metrics); None
    when any is missing."""
    cols = [c for c, _ in metric_columns(as_task(task))]
    vals = [values.get(c) for c in cols]
    if not cols or not all(finite(v) for v in vals):
        return None
    return float(sum(float(v) for v in vals) / len(vals))


def glue_score(task_scores: Mapping[str, float | None], exclude: Iterable[str] = ()) -> GlueScore:
    """The macro average of the scored tasks' headline scores (``exclude`` leaves tasks out).
    Tasks without a score are listed in ``missing`` and the value is over the others."""
    rule = [t for t in scored_names() if t not in set(exclude)]
    have = {t: float(task_scores[t]) for t in rule if finite(task_scores.get(t))}
    missing = tuple(t for t in rule if t not in have)
    value = float(sum(have.values()) / len(have)) if have else None
    return GlueScore(value, len(have), missing)


def task_scores_from_wide(row: Mapping[str, float]) -> dict[str, float | None]:
    """Every table task's headline score from one row of wide columns."""
    return {t.name: task_score(t, row) for t in table_tasks()}


def glue_score_from_wide(row: Mapping[str, float], exclude: Iterable[str] = ()) -> GlueScore:
    """The Score of one row of per-metric figures named like the published CSVs (``cola_mcc``,
    ``mrpc_f1``, ``mrpc_acc``, ``mnli_m_acc``, ...)."""
    return glue_score(task_scores_from_wide(row), exclude)


def second_score_from_wide(row: Mapping[str, float]) -> GlueScore:
    """The Score without the ``also_scored_without`` tasks."""
    return glue_score_from_wide(row, exclude=[t.name for t in left_out_of_second_score()])


def score_note() -> str:
    """The Score's rule in words, from the task definitions (the note under the GLUE table)."""
    scored = score_tasks(BENCHMARK)
    parts = [f"Score: GLUE's macro average over the {len(scored)} tasks", "pairs averaged"]
    parts += [f"{t.name} as the mean of " + " and ".join(f"-{s.tag or s.name}" for s in t.eval_splits)
              for t in scored if len(t.eval_splits) > 1]
    diagnostic = [t.name for t in table_tasks() if t.diagnostic]
    if diagnostic:
        parts.append(f"{' and '.join(diagnostic)} excluded")
    note = ", ".join(parts) + "."
    test_only = [t.name for t in table_tasks() if not t.eval_splits]
    if test_only:
        note += f" {' and '.join(test_only)} {'is' if len(test_only) == 1 else 'are'} scored on the test server only."
    return note
