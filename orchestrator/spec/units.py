"""Which trials of a grid train together as one fused unit (``fused.run_unit``). Pure: no
torch, no Ray.

Trials that differ only in their learning rate (same model, task, batch size, seed, epochs,
...) see the same batches from the same initial weights, so they can train as one stacked
model. ``fuse: auto`` (a grid sweep's default) groups them when the model is a BERT-architecture
registry model (grouped ASHA still decides per member: a stopped member leaves its unit's stack,
``sweep.asha``); ``fuse: off`` keeps one trial per process, as an optuna sweep always does.
"""

from __future__ import annotations

import json

from ..config import Trial, TrialConfig
from ..errors import UserError
from ..registry.models import entry_of, resolve

FUSE = ("auto", "off")
MAX_MEMBERS = 8   # members of one unit at most (more learning rates: several units)


def unit_key(cfg: TrialConfig) -> str:
    """What the members of one unit share: everything but the learning rate (as one string:
    some settings are lists)."""
    return json.dumps({k: v for k, v in cfg.to_dict().items() if k != "learning_rate"}, sort_keys=True, default=str)


def stackable_model(ref: str) -> bool:
    """Whether the registry knows ``ref`` as a BERT-architecture model (``stacked`` can stack it)."""
    try:
        entry = entry_of(resolve(ref))
    except UserError:
        return False
    return entry is not None and entry.arch.model_type == "bert"


def plan_units(trials: list[Trial], fuse: str, max_members: int = MAX_MEMBERS) -> list[list[Trial]]:
    """The trials as units, in the order of their first member; a unit of one is a solo trial."""
    if fuse not in FUSE:
        raise UserError(f"fuse must be auto or off, not {fuse!r}")
    if fuse == "off":
        return [[t] for t in trials]
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        fusable = stackable_model(t.config.model) and not getattr(t.config, "distilled", False)
        key = unit_key(t.config) if fusable else f"solo {t.id}"
        groups.setdefault(key, []).append(t)
    return [g[i:i + max_members] for g in groups.values() for i in range(0, len(g), max_members)]
