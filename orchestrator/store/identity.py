"""A trial's identity beyond its id: a content hash of every setting that changes its results.

The hash covers the whole ``TrialConfig`` (model, task, batch size, the exact learning rate,
epochs, seed, init, max length, evaluation schedule, the recipe's warm-up, decay, clipping,
...), the fingerprint of the data it trains and is scored on (the files' contents, see
``digest``) and ``RECIPE_VERSION`` (bumped when the training loop changes what a
configuration computes). A finished record is reused only when its stored hash equals the hash
the spec gives today (``check_reuse``); otherwise the change is named in one line.

A distilled trial's data fingerprint also holds the key of the teacher's soft labels
(``trial_fingerprint``: the teacher's content, the transfer data's content, the max length), and
the paths of its teacher and transfer files are left out of its settings: a teacher replaced in
place is another teacher, the same teacher at another path is the same one.

Records written before hashes existed have none. They are reused only if their stored
configuration equals today's in every field; their data cannot be verified, which
``check_reuse`` reports in one warning line. Pure: no Ray, no torch.
"""

from __future__ import annotations

import hashlib
import json

from ..config import TrialConfig, fmt_lr
from ..errors import UserError

RECIPE_VERSION = 1
# Settings that change how a trial runs, not what it computes (beyond float rounding): left out of
# its identity, so a record is reused whichever way it ran (and records from before they existed match).
EXECUTION_ONLY = ("compile",)


def data_fingerprint(source, task) -> str:
    """The contents of the splits a trial of ``task`` trains and is scored on."""
    splits = ["train"] + [s.name for s in task.eval_splits]
    return hashlib.sha256("|".join(source.fingerprint(task, s) for s in splits).encode()).hexdigest()[:16]


def trial_fingerprint(data_fp: str, soft_key: str | None = None) -> str:
    """What a trial reads: its task's data, and for a distilled trial the teacher's soft labels (their key)."""
    return data_fp if soft_key is None else f"{data_fp}+{soft_key[:16]}"


def _settings(trial: dict) -> dict:
    """A record's (or configuration's) settings as identity compares them: a distilled trial's
    teacher and transfer files by content (in the fingerprint), not by path. Execution-only
    settings (``EXECUTION_ONLY``) are left out."""
    trial = _runs_the_same(trial)
    if trial.get("training", "fine-tune") == "fine-tune":
        return trial
    out = {k: v for k, v in trial.items() if k != "teacher"}
    out["transfer"] = [x if x == "train" else "file" for x in trial.get("transfer") or []]
    return out


def _runs_the_same(trial: dict) -> dict:
    return {k: v for k, v in trial.items() if k not in EXECUTION_ONLY}


def settings_hash(config: TrialConfig, data_fp: str, by_content: bool = True) -> str:
    """``by_content=False``: the hash as written before teacher fingerprints (teacher and transfer paths included)."""
    trial = _settings(config.to_dict()) if by_content else _runs_the_same(config.to_dict())
    payload = json.dumps({"recipe": RECIPE_VERSION, "trial": trial, "data": data_fp}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def identity_fields(config: TrialConfig, data_fp: str) -> dict:
    """What a record stores about its identity (``store`` keeps them as written)."""
    return {"settings_hash": settings_hash(config, data_fp), "data_fingerprint": data_fp}


def _differences(had: dict, now: TrialConfig, by_content: bool = True) -> list[str]:
    out = []
    had, want = ((_settings(had), _settings(now.to_dict())) if by_content
                 else (_runs_the_same(had), _runs_the_same(now.to_dict())))
    for key, value in want.items():
        old = had.get(key)
        if old != value and not (isinstance(old, (int, float)) and isinstance(value, (int, float))
                                 and not isinstance(old, bool) and float(old) == float(value)):
            show = (lambda v: fmt_lr(v) if isinstance(v, (int, float)) and key == "learning_rate" else repr(v))
            out.append(f"{key}={show(old)} (now {show(value)})")
    return out


def check_reuse(run_dir, records: list[dict], wanted: dict[str, tuple[TrialConfig, str]]) -> list[str]:
    """Raise (one line) if a finished record of a wanted trial was run with other settings;
    ``wanted`` maps a trial id to (configuration, data fingerprint). Returns warning lines."""
    unverified, teachers = 0, 0
    for r in records:
        if r["trial_id"] not in wanted:
            continue
        cfg, data_fp = wanted[r["trial_id"]]
        diff = _differences(r["trial"], cfg)
        if r.get("settings_hash") is None:
            unverified += 1
        elif _before_soft_keys(r, cfg, data_fp):
            teachers += 1
        elif not diff and r.get("data_fingerprint") != data_fp:
            diff = [_changed_data(cfg, str(r.get("data_fingerprint")), data_fp)]
        elif not diff and r["settings_hash"] != settings_hash(cfg, data_fp):
            diff = ["the training recipe (a newer version)"]
        if diff:
            raise UserError(f"{run_dir}: trial {r['trial_id']} was run with {diff[0]}; its results would be reused "
                            f"for other settings: give the sweep a new name (or move the old results)")
    out = []
    if unverified:
        out.append(f"warning: {unverified} finished record(s) in {run_dir} predate settings hashes: reused because "
                   f"their configuration equals today's; their data could not be verified")
    if teachers:
        out.append(f"warning: {teachers} distilled record(s) in {run_dir} predate teacher fingerprints: reused because "
                   f"their configuration (teacher path included) equals today's; their teacher's content could not "
                   f"be verified")
    return out


def _changed_data(cfg: TrialConfig, old: str, new: str) -> str:
    if old.partition("+")[0] != new.partition("+")[0]:
        return f"the data of {cfg.task} (its files changed)"
    return f"another teacher or transfer data for {cfg.task} (their content changed)"


def _before_soft_keys(r: dict, cfg: TrialConfig, data_fp: str) -> bool:
    """A distilled record written before its fingerprint held the teacher's: reusable when its
    configuration (paths included) and its data are today's; else it refuses as any other."""
    old = r.get("data_fingerprint")
    return (cfg.distilled and isinstance(old, str) and "+" not in old and "+" in data_fp
            and old == data_fp.partition("+")[0] and not _differences(r["trial"], cfg, by_content=False)
            and r["settings_hash"] == settings_hash(cfg, old, by_content=False))
