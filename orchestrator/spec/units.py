"""Which trials of a grid train together as one fused unit (``fused.run_unit``). Pure: no
torch, no Ray.

Trials that differ only in their learning rate and seed (same model, task, batch size, epochs,
...) train as one stacked model: each member from its own seed's initial weights, on its own
seed's batch order and dropout masks, as its solo trial would (``fused.seeds``); so a sweep with
``seeds: 3`` costs about one unit per (model, task, batch size), not three. A compiled trial's
unit spans one seed (its step is compiled per batch shape, and several seeds' widths would make
a shape per combination). Grouped ASHA still decides per member: a stopped member leaves its
unit's stack (``sweep.asha``). A cell with more than ``MAX_MEMBERS`` trials is cut into units
of near-equal size, its members in seed order (fewer seeds a unit: fewer calls a step, shared
dropout draws). What ``fuse`` groups:

* ``on``: every BERT-architecture registry model;
* ``auto`` (a grid sweep's default): where stacking pays. On GPU workers that is every
  BERT-architecture registry model (a small model's step is bound by its host time, which a
  unit shares); on CPU-only workers only the models whose layers x hidden size is at most
  ``CPU_FUSE_MAX_SIZE``. What a unit saves on CPU is mostly per step and per hidden unit (the
  word-embedding matrix's gradient and AdamW pass, which a unit does only for the rows a batch
  uses; fewer, larger operators), while its matrix multiplications cost what the members' would:
  the larger layers x hidden, the less it gains, and solo trials spread over the cores at a
  finer grain (measured, one thread, two learning rates: ``bench/results/fused-1thread-cpu.md``);
* ``off``: one trial per process, as an optuna sweep always does.
"""

from __future__ import annotations

import json

from ..config import Trial, TrialConfig
from ..errors import UserError
from ..registry.models import entry_of, resolve, shape_of

FUSE = ("auto", "on", "off")
MAX_MEMBERS = 8   # members of one unit at most (more learning rates: several units)
CPU_FUSE_MAX_SIZE = 2048   # fuse: auto on CPU workers stacks models of at most this layers x hidden
# (measured fused / one after another: BERT-Tiny 2x128 1.67x, BERT-Mini 4x256 1.31x, BERT-Small
# 4x512 1.23x, all-MiniLM-L6-v2 6x384 1.05x)


def unit_key(cfg: TrialConfig) -> str:
    """What the members of one unit share: everything but the learning rate and (unless the trial
    compiles its step) the seed, as one string (some settings are lists)."""
    free = ("learning_rate",) if cfg.compile else ("learning_rate", "seed")
    return json.dumps({k: v for k, v in cfg.to_dict().items() if k not in free}, sort_keys=True, default=str)


def _cut(group: list[Trial], max_members: int) -> list[list[Trial]]:
    """A cell's trials as units of at most ``max_members``, of near-equal size, in seed order
    (stable: the grid's order within a seed)."""
    group = sorted(group, key=lambda t: t.config.seed)
    n = -(-len(group) // max_members)
    size, extra = divmod(len(group), n)
    out, at = [], 0
    for i in range(n):
        out.append(group[at:at + size + (i < extra)])
        at += size + (i < extra)
    return out


def stackable_model(ref: str) -> bool:
    """Whether the registry knows ``ref`` as a BERT-architecture model (``stacked`` can stack it)."""
    try:
        entry = entry_of(resolve(ref))
    except UserError:
        return False
    return entry is not None and entry.arch.model_type == "bert"


def pays_on_cpu(ref: str) -> bool:
    """Whether a unit of ``ref`` trains clearly faster than its members alone on CPU workers: a
    model whose layers x hidden size is at most ``CPU_FUSE_MAX_SIZE``."""
    try:
        shape = shape_of(resolve(ref))
    except UserError:
        return False
    return shape is not None and shape[0] * shape[1] <= CPU_FUSE_MAX_SIZE


def fuses(cfg: TrialConfig, fuse: str, gpu: bool = True) -> bool:
    """Whether the trial ``cfg`` joins a unit under ``fuse`` on GPU (``gpu``) or CPU-only workers."""
    if fuse == "off" or getattr(cfg, "distilled", False) or not stackable_model(cfg.model):
        return False
    return fuse == "on" or gpu or pays_on_cpu(cfg.model)


def plan_units(trials: list[Trial], fuse: str, max_members: int = MAX_MEMBERS, gpu: bool = True) -> list[list[Trial]]:
    """The trials as units, in the order of their first member; a unit of one is a solo trial.
    ``gpu``: whether the workers have GPUs (``fuse: auto`` stacks less on CPU-only workers)."""
    if fuse not in FUSE:
        raise UserError(f"fuse must be auto, on or off, not {fuse!r}")
    if fuse == "off":
        return [[t] for t in trials]
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        key = unit_key(t.config) if fuses(t.config, fuse, gpu) else f"solo {t.id}"
        groups.setdefault(key, []).append(t)
    return [unit for g in groups.values() for unit in _cut(g, max_members)]
