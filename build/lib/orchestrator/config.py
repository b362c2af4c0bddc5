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
# How a trial trains: on gold labels (fine-tune), on a teacher's soft labels (distill, the
# paper's Pre-trained Distillation), or on soft labels then gold labels (distill+fine-tune).
TRAININGS = ("fine-tune", "distill", "distill+fine-tune")
KIND_MARKS = {"fine-tune": "", "distill": " [distilled]", "distill+fine-tune": " [distilled+fine-tuned]"}
# Bounds of the values a trial accepts (a value outside is a mistake, never a run): the learning
# rate lies in (0, 1), epochs in (0, MAX_EPOCHS], batch sizes up to MAX_BATCH_SIZE.
MAX_EPOCHS = 100
MAX_BATCH_SIZE = 8192


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
    training: str = "fine-tune"            # one of TRAININGS
    teacher: str | None = None             # distillation: the teacher (a directory, or run:<dir>:<model>)
    transfer: tuple[str, ...] = ()         # distillation: the transfer data ("train", extra TSV files)
    temperature: float = 1.0               # distillation: softmax temperature of teacher and student
    alpha: float = 0.0                     # distillation: weight of the gold-label loss

    def __post_init__(self) -> None:
        _set = lambda k, v: object.__setattr__(self, k, v)   # noqa: E731 (frozen: normalise once)
        for key in ("model", "task"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key).strip():
                raise UserError(f"{key} must be a non-empty name, not {getattr(self, key)!r}")
        _set("batch_size", _whole(self.batch_size, "batch size"))
        _set("learning_rate", _number(self.learning_rate, "learning rate"))
        _set("epochs", _number(self.epochs, "epochs"))
        if not self.learning_rate < 1:
            raise UserError(f"learning rate must be below 1, not {self.learning_rate!r}")
        if self.epochs > MAX_EPOCHS:
            raise UserError(f"epochs must be at most {MAX_EPOCHS}, not {self.epochs!r}")
        if self.batch_size > MAX_BATCH_SIZE:
            raise UserError(f"batch size must be at most {MAX_BATCH_SIZE}, not {self.batch_size!r}")
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
        self._check_distillation(_set)

    def _check_distillation(self, _set) -> None:
        if self.training not in TRAININGS:
            raise UserError(f"training must be {', '.join(TRAININGS)}, not {self.training!r}")
        _set("temperature", _number(self.temperature, "temperature"))
        _set("alpha", _number(self.alpha, "alpha", positive=False))
        if isinstance(self.transfer, str) or not all(isinstance(x, str) and x for x in self.transfer):
            raise UserError(f"transfer must be a list of names, not {self.transfer!r}")
        _set("transfer", tuple(self.transfer))
        if self.training == "fine-tune":
            if self.teacher is not None or self.transfer or self.temperature != 1.0 or self.alpha != 0.0:
                raise UserError("teacher, transfer, temperature and alpha are distillation settings: "
                                "a fine-tune trial takes none")
        elif not (isinstance(self.teacher, str) and self.teacher and self.transfer):
            raise UserError(f"a {self.training} trial needs a teacher and transfer data")

    @property
    def distilled(self) -> bool:
        return self.training != "fine-tune"

    def to_dict(self) -> dict:
        """Plain JSON values (``transfer`` a list), equal to what a record reads back."""
        return {**asdict(self), "transfer": list(self.transfer)}

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
    soft_labels: str | None = None  # distillation: the teacher's soft labels (a file of the soft-label cache)
    gpu_share: float | None = None  # the share of its GPU reserved for it (< 1: its memory is capped there)


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

def fmt_lr(lr: float) -> str:
    """A learning rate exactly, as the papers write it: 1e-4, 5e-5, 5.4e-5, 2.5e-5: the fewest
    significant digits that read back as the same float (so two rates never share a name)."""
    lr = float(lr)
    for digits in range(17):
        text = f"{lr:.{digits}e}"
        if float(text) == lr:
            break
    mant, exp = text.split("e")
    return f"{mant}e{int(exp)}"


def display_name(model_name: str, init: str, training: str = "fine-tune") -> str:
    """The model's row label: its registry name, marked when it was not pre-trained and when
    it was trained by distillation (each kind is its own row and early-stopping group)."""
    return model_name + (" (random init)" if init == "random" else "") + KIND_MARKS[training]


def kind_suffix(config: TrialConfig) -> str:
    """What a distillation trial's id adds: ``__pd`` (distill) or ``__pdft`` (distill+fine-tune),
    then the temperature and alpha when they are not the defaults."""
    if not config.distilled:
        return ""
    out = "__pd" if config.training == "distill" else "__pdft"
    out += f"_T{config.temperature:g}" if config.temperature != 1.0 else ""
    return out + (f"_a{config.alpha:g}" if config.alpha else "")


def trial_id(model_name: str, init: str, task: str, batch_size: int, learning_rate: float, seed: int,
             suffix: str = "") -> str:
    """A trial's id, e.g. ``BERT-Tiny__SST-2__bs32_lr1e-4_s0`` (``suffix``: :func:`kind_suffix`):
    the same function names sweep trials, optuna's samples and ``glue-sweep train`` runs."""
    m = re.sub(r"[^A-Za-z0-9.\-]+", "-", model_name).strip("-") + ("-random" if init == "random" else "")
    return f"{m}__{task}__bs{batch_size}_lr{fmt_lr(learning_rate)}_s{seed}{suffix}"


def make_trial(config: TrialConfig, model_name: str) -> Trial:
    """The trial of a configuration whose model the registry calls ``model_name``; its group is
    (model, kind of training, task)."""
    label = display_name(model_name, config.init, config.training)
    return Trial(trial_id(model_name, config.init, config.task, config.batch_size, config.learning_rate, config.seed,
                          kind_suffix(config)), f"{label}|{config.task}", config)
