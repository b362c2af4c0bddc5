"""Which configuration ``submit`` re-trains for each task: the run's best configuration
(``results.best``), and which files will be missing and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..registry.tasks import get_task
from ..results.best import Best, best_configs, slug
from .files import SubmissionFile, submission_files, unavailable

__all__ = ["Choice", "Plan", "plan", "slug"]


@dataclass
class Choice(Best):
    """A task's best configuration and the submission files its model predicts."""
    files: list[SubmissionFile] = field(default_factory=list)


@dataclass
class Plan:
    run: Path
    model: str                                            # the leaderboard's model label
    choices: list[Choice] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)   # file name -> why it is missing
    notes: list[str] = field(default_factory=list)
    dev_scores: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # task -> (recorded, re-trained)


def plan(run_dir: str | Path, model: str, source, final_epoch: bool = False) -> Plan:
    """What ``submit`` will train and write for ``model``, and which files will be missing
    and why. Reads the run and checks data files; trains nothing."""
    by_model_task: dict[str, list[SubmissionFile]] = {}
    for f in submission_files():
        by_model_task.setdefault(f.model_task.name, []).append(f)
    rb = best_configs(run_dir, model, by_model_task, final_epoch=final_epoch)
    out = Plan(rb.run, rb.model, notes=list(rb.notes))

    for task_name, files in by_model_task.items():
        task = get_task(task_name)
        via = {f.name: (f" ({f.task.name} is predicted with the {task.name} model)" if f.task is not task else "")
               for f in files}
        best = rb.best.get(task.name)
        if best is None:
            for f in files:
                out.missing[f.name] = rb.missing[task.name] + via[f.name]
            continue
        # Data: every test file, and what re-training reads (train and dev splits).
        todo = []
        for f in files:
            why = unavailable(source, f.task, f.split)
            if why:
                out.missing[f.name] = f"no test data: {why}"
            else:
                todo.append(f)
        if not todo:
            continue
        need = ["train"] + [s.name for s in task.eval_splits] if task.trainable else []
        why = next((w for w in (unavailable(source, task, s) for s in need) if w), None)
        if not task.trainable:
            why = f"task {task.name} has no training split"
        if why:
            for f in todo:
                out.missing[f.name] = f"cannot re-train {task.name}: {why}" + via[f.name]
            continue
        out.choices.append(Choice(**vars(best), files=todo))
    return out
