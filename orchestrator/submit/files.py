"""The files the GLUE test server expects, derived from the task definitions, and their
conventions (header, value formats, the ``*_INCOMPLETE.zip`` name)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..registry.tasks import Task, all_tasks, get_task

HEADER = "index\tprediction"
INCOMPLETE_SUFFIX = "_INCOMPLETE"
EXIT_INCOMPLETE = 1


@dataclass(frozen=True)
class SubmissionFile:
    """One file the GLUE server expects, and its conventions."""
    name: str                          # CoLA.tsv, MNLI-m.tsv, AX.tsv, ...
    task: Task                         # whose test split it answers
    split: str                         # that test split
    model_task: Task                   # whose fine-tuned model predicts it (MNLI for AX)
    kind: str                          # integer | label | score
    values: tuple[str, ...] = ()       # allowed predictions (integer, label)
    value_range: tuple[float, float] | None = None   # score

    def format(self, pred) -> str:
        """A model output (class id, or regression value) as the file writes it."""
        if self.kind == "score":
            lo, hi = self.value_range
            return f"{min(max(float(pred), lo), hi):.3f}"
        return self.model_task.labels[int(pred)]

    def problem(self, raw: str) -> str | None:
        """Why ``raw`` is not a valid prediction of this file, or None."""
        if self.kind == "score":
            lo, hi = self.value_range
            try:
                v = float(raw)
            except ValueError:
                return f"prediction {raw!r} is not a number"
            if not math.isfinite(v):
                return f"prediction {raw!r} is not a finite number"
            if not lo <= v <= hi:
                return f"prediction {raw} is outside [{lo:g}, {hi:g}]"
            return None
        if raw not in self.values:
            what = "an integer among" if self.kind == "integer" else "one of"
            return f"prediction {raw!r} is not {what} {', '.join(self.values)}"
        return None


def submission_files() -> list[SubmissionFile]:
    """The server's files, in GLUE table order, from the task definitions: one per test split
    (several test splits are told apart by their tags: MNLI-m, MNLI-mm)."""
    out = []
    for task in all_tasks().values():
        tests = task.test_splits
        if not tests:
            continue
        model_task = get_task(task.predict_with) if task.predict_with else task
        for s in tests:
            suffix = f"-{s.tag or s.name}" if len(tests) > 1 else ""
            if task.is_regression:
                f = SubmissionFile(f"{task.name}{suffix}.tsv", task, s.name, model_task, "score",
                                   value_range=tuple(float(x) for x in task.label_range))
            else:
                if model_task.is_regression or not set(model_task.labels) <= set(task.labels):
                    raise UserError(f"task {task.name}: its labels {list(task.labels)} do not cover those of "
                                    f"{model_task.name}, whose model predicts it")
                kind = "integer" if all(re.fullmatch(r"-?\d+", v) for v in task.labels) else "label"
                f = SubmissionFile(f"{task.name}{suffix}.tsv", task, s.name, model_task, kind, values=task.labels)
            out.append(f)
    return out


def incomplete_name(path: str | Path) -> Path:
    p = Path(path)
    return p if p.stem.endswith(INCOMPLETE_SUFFIX) else p.with_name(p.stem + INCOMPLETE_SUFFIX + p.suffix)


def is_incomplete_name(path: str | Path) -> bool:
    return Path(path).stem.endswith(INCOMPLETE_SUFFIX)


def unavailable(source, task: Task, split: str) -> str | None:
    """Why a split cannot be read from the source (missing file), or None."""
    try:
        source.fingerprint(task, split)
    except UserError as e:
        return str(e)
    return None


