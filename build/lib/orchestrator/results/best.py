"""A run's best configuration of one model for a task: the leaderboard's choice (``select``),
and of its seeds the one that scored best at the chosen epoch, with that trial's record.

``submit`` (re-train, then predict the test files) and a distillation teacher named as
``{run, model}`` (re-train, then predict the transfer set) both start from here. Reads the run;
pure of torch and ray."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..config import TrialConfig
from ..errors import UserError
from ..registry.tasks import Task, get_task
from ..store import location as storage, records as store
from .load import load_run
from .select import epoch_key, usable_evals
from .values import finite


def slug(s: str) -> str:
    """A model label as a file-name part (``BERT-Tiny (random init)`` -> ``BERT-Tiny-random-init``)."""
    return re.sub(r"[^A-Za-z0-9.\-]+", "-", s).strip("-")


@dataclass
class Best:
    """How one task's model is obtained again: the leaderboard's configuration, one seed."""
    task: Task
    record: dict                 # the chosen seed's trial record
    stop_epoch: float            # train (on the trial's schedule) up to this epoch
    dev_score: float             # what the record says the dev score was there
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
class RunBest:
    run: Path
    model: str                    # the leaderboard's model label
    best: dict[str, Best]         # task name -> its best configuration
    missing: dict[str, str]       # task name -> why it has none
    notes: list[str]


def match_model(lb, model: str) -> str:
    """The leaderboard's label of ``model`` (a label, its slug, a base model or a model_ref)."""
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
    """A record's evaluation at ``epoch`` (its last there), or its best when ``epoch`` is None."""
    evs = sorted(usable_evals(rec), key=lambda e: (float(e.get("epoch", 0)), e.get("step", 0)))
    if not evs:
        return None
    if epoch is None:
        return max(evs, key=lambda e: float(e["score"]))
    at = [e for e in evs if epoch_key(e.get("epoch", 0)) == epoch_key(epoch)]
    return at[-1] if at else None


def best_configs(run_dir: str | Path, model: str, tasks: Iterable[str], final_epoch: bool = False) -> RunBest:
    """The best configuration of ``model`` in the run for each of ``tasks``, or why it has none."""
    run = storage.at(run_dir)   # a local directory or a storage URI
    lb = load_run(run, final_epoch=final_epoch)
    label = match_model(lb, model)
    records = {r["trial_id"]: store.flat(r) for r in store.read_records(run)[0]}
    results = {r["task"]: r for r in lb.results.to_dict("records") if r["model"] == label}
    out = RunBest(run, label, {}, {}, [])
    for name in tasks:
        task = get_task(name)
        row = results.get(task.name)
        if row is None or not finite(row.get("score")):
            out.missing[task.name] = (f"no result for {label} on {task.name} in {run}" if row is None else
                                      f"{label} has no usable {task.name} trial in {run} (only diverged or failed ones)")
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
            out.missing[task.name] = f"the trial records of {label}'s best {task.name} configuration are unreadable"
            continue
        score, _, rec, ev = max(cands, key=lambda c: (c[0], c[1]))
        out.best[task.name] = Best(task, rec, float(ev.get("epoch", 0)) or float(rec.get("epochs") or 1), score,
                                   str(row["seeds"]))
    return out
