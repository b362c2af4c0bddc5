"""The teacher's side of Pre-trained Distillation, run by the sweep driver before any trial.

For every task of a sweep with a ``distill`` block: find the teacher (a fine-tuned model
directory, or a finished run's best configuration of a model, re-trained once as ``submit``
re-trains it and saved under ``$GLUE_SWEEP_CACHE/teachers/``), and make sure its soft labels on
the task's transfer set are in the soft-label cache: the key is the teacher's content (its
files' digests; for ``{run, model}`` the configuration re-trained, its stop epoch and the
content of its data, never the run's path), the task, the transfer data's content (the training
rows a capped trial uses, extra files) and the max length, so the teacher predicts once for every
student and configuration, and again only when one of those changes. The same key is part of a
distilled trial's identity (``identity``), so finished students are reused only for the same
teacher. The teacher's own dev scores are kept with its soft labels (the leaderboard's
reference row).

A teacher is checked before any student trains, and nothing of a bad one is kept: its label
space must fit the task (as many outputs, classification or regression as the task is, its own
label names, when it has any, the task's in the task's order), and its outputs on the transfer
set and the dev split must be finite and depend on the input (``transfer.outputs_problem``).
A refused teacher is one line (``UserError``) and leaves no soft labels, no ``teachers.json``
row and no re-trained model in the cache; a cached entry that fails the same check is
recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ..config import Runtime
from ..data import features as feats
from ..data.digest import file_digest
from ..data.sources import source_from
from ..data.transfer import (
    TRAIN,
    Distill,
    SoftLabels,
    TransferFiles,
    from_config,
    load_soft,
    outputs_problem,
    save_soft,
    soft_key,
    soft_path,
    teacher_directory_problem,
)
from ..errors import UserError
from ..registry import metrics as task_metrics
from ..registry.loading import quiet
from ..registry.tasks import Task, get_task
from ..results.best import Best, best_configs
from ..store.identity import RECIPE_VERSION, data_fingerprint
from .distill import concat
from .batches import padded_batches
from .runner import run_trial, save, train_subset
from .step import model_inputs

log = logging.getLogger(__name__)


def fingerprint(directory: str | Path) -> str:
    """The teacher's content: every file of its directory, by name and bytes (each file's digest
    read once per version of the file, ``digest``), so a directory replaced in place is a new
    teacher and the same files at another path are the same one."""
    h = hashlib.sha256()
    for p in sorted(Path(directory).rglob("*")):
        if p.is_file() and not p.name.startswith(".tmp-"):
            h.update(str(p.relative_to(directory)).encode() + b"\0" + file_digest(p).encode() + b"\n")
    return h.hexdigest()


@dataclass
class TeacherRef:
    """Where a task's teacher comes from, and what it is: ``key`` is its content (its files'
    digest; for ``{run, model}`` its re-training: the chosen configuration, the epoch it stops
    at, the content of the data it trains on and the recipe), never a path."""
    key: str
    directory: Path               # the model (for ``{run, model}``: where the re-trained model is kept)
    choice: Best | None = None    # ``{run, model}``: the configuration to re-train


def resolve(d: Distill, task: Task, source) -> TeacherRef:
    """The teacher of ``task``, identified by content; trains nothing."""
    if d.teacher.directory:
        why = teacher_directory_problem(d.teacher.directory)
        if why:
            raise UserError(why)
        return TeacherRef("files:" + fingerprint(d.teacher.directory), Path(d.teacher.directory))
    if not (Path(d.teacher.run) / "trials").is_dir():
        raise UserError(f"teacher run {d.teacher.run} has no trials/: run the teacher's sweep first")
    rb = best_configs(d.teacher.run, d.teacher.model, [task.name])
    choice = rb.best.get(task.name)
    if choice is None:
        why = rb.missing.get(task.name, "no usable result")
        raise UserError(f"teacher {d.teacher.identity}: no {task.name} configuration to re-train ({why})")
    cfg = choice.config()
    if cfg.distilled:
        raise UserError(f"teacher {d.teacher.identity}: its {task.name} configuration is a distilled student; "
                        f"name a model of the run that was fine-tuned")
    src = json.dumps(["retrain", RECIPE_VERSION, cfg.to_dict(), float(choice.stop_epoch),
                      data_fingerprint(source, task)], sort_keys=True)
    key = "retrain:" + hashlib.sha256(src.encode()).hexdigest()
    return TeacherRef(key, feats.cache_dir() / "teachers" / f"{task.name}-{key[len('retrain:'):][:16]}", choice)


def load(directory: str, task: Task, device) -> tuple[object, object]:
    """The teacher's model and tokenizer; UserError (one line) when it cannot be loaded or does not fit the task."""
    quiet()
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForSequenceClassification.from_pretrained(directory, trust_remote_code=False)
    except Exception as e:   # a broken or foreign directory: one line, not a traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"teacher {directory} cannot be loaded: {first[:300]}") from None
    why = label_space_problem(model.config, task)
    if why:
        raise UserError(f"teacher {directory} does not fit {task.name}: {why}")
    return model.to(device).eval(), tokenizer


_GENERIC_LABEL = re.compile(r"(label_)?\d+")   # transformers' default names (LABEL_0, ...) say nothing


def label_space_problem(config, task: Task) -> str | None:
    """Why a teacher's label space (a model's config) does not fit ``task``, or None: another
    number of outputs, a classifier for a regression task or the other way round, label names
    that are not the task's, or the task's in another order (its soft labels would teach the
    wrong classes)."""
    if config.num_labels != task.num_labels:
        return f"it has {config.num_labels} outputs; {task.name} needs {task.num_labels}"
    kind = getattr(config, "problem_type", None)
    if task.is_regression and kind in ("single_label_classification", "multi_label_classification"):
        return f"it is a classifier ({kind}); {task.name} is a regression task"
    if not task.is_regression and kind == "regression":
        return f"it is a regression model; {task.name} is a classification task"
    if not task.is_regression and kind == "multi_label_classification":
        return f"it is a multi-label classifier (independent sigmoids); {task.name} needs one class per row"
    if task.is_regression:
        return None
    id2label = getattr(config, "id2label", None) or {}
    names = [str(id2label.get(i, id2label.get(str(i), i))).strip().lower() for i in range(task.num_labels)]
    if all(_GENERIC_LABEL.fullmatch(n) for n in names):
        return None
    known = [[str(x).strip().lower() for x in v] for v in (task.labels, task.label_names) if v]
    if names in known:
        return None
    if any(sorted(names) == sorted(k) for k in known):
        return f"its labels {names} are {task.name}'s in another order ({task.name}: {known[-1]})"
    return f"its labels {names} are not {task.name}'s ({' or '.join(map(str, known))})"


def predict_logits(model, enc: feats.Encoded, device, batch_size: int = 256) -> np.ndarray:
    """The model's outputs [rows, labels] for every row of ``enc``, in its order."""
    use_types = "token_type_ids" in inspect.signature(model.forward).parameters
    out = np.zeros((len(enc), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for rows, batch in padded_batches(enc, use_types, device, batch_size):
            out[rows] = model(**model_inputs(batch, model)).logits.float().cpu().numpy()
    return out


class CannotTeach(UserError):
    """The teacher's outputs are NaN, infinite or the same for every row (``outputs_problem``)."""


def dev_scores(model, task: Task, source, tokenizer, max_length: int, device) -> tuple[dict, float]:
    """The teacher's own dev metrics (x100) and headline score, as a trial's evaluation computes
    them; :class:`CannotTeach` when its outputs there are not a score (never argmax of NaN)."""
    result: dict = {}
    multi = len(task.eval_splits) > 1
    for split in task.eval_splits:
        enc = feats.features(task, split.name, source, tokenizer, max_length)
        logits = predict_logits(model, enc, device)
        why = outputs_problem(logits)
        if why:
            raise CannotTeach(f"on {task.name}'s {split.name} split {why}")
        preds = logits[:, 0] if task.is_regression else logits.argmax(-1)
        result.update(task_metrics.compute(task.metrics, preds, enc.labels,
                                           suffix=(split.tag or split.name) if multi else ""))
    return result, task_metrics.headline(result)


def transfer_fingerprints(d: Distill, task: Task, source, cap: int | None) -> list[str]:
    files = TransferFiles(d.files.get(task.name, ()))
    own = [f"{source.fingerprint(task, 'train')}|cap={cap}"] if d.train else []
    return own + [files.fingerprint(task, files.split(i)) for i in range(len(files.files))]


def transfer_set(d: Distill, task: Task, source, tokenizer, max_length: int, cap: int | None) -> feats.Encoded:
    """The transfer rows in the order every student reads them: the capped training rows, then the files."""
    parts = []
    if d.train:
        train = feats.features(task, TRAIN, source, tokenizer, max_length)
        rows = train_subset(len(train), cap)
        parts.append(train if len(rows) == len(train) else train.subset(rows))
    files = TransferFiles(d.files.get(task.name, ()))
    parts += [feats.features(task, files.split(i), files, tokenizer, max_length) for i in range(len(files.files))]
    return concat(parts)


def soft_key_of(d: Distill, task: Task, source, max_length: int, cap: int | None) -> str:
    """The soft labels' cache key: the teacher's content, the task, the transfer data's content, the max length."""
    return soft_key(resolve(d, task, source).key, task.name, transfer_fingerprints(d, task, source, cap), max_length)


def soft_labels(d: Distill, task: Task, source, max_length: int, cap: int | None,
                stats: dict | None = None, after_prepare=None) -> tuple[Path, dict]:
    """(the cache file of the teacher's soft labels for ``task``, their metadata), re-training a
    ``{run, model}`` teacher (once) and predicting them on a miss. ``after_prepare(prepared)``:
    called once a re-trained teacher's model is built (the sweep's hooks)."""
    stats = stats if stats is not None else {}
    teacher = resolve(d, task, source)
    key = soft_key(teacher.key, task.name, transfer_fingerprints(d, task, source, cap), max_length)
    path = soft_path(task.name, key)
    if path.is_file():
        try:
            soft = load_soft(path)
            if outputs_problem(soft.logits) is None:
                stats["hits"] = stats.get("hits", 0) + 1
                return path, soft.meta
        except UserError:
            pass
        path.unlink(missing_ok=True)   # a damaged or unusable entry is recomputed, never trusted
    directory = str(teacher_directory(d, task, teacher, source, after_prepare))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer = load(directory, task, device)
    enc = transfer_set(d, task, source, tokenizer, max_length, cap)
    log.info(f"teacher {d.teacher.identity}: predicting {len(enc)} {task.name} transfer rows")
    logits = predict_logits(model, enc, device)
    stats["teacher_runs"] = stats.get("teacher_runs", 0) + 1
    try:
        why = outputs_problem(logits)
        if why:
            raise CannotTeach(f"on {task.name}'s transfer set {why}")
        metrics, score = dev_scores(model, task, source, tokenizer, max_length, device)
    except CannotTeach as e:
        if teacher.choice is not None:   # a re-trained teacher that cannot teach is not kept either
            shutil.rmtree(teacher.directory, ignore_errors=True)
        raise UserError(f"teacher {d.teacher.identity} cannot teach: {e}; nothing was cached") from None
    meta = {"teacher": d.teacher.identity, "directory": directory, "fingerprint": teacher.key, "task": task.name,
            "transfer": list(d.transfer(task.name)), "rows": len(enc), "max_length": max_length, "metrics": metrics,
            "score": score}
    save_soft(path, SoftLabels(logits, meta))
    return path, meta


def teacher_directory(d: Distill, task: Task, teacher: TeacherRef, source, after_prepare=None) -> Path:
    """The teacher's model directory for ``task``: as given, or the run's configuration re-trained once
    (kept under the cache by its re-training's key)."""
    if teacher.choice is None or (teacher.directory / "config.json").is_file():
        return teacher.directory
    log.info(f"teacher {d.teacher.identity}: re-training {task.name} with {teacher.choice.describe()}")
    _retrain(teacher.choice.config(), teacher.choice.stop_epoch, source, teacher.directory, after_prepare)
    return teacher.directory


def _retrain(cfg, stop_epoch: float, source, out: Path, after_prepare=None) -> None:
    """Train ``cfg`` up to ``stop_epoch`` (its own schedule) and save the model in ``out``, atomically
    (interrupted, nothing is left at ``out``)."""
    seen: dict = {}
    on_eval = lambda ev: ev.epoch < stop_epoch - 1e-6   # noqa: E731 (stop at the chosen epoch)

    def prepared(p) -> None:
        seen.update(p=p)
        if after_prepare is not None:
            after_prepare(p)
    res = run_trial(cfg, source, on_eval=on_eval, after_prepare=prepared, runtime=Runtime())
    if res.status == "diverged":
        raise UserError(f"re-training the teacher diverged ({res.note})")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".tmp-"))
    try:
        save(seen["p"], str(tmp))
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def prepare(sweep, stats: dict | None = None, source=None, after_prepare=None) -> dict[str, tuple[Path, dict]]:
    """Every task's soft labels for a sweep with a ``distill`` block: task -> (cache file, metadata).
    ``source``: the data source the driver already opened (else the sweep's own); ``after_prepare``:
    as ``soft_labels``'."""
    source = source if source is not None else source_from(sweep.glue_dir, sweep.hub)
    return {task.name: soft_labels(sweep.distill, task, source, sweep.max_length, sweep.max_train_examples, stats,
                                   after_prepare)
            for task in sweep.tasks}


def soft_keys(sweep, source) -> dict[str, str]:
    """Every task's soft-label key (part of a distilled trial's identity); computes nothing but digests."""
    return {task.name: soft_key_of(sweep.distill, task, source, sweep.max_length, sweep.max_train_examples)
            for task in sweep.tasks}


def for_config(config, source, stats: dict | None = None) -> tuple[Path, dict]:
    """The soft labels one distilled trial configuration reads (``train --teacher``, ``submit``):
    from the cache, or computed now as a sweep would."""
    return soft_labels(from_config(config), get_task(config.task), source, config.max_length,
                       config.max_train_examples, stats)
