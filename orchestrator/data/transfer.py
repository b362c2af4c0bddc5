"""Pre-trained Distillation settings, transfer data and the soft-label cache. Pure: numpy, no torch.

A sweep's ``distill`` block (``schema.Distill``) resolves here into :class:`Distill`: the
teacher (a fine-tuned model directory, or the best configuration of a model per task in a
finished run), the transfer data per task (the task's own training inputs and/or extra
unlabelled TSV files), the temperature, the weight ``alpha`` of the gold-label loss, whether a
fine-tuning stage on gold labels follows, and whether the plain fine-tuning baseline runs too.

The teacher's predictions on a task's transfer set (its soft labels) are computed once per
(teacher, task, transfer data, max length) and cached like the features: content-keyed, written
atomically, shared by every student and configuration. Trials only read them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..yamlstrict import Where
from .digest import file_digest
from .features import cache_dir
from .sources import SplitData

SOFT_VERSION = "2"      # 2: the teacher part of the key is its content or its re-training (never its path)
TRAIN = "train"          # the transfer-set name of the task's own training inputs


@dataclass(frozen=True)
class Teacher:
    """A fine-tuned model directory, or ``{run, model}``: model's best configuration per task in a run."""
    directory: str | None = None
    run: str | None = None
    model: str | None = None

    @property
    def identity(self) -> str:
        """What a trial's ``teacher`` setting says."""
        return self.directory if self.directory else f"run:{self.run}:{self.model}"

    @classmethod
    def from_identity(cls, identity: str) -> "Teacher":
        """Back from a trial's ``teacher`` setting (a directory, or ``run:<dir>:<model>``)."""
        if identity.startswith("run:") and identity.count(":") >= 2:
            run, model = identity[len("run:"):].rsplit(":", 1)
            return cls(run=run, model=model)
        return cls(directory=identity)


@dataclass(frozen=True)
class Distill:
    teacher: Teacher
    train: bool = True                                   # the task's training inputs are transfer data
    files: dict[str, tuple[str, ...]] = field(default_factory=dict)   # task -> extra unlabelled TSVs
    temperature: float = 1.0
    alpha: float = 0.0
    then_finetune: bool = False
    baseline: bool = True                                # also fine-tune every student on gold labels

    def trainings(self) -> list[str]:
        return (["fine-tune"] if self.baseline else []) + ["distill+fine-tune" if self.then_finetune else "distill"]

    def transfer(self, task: str) -> tuple[str, ...]:
        return ((TRAIN,) if self.train else ()) + self.files.get(task, ())


def from_config(config) -> Distill:
    """The distillation settings of one distilled ``TrialConfig`` (its teacher, transfer data,
    temperature, alpha and kind): what ``train --teacher`` and ``submit`` compute soft labels for."""
    files = tuple(x for x in config.transfer if x != TRAIN)
    return Distill(Teacher.from_identity(config.teacher), TRAIN in config.transfer,
                   {config.task: files} if files else {}, config.temperature, config.alpha,
                   config.training == "distill+fine-tune", baseline=False)


def user_path(raw: str) -> Path:
    """A path as a user wrote it in a spec or on the command line (``$VARS`` and ``~`` expanded)."""
    return Path(os.path.expandvars(raw)).expanduser()


def teacher_directory_problem(raw: str) -> str | None:
    """Why ``raw`` is not a fine-tuned model directory (a saved model with its config), or None."""
    d = user_path(raw)
    if not d.is_dir():
        return f"teacher {raw} is not a directory (a fine-tuned model saved with its tokenizer)"
    if not (d / "config.json").is_file():
        return f"teacher {raw} has no config.json: not a saved model"
    return None


# ----------------------------------------------------------------------------- from the sweep file

def resolve(block, where: Where, tasks: list[str]) -> Distill:
    """The validated ``distill`` block (``schema.Distill``) checked against the files and tasks."""
    teacher = _teacher(block.teacher, where)
    train, files = _transfer(block.transfer, where, tasks)
    for t in tasks:
        if not train and not files.get(t):
            where.fail(("distill", "transfer"), f"{t} has no transfer data (train is false and no files are given)")
    return Distill(teacher, train, files, block.temperature, block.alpha, block.then_finetune, block.baseline)


def _teacher(raw, where: Where) -> Teacher:
    keys = ("distill", "teacher")
    if isinstance(raw, str) and raw.strip():
        why = teacher_directory_problem(raw)
        if why:
            where.fail(keys, why)
        return Teacher(directory=str(user_path(raw).resolve()))
    if isinstance(raw, dict) and set(raw) == {"run", "model"} and all(isinstance(v, str) for v in raw.values()):
        run = user_path(raw["run"])   # checked when the sweep runs: it may come first
        return Teacher(run=str(run.resolve()), model=raw["model"])
    where.fail(keys, f"teacher must be a model directory or {{run: RUN, model: M}}, not {raw!r}")


def _transfer(raw, where: Where, tasks: list[str]) -> tuple[bool, dict[str, tuple[str, ...]]]:
    keys = ("distill", "transfer")
    if raw is None or raw == TRAIN:
        return True, {}
    if not isinstance(raw, dict) or not set(raw) <= {"train", "files"}:
        where.fail(keys, f"transfer is 'train' or {{train: true|false, files: {{TASK: [TSV, ...]}}}}, not {raw!r}")
    train = raw.get("train", True)
    if not isinstance(train, bool):
        where.fail(keys + ("train",), f"train must be true or false, not {train!r}")
    files_raw = raw.get("files") or {}
    if not isinstance(files_raw, dict):
        where.fail(keys + ("files",), "files maps a task to its TSV files: {SST-2: [extra.tsv]}")
    files = {}
    for task, paths in files_raw.items():
        if task not in tasks:
            where.fail(keys + ("files", task), f"{task!r} is not a task of this sweep ({', '.join(tasks)})")
        paths = paths if isinstance(paths, list) else [paths]
        out = []
        for p in paths:
            f = user_path(str(p))
            if not f.is_file():
                where.fail(keys + ("files", task), f"transfer file {p} does not exist")
            out.append(str(f.resolve()))
        files[task] = tuple(out)
    return train, files


# ----------------------------------------------------------------------------- extra transfer files

class TransferFiles:
    """Unlabelled TSV files as a data source: split ``transfer<i>`` is the i-th file. A file
    has a header naming the task's text columns (other columns are ignored)."""

    def __init__(self, files: list[str] | tuple[str, ...]):
        self.files = list(files)

    @staticmethod
    def split(i: int) -> str:
        return f"transfer{i}"

    def _path(self, split: str) -> Path:
        return Path(self.files[int(split.removeprefix("transfer"))])

    def fingerprint(self, task, split: str) -> str:
        return "transfer:" + file_digest(self._path(split))

    def load(self, task, split: str) -> SplitData:
        p = self._path(split)
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"transfer file {p}: unreadable ({type(e).__name__})") from None
        header = lines[0].lstrip("\ufeff").split("\t") if lines else []
        missing = [c for c in task.text_columns if c not in header]
        if missing:
            raise UserError(f"{p}:1: header lacks {task.name}'s text column(s) {missing} (found {header})")
        idx = [header.index(c) for c in task.text_columns]
        texts: list[list[str]] = [[] for _ in idx]
        for n, line in enumerate(lines[1:], start=2):
            fields = line.split("\t")
            if len(fields) != len(header):
                raise UserError(f"{p}:{n}: expected {len(header)} tab-separated columns, found {len(fields)}")
            for t, j in zip(texts, idx):
                t.append(fields[j])
        if not texts[0]:
            raise UserError(f"{p}: no data rows")
        return SplitData(task.name, split, texts[0], texts[1] if len(texts) > 1 else None, None,
                         [str(i) for i in range(len(texts[0]))], str(p))


# ----------------------------------------------------------------------------- the soft-label cache

@dataclass
class SoftLabels:
    logits: np.ndarray           # float32 [transfer rows, labels]: the teacher's outputs
    meta: dict                   # teacher, task, transfer, rows, the teacher's dev metrics and score


def soft_key(teacher_fingerprint: str, task: str, transfer_fingerprints: list[str], max_length: int) -> str:
    src = json.dumps([SOFT_VERSION, teacher_fingerprint, task, transfer_fingerprints, int(max_length)])
    return hashlib.sha256(src.encode()).hexdigest()[:20]


def soft_path(task: str, key: str, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "soft_labels" / f"{task}-{key}.npz"


def save_soft(path: Path, soft: SoftLabels) -> None:
    """Atomically: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, logits=soft.logits.astype(np.float32), meta=np.array(json.dumps(soft.meta)))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Outputs closer than this (relative to their size) on every row are one constant output.
CONSTANT_TOLERANCE = 1e-6


def outputs_problem(logits: np.ndarray) -> str | None:
    """Why a teacher's outputs [rows, labels] cannot teach anything, or None: a NaN or an
    infinity (its weights diverged; softmax and argmax of them are noise), or the same output
    for every row (a collapsed or untrained head: its soft labels say nothing about the input)."""
    logits = np.asarray(logits)
    bad = int((~np.isfinite(logits)).any(axis=-1).sum()) if logits.size else 0
    if bad:
        return f"{bad} of its {len(logits)} outputs are NaN or infinite"
    if len(logits) >= 2:
        spread = float(np.ptp(logits, axis=0).max())
        if spread <= CONSTANT_TOLERANCE * max(1.0, float(np.abs(logits).max())):
            shown = ", ".join(f"{x:.4g}" for x in logits[0])
            return f"it gives the same output [{shown}] for all {len(logits)} rows"
    return None


def load_soft(path: str | Path) -> SoftLabels:
    try:
        with np.load(path, allow_pickle=False) as z:
            return SoftLabels(z["logits"], json.loads(str(z["meta"])))
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"soft labels {path}: unreadable ({type(e).__name__}); run the sweep again to recompute "
                        f"them") from None
