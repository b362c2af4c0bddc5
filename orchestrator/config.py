"""The one trial type: ``TrialConfig`` (what a trial computes) and ``Runtime`` (where it runs).

A trial is ``Trial(id, group, config)``. ``TrialConfig`` is built and validated here only: the
sweep expansion, ``glue-sweep train``, optuna's samples, the cache warm-up and ``submit`` all
construct it (or read it back with ``TrialConfig.from_dict``), and a result record stores
``config.to_dict()`` under ``"trial"``. Its fields are checked as the sweep and task files' keys
are, by pydantic (a pydantic dataclass: one field validator running each field's :class:`Rule`).
Pure: no torch, no Ray.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import NamedTuple

from pydantic import field_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from .errors import UserError

INITS = ("pretrained", "random")
# How a trial trains: on gold labels (fine-tune), on a teacher's soft labels (distill, the
# paper's Pre-trained Distillation), or on soft labels then gold labels (distill+fine-tune).
TRAININGS = ("fine-tune", "distill", "distill+fine-tune")
KIND_MARKS = {"fine-tune": "", "distill": " [distilled]", "distill+fine-tune": " [distilled+fine-tuned]"}
# Bounds of the values a trial accepts (a value outside is a mistake, never a run): the learning
# rate lies in (0, 1), epochs in (0, MAX_EPOCHS], batch sizes up to MAX_BATCH_SIZE; distillation's
# temperature in (0, MAX_TEMPERATURE] and alpha (the weight of the gold-label loss) in [0, 1].
MAX_EPOCHS = 100
MAX_BATCH_SIZE = 8192
MAX_TEMPERATURE = 100


@dataclass(frozen=True)
class Rule:
    """What one trial setting accepts: its kind (``whole``, ``number``, ``name``, ``names``,
    ``choice``, ``flag``), its bounds, its name in messages. pydantic runs it (TrialConfig's one
    field validator) and returns the normalised value; ``cli.args`` reads it for the flag's type."""
    kind: str
    what: str
    positive: bool = True          # whole, number: > 0 (else >= 0, or any whole number for a seed)
    low: float | None = None       # at least (with high: "between low and high")
    high: float | None = None      # at most
    below: float | None = None     # less than
    choices: tuple[str, ...] = ()
    optional: bool = False         # None is a value (unset)

    def __call__(self, v):
        if v is None and self.optional:
            return None
        if self.kind == "name":
            if not isinstance(v, str) or not v.strip():
                raise UserError(f"{self.what} must be a non-empty name, not {v!r}")
            return v
        if self.kind == "names":
            if isinstance(v, str) or not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
                raise UserError(f"{self.what} must be a list of names, not {v!r}")
            return tuple(v)
        if self.kind == "flag":
            if not isinstance(v, bool):
                raise UserError(f"{self.what} must be true or false, not {v!r}")
            return v
        if self.kind == "choice":
            if v not in self.choices:
                raise UserError(f"{self.what} must be {', '.join(self.choices[:-1])} or {self.choices[-1]}, not {v!r}")
            return v
        v = _whole(v, self.what, self.positive) if self.kind == "whole" else _number(v, self.what, self.positive)
        if self.low is not None and not self.low <= v <= self.high:
            raise UserError(f"{self.what} must be between {self.low:g} and {self.high:g}, not {v!r}")
        if self.high is not None and not v <= self.high:
            raise UserError(f"{self.what} must be at most {self.high:g}, not {v!r}")
        if self.below is not None and not v < self.below:
            raise UserError(f"{self.what} must be below {self.below:g}, not {v!r}")
        return v


def setting(rule: Rule, default=MISSING, help: str | None = None, flag: str | None = None, cli: bool = True,
            group: str | None = None):
    """A field of :class:`TrialConfig`: its rule and what ``glue-sweep train``'s flag for it says
    (``flag``: its name when not ``--kebab-case`` of the field's; ``cli=False``: no flag of its own;
    ``group``: the help section it is listed in)."""
    return field(default=default, metadata={"rule": rule, "help": help, "flag": flag, "cli": cli, "group": group})


@pydantic_dataclass(frozen=True)
class TrialConfig:
    """One fine-tuning run, fully specified. ``model`` is what the model registry resolves (a
    miniature name, a hub id or a directory; the sweep passes the resolved reference). Each field
    is a :func:`setting`: its :class:`Rule` checks it when a config is built (pydantic's one field
    validator), rules between fields are in ``__post_init__``, and ``glue-sweep train`` makes a flag
    of each (``cli.args.config_arguments``), so a new setting is added here once."""
    model: str = setting(Rule("name", "model"), help="BERT-Tiny, L-4_H-256, all-MiniLM-L6-v2, a hub id or a directory")
    task: str = setting(Rule("name", "task"), help="a task name or alias")
    batch_size: int = setting(Rule("whole", "batch size", high=MAX_BATCH_SIZE), help="training batch size")
    learning_rate: float = setting(Rule("number", "learning rate", below=1), help="peak learning rate", flag="--lr")
    epochs: float = setting(Rule("number", "epochs", high=MAX_EPOCHS), 4.0, help="training epochs")
    seed: int = setting(Rule("whole", "seed", positive=False), 0, help="random seed")
    init: str = setting(Rule("choice", "init", choices=INITS), "pretrained",
                        help="start from the pre-trained weights or from random ones")
    max_train_examples: int | None = setting(Rule("whole", "max train examples", optional=True), None,
                                             help="train on the first N examples only (default: all)")
    max_length: int = setting(Rule("whole", "max length", low=8, high=512), 128, help="tokens per example")
    eval_every: float | None = setting(Rule("number", "eval every N epochs", optional=True), None,
                                       help="epochs between evaluations, e.g. 0.5 (default: once an epoch)")
    eval_every_steps: int | None = setting(Rule("whole", "eval every N steps", optional=True), None,
                                           help="or evaluate every N optimizer steps (default: by epochs, see --eval-every)")
    warmup_ratio: float = setting(Rule("number", "warmup ratio", positive=False), 0.1,
                                  help="share of the steps with a linear warm-up")
    weight_decay: float = setting(Rule("number", "weight decay", positive=False), 0.01, help="AdamW's weight decay")
    max_grad_norm: float = setting(Rule("number", "max grad norm", positive=False), 1.0,
                                   help="gradient clipping norm")
    eval_batch_size: int = setting(Rule("whole", "eval batch size"), 256, help="evaluation batch size")
    group_by_length: bool = setting(Rule("flag", "group_by_length"), True,
                                    help="batch examples of similar length together")
    grad_accum: int = setting(Rule("whole", "gradient accumulation"), 1,   # > 1 after an out-of-memory restart
                              help="micro-batches per optimizer step, of one effective batch")
    trust_remote_code: bool = setting(Rule("flag", "trust_remote_code"), False,
                                      help="allow a checkpoint's own code to run")
    # how the step runs, not what it computes (equal to float rounding): not part of a trial's identity
    compile: bool = setting(Rule("flag", "compile"), False,
                            help="compile the training step (torch.compile, one graph per batch shape; CUDA graphs "
                                 "on a GPU)")
    training: str = setting(Rule("choice", "training", choices=TRAININGS), "fine-tune", cli=False)
    # distillation: the teacher (a directory, or run:<dir>:<model>), the transfer data ("train", extra TSV
    # files), the softmax temperature of teacher and student, the weight of the gold-label loss
    teacher: str | None = setting(Rule("name", "teacher", optional=True), None, cli=False)
    transfer: tuple[str, ...] = setting(Rule("names", "transfer"), (), cli=False)
    temperature: float = setting(Rule("number", "temperature", high=MAX_TEMPERATURE), 1.0,
                                 help=f"softmax temperature, above 0 and at most {MAX_TEMPERATURE}",
                                 group="distillation")
    alpha: float = setting(Rule("number", "alpha", positive=False, low=0, high=1), 0.0,
                           help="weight of the gold-label loss, 0 (soft labels only) to 1", group="distillation")

    @field_validator("*", mode="plain")
    @classmethod
    def _check(cls, v, info):
        # a plain value is checked once per field (a store's records repeat their models, tasks, rates)
        key = (info.field_name, type(v), v) if isinstance(v, (str, int, float, bool, type(None))) else None
        if key is not None and key in _CHECKED:
            return _CHECKED[key]
        out = _RULES[info.field_name](v)
        if key is not None and len(_CHECKED) < 100_000:
            _CHECKED[key] = out
        return out

    def __post_init__(self) -> None:
        """Rules between fields (each field's own rule has run)."""
        if self.batch_size % self.grad_accum:
            raise UserError(f"gradient accumulation {self.grad_accum} must divide the batch size {self.batch_size}")
        if self.training == "fine-tune":
            if self.teacher is not None or self.transfer or self.temperature != 1.0 or self.alpha != 0.0:
                raise UserError("teacher, transfer, temperature and alpha are distillation settings: "
                                "a fine-tune trial takes none")
        elif not (self.teacher and self.transfer):
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
        extra = sorted(set(d) - _KNOWN)
        if extra:
            raise UserError(f"unknown trial setting(s): {', '.join(extra)}")
        missing = [n for n in _REQUIRED if n not in d]
        if missing:
            raise UserError(f"incomplete trial configuration: missing {', '.join(missing)}")
        return cls(**d)

    def replace(self, **changes) -> "TrialConfig":
        return TrialConfig.from_dict({**self.to_dict(), **changes})


_RULES = {f.name: f.metadata["rule"] for f in fields(TrialConfig)}
_CHECKED: dict = {}   # (field, type, value) -> the value its rule returned
_KNOWN = frozenset(f.name for f in fields(TrialConfig))
_REQUIRED = tuple(f.name for f in fields(TrialConfig) if f.default is MISSING)


# The CUDA caching allocator's setting every worker gets unless its environment says otherwise
# (``train.device``): expandable segments, so packed trials fragment less.
ALLOC_CONF = "expandable_segments:True"


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
