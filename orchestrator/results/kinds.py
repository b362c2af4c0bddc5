"""The kinds of training side by side: per student, the paper's comparison of basic training,
pre-training + fine-tuning and (Pre-trained) Distillation, with the teacher's own dev scores as
a reference row (``<run>/teachers.json``, written by the sweep when it prepares the teacher).

A cell is the task's headline dev score of the best configuration (mean over seeds), ``± std``
over seeds, and in brackets the difference to the same student's fine-tuning on gold labels
(same initialisation, same grid and budget).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import KIND_MARKS
from ..fileio import read_json
from ..store import location as storage
from .board import Leaderboard
from .values import MISSING, PARTIAL_MARK, finite, fmt

# (init, training) -> the paper's name, in the paper's order
KINDS = {("random", "fine-tune"): "basic training",
         ("random", "distill"): "distillation",
         ("random", "distill+fine-tune"): "distillation + fine-tuning",
         ("pretrained", "fine-tune"): "pre-training + fine-tuning",
         ("pretrained", "distill"): "Pre-trained Distillation",
         ("pretrained", "distill+fine-tune"): "Pre-trained Distillation + fine-tuning"}
TEACHER_KIND = "teacher (fine-tuned, reference)"
TEACHERS_FILE = "teachers.json"


def read_teachers(run_dir: str | Path) -> list[dict]:
    """The teacher rows a sweep wrote (task, teacher, score, metrics); [] when none or unreadable."""
    p = storage.at(run_dir).join(TEACHERS_FILE)   # a local run or one on a storage URI
    try:
        rows = read_json(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    return [r for r in rows if isinstance(r, dict) and {"task", "teacher", "score"} <= set(r)] \
        if isinstance(rows, list) else []


def has_kinds(lb: Leaderboard) -> bool:
    """Whether the run has distilled students or a teacher (else the table is left out)."""
    return bool(lb.teachers) or bool(len(lb.models)) and bool((lb.models["training"] != "fine-tune").any())


def student_of(label: str, training: str) -> str:
    """A row label without its kind-of-training mark: ``BERT-Mini (random init) [distilled]`` -> ``BERT-Mini (random init)``."""
    mark = KIND_MARKS.get(training, "")
    return label[:-len(mark)] if mark and label.endswith(mark) else label


def teacher_name(identity: str) -> str:
    """``run:<dir>:<model>`` -> the model; a directory -> its name (``model`` dirs: their parent's)."""
    if identity.startswith("run:"):
        return identity.rsplit(":", 1)[-1]
    p = Path(identity)
    return p.parent.name if p.name == "model" else p.name


def kinds_values(lb: Leaderboard) -> pd.DataFrame:
    """One row per (student, kind) and per teacher: ``student, kind, model`` (the leaderboard's
    label), then per task ``<task>`` (mean), ``<task>_std`` and ``<task>_delta`` (to fine-tuning)."""
    tasks = [t for t in dict.fromkeys(lb.results["task"])] if len(lb.results) else []
    tasks += [r["task"] for r in lb.teachers if r["task"] not in tasks]
    m = lb.models.assign(kind=[KINDS.get((i, k), k) for i, k in zip(lb.models["init"], lb.models["training"])],
                         student=[student_of(l, k) for l, k in zip(lb.models["model"], lb.models["training"])])
    res = lb.results.set_index(["model", "task"]) if len(lb.results) else None
    rows = []
    for r in m.itertuples():
        row = {"student": r.student, "kind": r.kind, "model": r.model}
        base = m[(m["student"] == r.student) & (m["training"] == "fine-tune")]
        for t in tasks:
            own = _cell(res, r.model, t)
            ref = _cell(res, base["model"].iloc[0], t) if len(base) else (np.nan, np.nan)
            row.update({t: own[0], f"{t}_std": own[1], f"{t}_delta": own[0] - ref[0]})
        rows.append(row)
    order = {k: i for i, k in enumerate(KINDS.values())}
    out = pd.DataFrame(rows, columns=["student", "kind", "model"] + [c for t in tasks for c in (t, f"{t}_std", f"{t}_delta")])
    out = out.sort_values(["student", "kind"], key=lambda s: s.map(order) if s.name == "kind" else s, kind="stable")
    teachers = pd.DataFrame([{"student": teacher_name(r["teacher"]), "kind": TEACHER_KIND, "model": r["teacher"],
                              r["task"]: float(r["score"])} for r in lb.teachers])
    teachers = teachers.groupby(["student", "kind", "model"], as_index=False, sort=False).first() if len(teachers) else teachers
    return pd.concat([out, teachers], ignore_index=True).reindex(columns=out.columns).reset_index(drop=True)


def _cell(res: pd.DataFrame | None, model: str, task: str) -> tuple[float, float]:
    if res is None or (model, task) not in res.index:
        return np.nan, np.nan
    r = res.loc[(model, task)]
    return float(r["score"]) if finite(r["score"]) else np.nan, float(r["score_std"]) if finite(r["score_std"]) else np.nan


def kinds_table(lb: Leaderboard, digits: int = 1) -> pd.DataFrame:
    """:func:`kinds_values` as printed: ``mean ± std (+delta)``; ``-`` where there is none."""
    v = kinds_values(lb)
    tasks = [c for c in v.columns[3:] if not c.endswith(("_std", "_delta"))]
    partial = set(lb.results.loc[lb.results["partial"].astype(bool), "model"]) if len(lb.results) else set()
    rows = []
    for r in v.to_dict("records"):
        row = {"Student": r["student"], "Training": r["kind"]}
        for t in tasks:
            cell = fmt(r[t], digits) if finite(r[t]) else MISSING
            if finite(r[t]) and finite(r[f"{t}_std"]):
                cell += f" ± {r[f'{t}_std']:.{digits}f}"
            if finite(r[t]) and finite(r[f"{t}_delta"]) and r["kind"] not in ("basic training", "pre-training + fine-tuning"):
                cell += f" ({r[f'{t}_delta']:+.{digits}f})"
            row[t] = cell + (PARTIAL_MARK if r["model"] in partial and cell != MISSING else "")
        rows.append(row)
    return pd.DataFrame(rows, columns=["Student", "Training"] + tasks)


KINDS_NOTE = ("Dev scores of the best configuration per (student, kind of training): mean ± std over seeds; in "
              "brackets the difference to the same student fine-tuned on gold labels with the same grid and budget. "
              "Distillation trains on the teacher's soft labels of the transfer set; the teacher row is the teacher's "
              "own dev score (a reference, not a student).")
