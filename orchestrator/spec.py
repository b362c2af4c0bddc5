"""Sweep specs (``sweeps/*.yaml``): parse, validate, expand into trials. Pure: no Ray, no torch.

Every key is checked before anything starts: an unknown key is an error naming the file,
the line and the nearest known key, so a typo never falls back to a default silently. A
grid that would repeat a trial (the same value twice, two names for one model) is an error.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UserError
from .models import HIDDEN, LAYERS, ModelSpec, miniature_hub_id, miniature_name, miniatures, resolve
from .tasks import Task, all_tasks, get_task

PAPER_BATCH_SIZES = [8, 16, 32, 64, 128]
PAPER_LEARNING_RATES = [3e-4, 1e-4, 5e-5, 3e-5]

TOP_KEYS = {"name", "description", "models", "init", "tasks", "search", "epochs", "seeds", "max_train_examples",
            "max_length", "scheduler", "resources", "data", "results", "retries", "keep_best_checkpoint",
            "trust_remote_code", "eval_every"}
MODEL_KEYS = {"name", "init", "layers", "hidden"}
SEARCH_KEYS = {"mode", "batch_size", "learning_rate", "trials"}
SCHED_KEYS = {"type", "grace_period", "reduction_factor"}
RES_KEYS = {"cpus_per_trial", "gpus_per_trial", "max_concurrent"}
DATA_KEYS = {"glue_dir", "hub"}


@dataclass(frozen=True)
class Trial:
    """One fine-tuning run of the sweep: everything the runner needs, and its identity."""
    trial_id: str
    model: str          # display name
    model_ref: str      # hub id or directory the runner loads
    init: str
    task: str
    batch_size: int
    learning_rate: float
    seed: int
    epochs: float
    max_train_examples: int | None
    max_length: int
    eval_every: float    # epochs between evaluations

    @property
    def group(self) -> str:
        """Trials compare (for early stopping and ranking) only within a group."""
        return f"{self.model}|{self.task}"

    def to_dict(self) -> dict:
        from dataclasses import asdict
        return asdict(self)


@dataclass
class Sweep:
    name: str
    path: str
    models: list[tuple[ModelSpec, str]]      # (spec, init)
    tasks: list[Task]
    mode: str                                # grid | optuna
    batch_sizes: list[int]
    learning_rates: list[float]
    optuna_trials: int | None
    epochs: float
    seeds: list[int]
    max_train_examples: int | None
    max_length: int
    eval_every: float
    scheduler: str                           # asha | none
    grace_period: float
    reduction_factor: float
    cpus_per_trial: float
    gpus_per_trial: float | str              # a number or "auto"
    max_concurrent: int | None
    glue_dir: str | None
    hub: str | None
    results: str
    retries: int
    keep_best_checkpoint: bool
    trust_remote_code: bool
    raw: dict = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return Path(self.results) / self.name

    def trials(self) -> list[Trial]:
        """The grid, expanded: models x tasks x batch sizes x learning rates x seeds.
        (In optuna mode the configurations are chosen while the sweep runs.)"""
        out, seen = [], {}
        for (spec, init), task, bs, lr, seed in itertools.product(
                self.models, self.tasks, self.batch_sizes, self.learning_rates, self.seeds):
            t = Trial(trial_id=trial_id(spec.name, init, task.name, bs, lr, seed), model=display_name(spec, init),
                      model_ref=spec.ref, init=init, task=task.name, batch_size=bs, learning_rate=lr, seed=seed,
                      epochs=self.epochs, max_train_examples=self.max_train_examples, max_length=self.max_length,
                      eval_every=self.eval_every)
            if t.trial_id in seen:
                raise UserError(f"{self.path}: the grid repeats trial {t.trial_id}")
            seen[t.trial_id] = t
            out.append(t)
        return out

    def groups(self) -> list[tuple[str, str, str]]:
        """(model display name, init, task) of every group, in order."""
        return [(display_name(s, i), i, t.name) for (s, i) in self.models for t in self.tasks]


def display_name(spec: ModelSpec, init: str) -> str:
    return spec.name + (" (random init)" if init == "random" else "")


def fmt_lr(lr: float) -> str:
    return f"{lr:.0e}".replace("e-0", "e-")


def trial_id(model: str, init: str, task: str, bs: int, lr: float, seed: int, precise: bool = False) -> str:
    m = re.sub(r"[^A-Za-z0-9.\-]+", "-", model).strip("-") + ("-random" if init == "random" else "")
    return f"{m}__{task}__bs{bs}_lr{f'{lr:.3e}' if precise else fmt_lr(lr)}_s{seed}"


# --- parsing ---------------------------------------------------------------------------

def _lines(text: str) -> dict[tuple, int]:
    """Line number (1-based) of every mapping key, by its path of keys/indices."""
    out: dict[tuple, int] = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = path + (k.value,)
                out[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                out[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    try:
        walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
    except yaml.YAMLError:
        pass
    return out


class _Ctx:
    def __init__(self, path: str, text: str):
        self.path, self.lines = path, _lines(text)

    def where(self, *keys) -> str:
        for n in range(len(keys), 0, -1):
            if keys[:n] in self.lines:
                return f"{self.path}:{self.lines[keys[:n]]}"
        return self.path

    def fail(self, keys: tuple, msg: str):
        raise UserError(f"{self.where(*keys)}: {one_line(msg)}")

    def check_keys(self, d: dict, allowed: set, keys: tuple = ()):
        if not isinstance(d, dict):
            self.fail(keys, f"{'/'.join(map(str, keys)) or 'the sweep'} must be a mapping")
        for k in d:
            if k not in allowed:
                near = difflib.get_close_matches(str(k), sorted(allowed), n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else f"; allowed: {', '.join(sorted(allowed))}"
                self.fail(keys + (k,), f"unknown key {str(k)!r}{' in ' + '/'.join(map(str, keys)) if keys else ''}{hint}")


def one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def _expand_env(value, ctx: _Ctx, keys: tuple):
    if not isinstance(value, str):
        return value
    out = os.path.expandvars(value)
    m = re.search(r"\$\{?(\w+)", out)
    if m:
        ctx.fail(keys, f"environment variable {m.group(1)} is not set")
    return out


def _num(v, ctx, keys, kind=float, positive=True):
    """A number from the spec (YAML reads 1e-4 as a string: floats may be strings)."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)) or (kind is int and isinstance(v, str)):
        ctx.fail(keys, f"expected {'a whole number' if kind is int else 'a number'}, got {v!r}")
    try:
        x = float(v)
    except (TypeError, ValueError):
        ctx.fail(keys, f"expected a number, got {v!r}")
    if not math.isfinite(x):
        ctx.fail(keys, f"expected a finite number, got {v!r}")
    if kind is int:
        if x != int(x):
            ctx.fail(keys, f"expected a whole number, got {v!r}")
        x = int(x)
    if positive and not x > 0:
        ctx.fail(keys, f"must be positive, got {v!r}")
    return x


def _list(v, ctx, keys, what):
    if v is None or (isinstance(v, list) and not v):
        ctx.fail(keys, f"{what} is empty")
    return v if isinstance(v, list) else [v]


def _models(raw, default_init: str, ctx: _Ctx) -> list[tuple[ModelSpec, str]]:
    items = _list(raw, ctx, ("models",), "models")
    out: list[tuple[ModelSpec, str]] = []
    for i, item in enumerate(items):
        keys = ("models", i) if isinstance(raw, list) else ("models",)
        init = default_init
        if isinstance(item, dict):
            ctx.check_keys(item, MODEL_KEYS, keys)
            init = item.get("init", default_init)
            if "layers" in item or "hidden" in item:
                layers = item.get("layers", list(LAYERS))
                hidden = item.get("hidden", list(HIDDEN))
                layers = layers if isinstance(layers, list) else [layers]
                hidden = hidden if isinstance(hidden, list) else [hidden]
                for l in layers:
                    if l not in LAYERS:
                        ctx.fail(keys + ("layers",), f"no miniature has {l} layers (they have {list(LAYERS)})")
                for h in hidden:
                    if h not in HIDDEN:
                        ctx.fail(keys + ("hidden",), f"no miniature has hidden size {h} (they have {list(HIDDEN)})")
                specs = [ModelSpec(miniature_name(l, h), miniature_hub_id(l, h), (l, h)) for l in layers for h in hidden]
            elif "name" in item:
                specs = _named(item["name"], ctx, keys + ("name",))
            else:
                ctx.fail(keys, "a model entry needs 'name' or 'layers'/'hidden'")
        else:
            specs = _named(item, ctx, keys)
        if init not in ("pretrained", "random"):
            ctx.fail(keys, f"init must be pretrained or random, not {init!r}")
        out += [(s, init) for s in specs]
    seen = {}
    for s, init in out:
        key = (s.ref, init)
        if key in seen:
            ctx.fail(("models",), f"model {s.name} ({s.ref}, init {init}) is listed twice"
                     + (f" (also as {seen[key]})" if seen[key] != s.name else ""))
        seen[key] = s.name
    return out


def _named(name, ctx, keys) -> list[ModelSpec]:
    if not isinstance(name, str):
        ctx.fail(keys, f"a model is a name, not {name!r}")
    name = _expand_env(name, ctx, keys)
    if name.strip().lower() == "miniatures":
        return [resolve(n) for n in miniatures()]
    try:
        return [resolve(name)]
    except UserError as e:
        ctx.fail(keys, str(e))


def _tasks(raw, ctx: _Ctx) -> list[Task]:
    if isinstance(raw, str) and raw.strip().lower() == "all":
        return [t for t in all_tasks().values() if t.trainable]
    items = _list(raw, ctx, ("tasks",), "tasks")
    out = []
    for i, name in enumerate(items):
        keys = ("tasks", i) if isinstance(raw, list) else ("tasks",)
        try:
            t = get_task(str(name))
        except UserError as e:
            ctx.fail(keys, str(e))
        if not t.trainable:
            ctx.fail(keys, f"{t.name} has no training split: it is predicted with the {t.predict_with} trials")
        if t in out:
            ctx.fail(keys, f"task {t.name} is listed twice")
        out.append(t)
    return out


def _values(raw, ctx, keys, kind, default):
    if raw is None:
        return list(default)
    vals = raw if isinstance(raw, list) else [raw]
    if not vals:
        ctx.fail(keys, "is empty: the grid would have no configuration")
    out = [_num(v, ctx, keys + (i,) if isinstance(raw, list) else keys, kind) for i, v in enumerate(vals)]
    dup = [v for v in set(out) if out.count(v) > 1]
    if dup:
        ctx.fail(keys, f"repeats {dup[0]!r}: the grid would run the same configuration twice")
    return out


def load(path: str | os.PathLike, results_root: str | None = None) -> Sweep:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"sweep file {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = p.read_bytes()[:e.start].count(b"\n") + 1
        raise UserError(f"{p}:{line}: not valid UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise UserError(f"sweep file {p}: cannot read ({e.strerror})") from None
    return parse(text, str(p), results_root)


def parse(text: str, path: str = "<sweep>", results_root: str | None = None) -> Sweep:
    ctx = _Ctx(path, text)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise UserError(f"{where}: not valid YAML ({one_line(getattr(e, 'problem', None) or e)})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a sweep spec must be a mapping of keys (name, models, tasks, ...)")
    ctx.check_keys(raw, TOP_KEYS)
    for key in ("name", "models", "tasks"):
        if key not in raw:
            raise UserError(f"{path}: missing key '{key}'")
    name = str(raw["name"])
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]*", name):
        ctx.fail(("name",), f"name {name!r} must be letters, digits, '.', '_' or '-' (it names the results directory)")
    default_init = raw.get("init", "pretrained")
    if default_init not in ("pretrained", "random"):
        ctx.fail(("init",), f"init must be pretrained or random, not {default_init!r}")
    models = _models(raw["models"], default_init, ctx)
    tasks = _tasks(raw["tasks"], ctx)

    search = raw.get("search") or {}
    ctx.check_keys(search, SEARCH_KEYS, ("search",))
    mode = search.get("mode", "grid")
    if mode not in ("grid", "optuna"):
        ctx.fail(("search", "mode"), f"mode must be grid or optuna, not {mode!r}")
    if mode == "grid":
        bss = _values(search.get("batch_size"), ctx, ("search", "batch_size"), int, PAPER_BATCH_SIZES)
        lrs = _values(search.get("learning_rate"), ctx, ("search", "learning_rate"), float, PAPER_LEARNING_RATES)
        if "trials" in search:
            ctx.fail(("search", "trials"), "trials is the optuna budget; a grid runs every configuration")
        budget = None
    else:
        bss = _values(search.get("batch_size"), ctx, ("search", "batch_size"), int, PAPER_BATCH_SIZES)
        lr = search.get("learning_rate", {"low": 1e-5, "high": 5e-4})
        if not (isinstance(lr, dict) and set(lr) <= {"low", "high"} and {"low", "high"} <= set(lr)):
            ctx.fail(("search", "learning_rate"), "in optuna mode learning_rate is a range {low: ..., high: ...}")
        lo, hi = _num(lr["low"], ctx, ("search", "learning_rate")), _num(lr["high"], ctx, ("search", "learning_rate"))
        if lo >= hi:
            ctx.fail(("search", "learning_rate"), f"low {lo} must be below high {hi}")
        lrs = [lo, hi]
        budget = int(_num(search.get("trials", 20), ctx, ("search", "trials"), int))

    epochs = _num(raw.get("epochs", 4), ctx, ("epochs",))
    seeds_raw = raw.get("seeds", [0])
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        if seeds_raw <= 0:
            ctx.fail(("seeds",), f"seeds as a count must be positive, got {seeds_raw}")
        seeds = list(range(seeds_raw))
    else:
        seeds = [int(_num(s, ctx, ("seeds",), int, positive=False)) for s in _list(seeds_raw, ctx, ("seeds",), "seeds")]
        if len(set(seeds)) != len(seeds):
            ctx.fail(("seeds",), "repeats a seed")
    mte = raw.get("max_train_examples")
    mte = None if mte is None else int(_num(mte, ctx, ("max_train_examples",), int))
    max_length = int(_num(raw.get("max_length", 128), ctx, ("max_length",), int))
    if not 8 <= max_length <= 512:
        ctx.fail(("max_length",), f"max_length must be between 8 and 512, got {max_length}")
    eval_every = _num(raw.get("eval_every", 1), ctx, ("eval_every",))
    if eval_every > 1:
        ctx.fail(("eval_every",), f"eval_every is a fraction of an epoch (0 < eval_every <= 1), got {eval_every}")

    sched = raw.get("scheduler") or {"type": "none"}
    if isinstance(sched, str):
        sched = {"type": sched}
    ctx.check_keys(sched, SCHED_KEYS, ("scheduler",))
    stype = sched.get("type", "asha")
    if stype not in ("asha", "none"):
        ctx.fail(("scheduler", "type"), f"scheduler must be asha or none, not {stype!r}")
    grace = _num(sched.get("grace_period", 1), ctx, ("scheduler", "grace_period"))
    rf = _num(sched.get("reduction_factor", 2), ctx, ("scheduler", "reduction_factor"))
    if stype == "asha" and rf <= 1:
        ctx.fail(("scheduler", "reduction_factor"), "reduction_factor must be above 1")
    if stype == "asha" and grace >= epochs:
        ctx.fail(("scheduler", "grace_period"), f"grace_period ({grace}) must be below epochs ({epochs}) to stop anything")

    res = raw.get("resources") or {}
    ctx.check_keys(res, RES_KEYS, ("resources",))
    cpus = _num(res.get("cpus_per_trial", 1), ctx, ("resources", "cpus_per_trial"))
    gpus = res.get("gpus_per_trial", "auto")
    if gpus != "auto":
        gpus = _num(gpus, ctx, ("resources", "gpus_per_trial"), positive=False)
        if gpus < 0:
            ctx.fail(("resources", "gpus_per_trial"), "must not be negative")
    maxc = res.get("max_concurrent")
    maxc = None if maxc is None else int(_num(maxc, ctx, ("resources", "max_concurrent"), int))

    data = raw.get("data") or {}
    ctx.check_keys(data, DATA_KEYS, ("data",))
    if "glue_dir" in data and "hub" in data:
        ctx.fail(("data",), "give glue_dir or hub, not both")
    glue_dir = _expand_env(data.get("glue_dir"), ctx, ("data", "glue_dir")) if data.get("glue_dir") else None
    hub = _expand_env(data.get("hub"), ctx, ("data", "hub")) if data.get("hub") else None
    if glue_dir and not Path(glue_dir).expanduser().is_dir():
        ctx.fail(("data", "glue_dir"), f"GLUE data directory {glue_dir} does not exist")

    retries = int(_num(raw.get("retries", 2), ctx, ("retries",), int, positive=False))
    if retries < 0:
        ctx.fail(("retries",), "must not be negative")
    for key in ("keep_best_checkpoint", "trust_remote_code"):
        if not isinstance(raw.get(key, False), bool):
            ctx.fail((key,), f"{key} must be true or false")
    results = results_root or _expand_env(str(raw.get("results", "results")), ctx, ("results",))

    sweep = Sweep(name=name, path=path, models=models, tasks=tasks, mode=mode, batch_sizes=bss, learning_rates=lrs,
                  optuna_trials=budget, epochs=epochs, seeds=seeds, max_train_examples=mte, max_length=max_length,
                  eval_every=eval_every, scheduler=stype, grace_period=grace, reduction_factor=rf, cpus_per_trial=cpus,
                  gpus_per_trial=gpus, max_concurrent=maxc, glue_dir=glue_dir, hub=hub, results=results,
                  retries=retries, keep_best_checkpoint=raw.get("keep_best_checkpoint", False),
                  trust_remote_code=raw.get("trust_remote_code", False), raw=raw)
    if mode == "grid":
        sweep.trials()  # raises on repeats
    return sweep
