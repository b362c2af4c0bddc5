"""Which configuration ``submit`` re-trains for each task: the leaderboard's choice, the best
of its seeds at the chosen epoch, and which files will be missing and why."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import storage, store
from ..config import TrialConfig
from ..errors import UserError
from ..results.load import load_run
from ..results.select import epoch_key, usable_evals
from ..results.values import finite
from ..tasks import Task, get_task
from .files import SubmissionFile, submission_files, unavailable


@dataclass
class Choice:
    """How one task's model is obtained again: the leaderboard's configuration, one seed."""
    task: Task
    record: dict                 # the chosen seed's trial record
    stop_epoch: float            # train (on the trial's schedule) up to this epoch
    dev_score: float             # what the record says the dev score was there
    files: list[SubmissionFile]
    seeds: str                   # the configuration's seeds (comma-separated)

    def config(self) -> TrialConfig:
        return store.config_of(self.record)

    def describe(self) -> str:
        r = self.record
        epochs = float(r.get("epochs") or self.stop_epoch)
        seed_note = f"seed {r['seed']}" + (f" (best at that epoch of seeds {self.seeds})" if "," in self.seeds else "")
        return (f"batch size {r['batch_size']}, learning rate {float(r['learning_rate']):g}, {seed_note}, "
                f"epoch {self.stop_epoch:g} of {epochs:g}, "
                f"{r.get('max_train_examples') or 'all'} training examples, max length {r.get('max_length') or 128}")


@dataclass
class Plan:
    run: Path
    model: str                                            # the leaderboard's model label
    choices: list[Choice] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)   # file name -> why it is missing
    notes: list[str] = field(default_factory=list)
    dev_scores: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # task -> (recorded, re-trained)


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9.\-]+", "-", s).strip("-")


def match_model(lb, model: str) -> str:
    labels = list(lb.models["model"])
    want = model.strip().lower()
    exact = [l for l in labels if l.lower() == want or slug(l).lower() == want]
    if len(exact) == 1:
        return exact[0]
    base = [r["model"] for r in lb.models.to_dict("records") if str(r["base_model"]).lower() == want
            or str(r.get("model_ref") or "").lower() == want]
    if len(base) == 1:
        return base[0]
    if len(base) > 1:
        raise UserError(f"model {model!r} is ambiguous in this run: give one of {', '.join(base)}")
    raise UserError(f"model {model!r} has no results in this run; its models: {', '.join(labels) or 'none'}")


def eval_at(rec: dict, epoch: float | None) -> dict | None:
    evs = sorted(usable_evals(rec), key=lambda e: (float(e.get("epoch", 0)), e.get("step", 0)))
    if not evs:
        return None
    if epoch is None:
        return max(evs, key=lambda e: float(e["score"]))
    at = [e for e in evs if epoch_key(e.get("epoch", 0)) == epoch_key(epoch)]
    return at[-1] if at else None


def plan(run_dir: str | Path, model: str, source, final_epoch: bool = False) -> Plan:
    """What ``submit`` will train and write for ``model``, and which files will be missing
    and why. Reads the run and checks data files; trains nothing."""
    run = storage.at(run_dir)   # a local directory or a storage URI
    lb = load_run(run, final_epoch=final_epoch)
    label = match_model(lb, model)
    records = {r["trial_id"]: store.flat(r) for r in store.read_records(run)[0]}
    results = {r["task"]: r for r in lb.results.to_dict("records") if r["model"] == label}
    out = Plan(run, label)
    by_model_task: dict[str, list[SubmissionFile]] = {}
    for f in submission_files():
        by_model_task.setdefault(f.model_task.name, []).append(f)

    for task_name, files in by_model_task.items():
        task = get_task(task_name)
        via = {f.name: (f" ({f.task.name} is predicted with the {task.name} model)" if f.task is not task else "")
               for f in files}
        row = results.get(task.name)
        if row is None or not finite(row.get("score")):
            why = (f"no result for {label} on {task.name} in {run}" if row is None else
                   f"{label} has no usable {task.name} trial in {run} (only diverged or failed ones)")
            for f in files:
                out.missing[f.name] = why + via[f.name]
            continue
        if row.get("partial"):
            out.notes.append(f"{task.name}: trials are still running; the chosen configuration may still change")
        epoch = float(row["epoch"]) if finite(row.get("epoch")) else None
        cands = []
        for tid in str(row["trial_ids"]).split(";"):
            rec = records.get(tid)
            ev = eval_at(rec, epoch) if rec else None
            if ev is not None:
                cands.append((float(ev["score"]), -int(rec["seed"]), rec, ev))
        if not cands:
            for f in files:
                out.missing[f.name] = f"the trial records of {label}'s best {task.name} configuration are unreadable"
            continue
        score, _, rec, ev = max(cands, key=lambda c: (c[0], c[1]))
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
        out.choices.append(Choice(task, rec, float(ev.get("epoch", 0)) or float(rec.get("epochs") or 1),
                                  score, todo, str(row["seeds"])))
    return out


