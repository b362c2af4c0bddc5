"""A trial's identity beyond its id: a content hash of every setting that changes its results.

The hash covers the whole ``TrialConfig`` (model, task, batch size, the exact learning rate,
epochs, seed, init, max length, evaluation schedule, the recipe's warm-up, decay, clipping,
...), the fingerprint of the data it trains and is scored on (the files' contents, see
``digest``) and ``RECIPE_VERSION`` (bumped when the training loop changes what a
configuration computes). A finished record is reused only when its stored hash equals the hash
the spec gives today (``check_reuse``); otherwise the change is named in one line.

Records written before hashes existed have none. They are reused only if their stored
configuration equals today's in every field; their data cannot be verified, which
``check_reuse`` reports in one warning line. Pure: no Ray, no torch.
"""

from __future__ import annotations

import hashlib
import json

from .config import TrialConfig, fmt_lr
from .errors import UserError

RECIPE_VERSION = 1


def data_fingerprint(source, task) -> str:
    """The contents of the splits a trial of ``task`` trains and is scored on."""
    splits = ["train"] + [s.name for s in task.eval_splits]
    return hashlib.sha256("|".join(source.fingerprint(task, s) for s in splits).encode()).hexdigest()[:16]


def settings_hash(config: TrialConfig, data_fp: str) -> str:
    payload = json.dumps({"recipe": RECIPE_VERSION, "trial": config.to_dict(), "data": data_fp}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def identity_fields(config: TrialConfig, data_fp: str) -> dict:
    """What a record stores about its identity (``store`` keeps them as written)."""
    return {"settings_hash": settings_hash(config, data_fp), "data_fingerprint": data_fp}


def _differences(had: dict, now: TrialConfig) -> list[str]:
    out = []
    for key, value in now.to_dict().items():
        old = had.get(key)
        if old != value and not (isinstance(old, (int, float)) and isinstance(value, (int, float))
                                 and not isinstance(old, bool) and float(old) == float(value)):
            show = (lambda v: fmt_lr(v) if isinstance(v, (int, float)) and key == "learning_rate" else repr(v))
            out.append(f"{key}={show(old)} (now {show(value)})")
    return out


def check_reuse(run_dir, records: list[dict], wanted: dict[str, tuple[TrialConfig, str]]) -> list[str]:
    """Raise (one line) if a finished record of a wanted trial was run with other settings;
    ``wanted`` maps a trial id to (configuration, data fingerprint). Returns warning lines."""
    unverified = 0
    for r in records:
        if r["trial_id"] not in wanted:
            continue
        cfg, data_fp = wanted[r["trial_id"]]
        diff = _differences(r["trial"], cfg)
        if r.get("settings_hash") is None:
            unverified += 1
        elif not diff and r.get("data_fingerprint") != data_fp:
            diff = [f"the data of {cfg.task} (its files changed)"]
        elif not diff and r["settings_hash"] != settings_hash(cfg, data_fp):
            diff = ["the training recipe (a newer version)"]
        if diff:
            raise UserError(f"{run_dir}: trial {r['trial_id']} was run with {diff[0]}; its results would be reused "
                            f"for other settings: give the sweep a new name (or move the old results)")
    if unverified:
        return [f"warning: {unverified} finished record(s) in {run_dir} predate settings hashes: reused because "
                f"their configuration equals today's; their data could not be verified"]
    return []
