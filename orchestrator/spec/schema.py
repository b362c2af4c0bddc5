"""The sweep file's schema: pydantic models with ``extra="forbid"``; ``yamlstrict.explain`` turns
their errors into one line naming the file and the line (``file:line: unknown key 'x' (did you
mean 'y'?)``), as it does for task files. What needs the registries (models, tasks, data) is
checked in ``spec``. Pure."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from ..config import INITS, MAX_TEMPERATURE

MAX_SEEDS = 1000


# ----------------------------------------------------------------------------- value checks

def number(v, kind=float, positive=True):
    """A number from the spec. The loader is YAML 1.2, so a plain ``1e-4`` is already a float; a
    string reaches here only when the file quotes it (``"1e-4"``), and is read as the number it
    spells (as before), while ``1:30`` or ``fast`` is refused."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)) or (kind is int and not isinstance(v, int)):
        raise ValueError(f"expected {'a whole number' if kind is int else 'a number'}, got {v!r}")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {v!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"expected a finite number, got {v!r}")
    if kind is int:
        if x != int(x):
            raise ValueError(f"expected a whole number, got {v!r}")
        x = int(x)
    if positive and not x > 0:
        raise ValueError(f"must be positive, got {v!r}")
    return x


def as_list(v):
    return v if isinstance(v, list) else ([] if v is None else [v])


def _one_of(*allowed: str, what: str):
    def check(v):
        if v not in allowed:
            raise ValueError(f"{what} must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {v!r}")
        return v
    return BeforeValidator(check)


PosFloat = Annotated[float, BeforeValidator(lambda v: number(v))]
PosInt = Annotated[int, BeforeValidator(lambda v: number(v, int))]
NonNegInt = Annotated[int, BeforeValidator(lambda v: _non_negative(number(v, int, positive=False)))]
Bool = Annotated[bool, BeforeValidator(lambda v: _boolean(v))]
Init = Annotated[str, _one_of(*INITS, what="init")]


def _at_most(x, high):
    if x > high:
        raise ValueError(f"must be at most {high:g}, got {x:g}")
    return x


def _between(x, low, high):
    if not low <= x <= high:
        raise ValueError(f"must be between {low:g} and {high:g}, got {x:g}")
    return x


def _non_negative(x):
    if x < 0:
        raise ValueError("must not be negative")
    return x


def _boolean(v):
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, not {v!r}")
    return v


def _model_entry(v):
    if isinstance(v, str):
        return {"name": v}
    if not isinstance(v, dict):
        raise ValueError(f"a model is a name, not {v!r}")
    return v


def _seeds(v):
    if isinstance(v, int) and not isinstance(v, bool):
        if not 0 < v <= MAX_SEEDS:
            raise ValueError(f"seeds as a count must be between 1 and {MAX_SEEDS}, got {v}")
        return list(range(v))
    seeds = [number(s, int, positive=False) for s in as_list(v)]
    if not seeds:
        raise ValueError("seeds is empty")
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"more than {MAX_SEEDS} seeds")
    if len(set(seeds)) != len(seeds):
        raise ValueError("repeats a seed")
    return seeds


def _mapping(v, what: str):
    if not isinstance(v, dict):
        raise ValueError(f"{what} must be a mapping of keys, not {v!r}")
    return v


def _scheduler(v):
    if v is None:
        return {"type": "none"}
    return {"type": v} if isinstance(v, str) else v


def _gpus(v):
    return v if v == "auto" else _non_negative(number(v, positive=False))


# ----------------------------------------------------------------------------- the schema

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelEntry(_Strict):
    name: str | None = None
    init: Init | None = None
    layers: Annotated[list[Any], BeforeValidator(as_list)] | None = None
    hidden: Annotated[list[Any], BeforeValidator(as_list)] | None = None


class Search(_Strict):
    mode: Annotated[str, _one_of("grid", "optuna", what="mode")] = "grid"
    batch_size: Any = None
    learning_rate: Any = None
    trials: Any = None


class Scheduler(_Strict):
    type: Annotated[str, _one_of("asha", "none", what="scheduler")] = "asha"
    grace_period: PosFloat = 1.0
    reduction_factor: PosFloat = 2.0


class Resources(_Strict):
    cpus_per_trial: PosFloat = 1.0
    gpus_per_trial: Annotated[float | str, BeforeValidator(_gpus)] = "auto"
    max_concurrent: PosInt | None = None


class Data(_Strict):
    glue_dir: str | None = None
    hub: str | None = None


class Distill(_Strict):
    """Pre-trained Distillation: students learn the teacher's soft labels (checked in ``distill``)."""
    teacher: Any
    transfer: Any = None
    temperature: Annotated[float, BeforeValidator(lambda v: _at_most(number(v), MAX_TEMPERATURE))] = 1.0   # (0, 100]
    alpha: Annotated[float, BeforeValidator(lambda v: _between(_non_negative(number(v, positive=False)), 0, 1))] = 0.0
    then_finetune: Bool = False
    baseline: Bool = True


class SweepSpec(_Strict):
    """A sweep file as written (validated, not yet resolved against the registries)."""
    name: Any
    description: Any = None
    models: Annotated[list[Annotated[ModelEntry, BeforeValidator(_model_entry)]], BeforeValidator(as_list)]
    init: Init = "pretrained"
    tasks: Any
    search: Annotated[Search, BeforeValidator(lambda v: _mapping(v, "search"))] = Search()
    epochs: PosFloat = 4.0
    seeds: Annotated[list[int], BeforeValidator(_seeds)] = [0]
    max_train_examples: PosInt | None = None
    max_length: PosInt = 128
    eval_every: PosFloat = 1.0
    scheduler: Annotated[Scheduler, BeforeValidator(_scheduler)] = Scheduler(type="none")
    resources: Annotated[Resources, BeforeValidator(lambda v: _mapping(v, "resources"))] = Resources()
    data: Annotated[Data, BeforeValidator(lambda v: _mapping(v, "data"))] = Data()
    results: Any = "results"
    retries: NonNegInt = 2
    keep_best_checkpoint: Bool = False
    trust_remote_code: Bool = False
    compile: Bool = False                  # every trial's training step under torch.compile
    distill: Distill | None = None
    fuse: Annotated[str, _one_of("auto", "on", "off", what="fuse")] | None = None   # left out: a grid auto, optuna off
