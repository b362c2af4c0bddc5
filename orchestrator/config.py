"""The one trial type: ``TrialConfig`` (what a trial computes) and ``Runtime`` (where it runs).

A trial is ``Trial(id, group, config)``. ``TrialConfig`` is built and validated here only: the
sweep expansion, ``glue-sweep train``, optuna's samples, the cache warm-up and ``submit`` all
construct it (or read it back with ``TrialConfig.from_dict``), and a result record stores
``config.to_dict()`` under ``"trial"``. Pure: no torch, no Ray.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

from .errors import UserError

INITS = ("pretrained", "random")


@dataclass(frozen=True)
class TrialConfig:
    """One fine-tuning run, fully specified. ``model`` is what the model registry resolves (a
    miniature name, a hub id or a directory; the sweep passes the resolved reference)."""
    model: str
    task: str
    batch_size: int
    learning_rate: float
    epochs: float = 4.0
    seed: int = 0
    init: str = "pretrained"
    max_train_examples: int | None = None
    max_length: int = 128
    eval_every: float | None = None        # epochs between evaluations (e.g. 0.5); None: once an epoch
    eval_every_steps: int | None = None    # or every N optimizer steps
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    eval_batch_size: int = 256
    group_by_length: bool = True
    grad_accum: int = 1                    # > 1 after an out-of-memory restart (same effective batch)
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        _set = lambda k, v: object.__setattr__(self, k, v)   # noqa: E731 (frozen: normalise once)
        for key in ("model", "task"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key).strip():
                raise UserError(f"{key} must be a non-empty name, not {getattr(self, key)!r}")
        _set("batch_size", _whole(self.batch_size, "batch size"))
        _set("learning_rate", _number(self.learning_rate, "learning rate"))
        _set("epochs", _number(self.epochs, "epochs"))
        _set("seed", _whole(self.seed, "seed", positive=False))
        if self.init not in INITS:
            raise UserError(f"init must be pretrained or random, not {self.init!r}")
        if self.max_train_examples is not None:
            _set("max_train_examples", _whole(self.max_train_examples, "max train examples"))
        _set("max_length", _whole(self.max_length, "max length"))
        if not 8 <= self.max_length <= 512:
            raise UserError(f"max length must be between 8 and 512, not {self.max_length!r}")
        if self.eval_every is not None:
            _set("eval_every", _number(self.eval_every, "eval every N epochs"))
        if self.eval_every_steps is not None:
            _set("eval_every_steps", _whole(self.eval_every_steps, "eval every N steps"))
        _set("eval_batch_size", _whole(self.eval_batch_size, "eval batch size"))
        _set("grad_accum", _whole(self.grad_accum, "gradient accumulation"))
        if self.batch_size % self.grad_accum:
            raise UserError(f"gradient accumulation {self.grad_accum} must divide the batch size {self.batch_size}")
        for key in ("warmup_ratio", "weight_decay", "max_grad_norm"):
            _set(key, _number(getattr(self, key), key.replace("_", " "), positive=False))
        for key in ("group_by_length", "trust_remote_code"):
            if not isinstance(getattr(self, key), bool):
                raise UserError(f"{key} must be true or false, not {getattr(self, key)!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrialConfig":
        """The only way back from a record's ``"trial"``; unknown keys are an error."""
        if not isinstance(d, dict):
            raise UserError(f"a trial configuration is a mapping, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise UserError(f"unknown trial setting(s): {', '.join(extra)}")
        try:
            return cls(**d)
        except TypeError as e:   # a required field missing
            raise UserError(f"incomplete trial configuration: {e}") from None

    def replace(self, **changes) -> "TrialConfig":
        return TrialConfig.from_dict({**self.to_dict(), **changes})


@dataclass(frozen=True)
class Runtime:
    """Where and how a trial runs; never part of its identity or its record."""
    device: str | None = None      # None: cuda when there is one, else cpu
    threads: int | None = None     # CPU threads for this trial (None: torch's default)
    save_dir: str | None = None    # also write the fine-tuned model (safetensors) here


class Trial(NamedTuple):
    """One trial of a sweep: its id (the record's file name), its group (trials compete for
    early stopping and ranking only within a group) and its configuration."""
    id: str
    group: str
    config: TrialConfig

    @property
    def label(self) -> str:
        """The model's row label (the group without its task)."""
        return self.group.rsplit("|", 1)[0]


def _whole(v, what: str, positive: bool = True) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v != int(v):
        raise UserError(f"{what} must be a whole number, not {v!r}")
    v = int(v)
    if positive and v <= 0:
        raise UserError(f"{what} must be positive, not {v!r}")
    return v


def _number(v, what: str, positive: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise UserError(f"{what} must be a finite number, not {v!r}")
    if positive and not v > 0:
        raise UserError(f"{what} must be positive, not {v!r}")
    if not positive and v < 0:
        raise UserError(f"{what} must not be negative, not {v!r}")
    return float(v)


# ----------------------------------------------------------------------------- names

def id_lr(lr: float) -> str:
    """A learning rate in a trial id (unchanged since the first records: ids must stay stable)."""
    short = f"{lr:.0e}".replace("e-0", "e-").replace("e+0", "e+")
    return short if float(short) == float(lr) else f"{lr:.3e}"


def fmt_lr(lr: float) -> str:
    """A learning rate as the papers write it: 1e-4, 5e-5, 2.5e-5 (more digits only when needed);
    the one way every table, line and figure prints one."""
    mant, exp = f"{float(lr):.3e}".split("e")
    return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"


def display_name(model_name: str, init: str) -> str:
    """The model's row label: its registry name, marked when it was not pre-trained."""
    return model_name + (" (random init)" if init == "random" else "")


def trial_id(model_name: str, init: str, task: str, batch_size: int, learning_rate: float, seed: int) -> str:
    """A trial's id, e.g. ``BERT-Tiny__SST-2__bs32_lr1e-4_s0``: the same function names sweep
    trials, optuna's samples and ``glue-sweep train`` runs."""
    m = re.sub(r"[^A-Za-z0-9.\-]+", "-", model_name).strip("-") + ("-random" if init == "random" else "")
    return f"{m}__{task}__bs{batch_size}_lr{id_lr(learning_rate)}_s{seed}"


def make_trial(config: TrialConfig, model_name: str) -> Trial:
    """The trial of a configuration whose model the registry calls ``model_name``."""
    label = display_name(model_name, config.init)
    return Trial(trial_id(model_name, config.init, config.task, config.batch_size, config.learning_rate, config.seed),
                 f"{label}|{config.task}", config)
