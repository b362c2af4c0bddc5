"""Sweep specs (``sweeps/*.yaml``): parse, validate, expand into trials. Pure: no Ray, no torch.

The schema is a set of pydantic models with ``extra="forbid"``: an unknown key is an error
naming the file, the line and the nearest known key, so a typo never falls back to a default
silently. The YAML is read strictly (``yamlstrict``: YAML 1.2 scalars, no repeated key, bounded
aliases and size), and no value may be empty unless it is in NULLABLE. What needs the
registries (model names, tasks, the data directory) is checked when the validated spec is
resolved into a ``Sweep``. Checks are linear and the grid is bounded (MAX_TRIALS) before it is
expanded. A grid that would repeat a trial (the same
value twice, two names for one model) is an error. Every error is one line, ``file:line: ...``.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from .. import shipped, yamlstrict
from ..config import MAX_BATCH_SIZE, MAX_EPOCHS, Trial, TrialConfig, display_name, make_trial
from ..data import transfer as distillation
from ..errors import UserError
from ..registry.models import HIDDEN, LAYERS, ModelSpec, miniature_hub_id, miniature_name, miniatures, resolve
from ..registry.tasks import Task, all_tasks, get_task
from ..yamlstrict import Where, explain
from .schema import Data, ModelEntry, Search, SweepSpec, as_list, number

MAX_BYTES = yamlstrict.MAX_BYTES
MAX_TRIALS = 100_000       # a grid larger than this is refused before it is expanded
MAX_NAME = 100             # characters of a sweep name (it names a directory)
NULLABLE = {("max_train_examples",), ("description",), ("resources", "max_concurrent")}   # may be null
PAPER_BATCH_SIZES = [8, 16, 32, 64, 128]
PAPER_LEARNING_RATES = [3e-4, 1e-4, 5e-5, 3e-5]


# ----------------------------------------------------------------------------- the resolved sweep

@dataclass
class Sweep:
    name: str
    path: str
    models: list[tuple[ModelSpec, str]]      # (spec, init)
    tasks: list[Task]
    mode: str                                # grid | optuna
    batch_sizes: list[int]
    learning_rates: list[float]              # the grid's, or optuna's [low, high]
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
    distill: distillation.Distill | None = None   # Pre-trained Distillation settings, when the spec has them
    fuse: str = "auto"                       # auto (a grid's default): the learning rates of one cell train as one
                                             # fused unit where that pays (spec.units); on: wherever the model
                                             # stacks; off (an optuna sweep's only way): one trial per process
    compile: bool = False                    # trials compile their training step (TrialConfig.compile)

    @property
    def run_dir(self) -> Path:
        return Path(self.results) / self.name

    def trainings(self) -> list[str]:
        """The kinds of training every student gets: fine-tune, and the distillation kind."""
        return self.distill.trainings() if self.distill else ["fine-tune"]

    def trial(self, spec: ModelSpec, init: str, task: str, batch_size: int, learning_rate: float, seed: int,
              training: str = "fine-tune") -> Trial:
        """The one place a sweep turns a configuration into a trial (grid and optuna alike)."""
        d = self.distill if training != "fine-tune" else None
        kd = dict(training=training, teacher=d.teacher.identity, transfer=d.transfer(task),
                  temperature=d.temperature, alpha=d.alpha) if d else {}
        cfg = TrialConfig(model=spec.ref, task=task, batch_size=batch_size, learning_rate=learning_rate,
                          epochs=self.epochs, seed=seed, init=init, max_train_examples=self.max_train_examples,
                          max_length=self.max_length, eval_every=self.eval_every if self.eval_every < 1 else None,
                          trust_remote_code=self.trust_remote_code, compile=self.compile, **kd)
        return make_trial(cfg, spec.name)

    def trials(self) -> list[Trial]:
        """The grid, expanded: models x kinds of training x tasks x batch sizes x learning rates
        x seeds. (In optuna mode the configurations are chosen while the sweep runs.)"""
        out, seen = [], set()
        for (spec, init), training, task, bs, lr, seed in itertools.product(
                self.models, self.trainings(), self.tasks, self.batch_sizes, self.learning_rates, self.seeds):
            t = self.trial(spec, init, task.name, bs, lr, seed, training)
            if t.id in seen:
                raise UserError(f"{self.path}: the grid repeats trial {t.id}")
            seen.add(t.id)
            out.append(t)
        return out

    def groups(self) -> list[tuple[str, str, str]]:
        """(model display name, init, task) of every group, in order (a kind of training is
        part of the display name)."""
        return [(display_name(s.name, i, k), i, t.name) for (s, i) in self.models for k in self.trainings()
                for t in self.tasks]


# ----------------------------------------------------------------------------- resolving

def _expand_env(value, where: Where, keys: tuple):
    if not isinstance(value, str):
        return value
    out = os.path.expandvars(value)
    m = re.search(r"\$\{?(\w+)", out)
    if m:
        where.fail(keys, f"environment variable {m.group(1)} is not set")
    return out


def _models(spec: SweepSpec, raw_models, where: Where) -> list[tuple[ModelSpec, str]]:
    if not spec.models:
        where.fail(("models",), "models is empty")
    out: list[tuple[ModelSpec, str]] = []
    for i, item in enumerate(spec.models):
        keys = ("models", i) if isinstance(raw_models, list) else ("models",)
        written = raw_models[i] if isinstance(raw_models, list) else raw_models
        init = item.init or spec.init
        if item.name is not None and (item.layers is not None or item.hidden is not None):
            specs = _named_shape(item, where, keys)
        elif item.layers is not None or item.hidden is not None:
            specs = _shapes(item, where, keys)
        elif item.name is not None:
            specs = _named(item.name, where, keys + ("name",) if isinstance(written, dict) else keys)
        else:
            where.fail(keys, "a model entry needs 'name' or 'layers'/'hidden'")
        out += [(s, init) for s in specs]
    seen: dict = {}
    for s, init in out:
        key = (s.ref, init)
        if key in seen:
            where.fail(("models",), f"model {s.name} ({s.ref}, init {init}) is listed twice"
                       + (f" (also as {seen[key]})" if seen[key] != s.name else ""))
        seen[key] = s.name
    return out


def _named_shape(item: ModelEntry, where: Where, keys: tuple) -> list[ModelSpec]:
    """A name with layers/hidden: allowed only when they describe the named model."""
    specs = _named(item.name, where, keys + ("name",))
    shapes = {(l, h) for s in _shapes(item, where, keys) for l, h in [s.shape]}
    if len(specs) != 1 or specs[0].shape is None or shapes != {specs[0].shape}:
        where.fail(keys, f"model {item.name!r} contradicts its layers/hidden ({sorted(shapes)}): give the name "
                         f"or the shape, not both")
    return specs


def _shapes(item: ModelEntry, where: Where, keys: tuple) -> list[ModelSpec]:
    layers = item.layers if item.layers is not None else list(LAYERS)
    hidden = item.hidden if item.hidden is not None else list(HIDDEN)
    for what, values, allowed in (("layers", layers, LAYERS), ("hidden", hidden, HIDDEN)):
        if not values:
            where.fail(keys + (what,), f"{what} is empty")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int):
                where.fail(keys + (what,), f"{what} must be whole numbers, not {v!r}")
            if v not in allowed:
                where.fail(keys + (what,), f"no miniature has {v} {what if what == 'layers' else 'as hidden size'} "
                                            f"(they have {list(allowed)})")
    return [ModelSpec(miniature_name(l, h), miniature_hub_id(l, h), (l, h)) for l in layers for h in hidden]


def _named(name: str, where: Where, keys: tuple) -> list[ModelSpec]:
    name = _expand_env(name, where, keys)
    if name.strip().lower() == "miniatures":
        return [resolve(n) for n in miniatures()]
    try:
        return [resolve(name)]
    except UserError as e:
        where.fail(keys, str(e))


def _tasks(raw, where: Where) -> list[Task]:
    if isinstance(raw, str) and raw.strip().lower() == "all":
        return [t for t in all_tasks().values() if t.trainable]
    items = as_list(raw)
    if not items:
        where.fail(("tasks",), "tasks is empty")
    out = []
    for i, name in enumerate(items):
        keys = ("tasks", i) if isinstance(raw, list) else ("tasks",)
        try:
            t = get_task(str(name))
        except UserError as e:
            where.fail(keys, str(e))
        if not t.trainable:
            where.fail(keys, f"{t.name} has no training split: it is predicted with the {t.predict_with} trials")
        if t in out:
            where.fail(keys, f"task {t.name} is listed twice")
        out.append(t)
    return out


def _values(raw, where: Where, keys: tuple, kind, default, below=None) -> list:
    if raw is None:
        return list(default)
    vals = raw if isinstance(raw, list) else [raw]
    if not vals:
        where.fail(keys, "is empty: the grid would have no configuration")
    out = []
    for i, v in enumerate(vals):
        try:
            out.append(number(v, kind))
        except ValueError as e:
            where.fail(keys + (i,) if isinstance(raw, list) else keys, str(e))
        if below is not None and not out[-1] < below:
            where.fail(keys + (i,) if isinstance(raw, list) else keys,
                       f"{out[-1]!r} is out of range: {keys[-1].replace('_', ' ')} must be below {below:g}")
    seen = set()
    for v in out:   # linear, however long the list
        if v in seen:
            where.fail(keys, f"repeats {v!r}: the grid would run the same configuration twice")
        seen.add(v)
    return out


def _search(s: Search, where: Where) -> tuple[list[int], list[float], int | None]:
    bss = _values(s.batch_size, where, ("search", "batch_size"), int, PAPER_BATCH_SIZES, below=MAX_BATCH_SIZE + 1)
    if s.mode == "grid":
        if s.trials is not None:
            where.fail(("search", "trials"), "trials is the optuna budget; a grid runs every configuration")
        return bss, _values(s.learning_rate, where, ("search", "learning_rate"), float, PAPER_LEARNING_RATES,
                            below=1), None
    keys = ("search", "learning_rate")
    lr = {"low": 1e-5, "high": 5e-4} if s.learning_rate is None else s.learning_rate
    if not (isinstance(lr, dict) and set(lr) == {"low", "high"}):
        where.fail(keys, "in optuna mode learning_rate is a range {low: ..., high: ...}")
    try:
        lo, hi = number(lr["low"]), number(lr["high"])
        budget = number(20 if s.trials is None else s.trials, int)
    except ValueError as e:
        where.fail(keys, str(e))
    if lo >= hi:
        where.fail(keys, f"low {lo} must be below high {hi}")
    if hi >= 1:
        where.fail(keys, f"a learning rate lies between 0 and 1, not {hi}")
    return bss, [lo, hi], budget


def _checks(spec: SweepSpec, where: Where) -> None:
    """Rules between values, each naming its line."""
    if not 8 <= spec.max_length <= 512:
        where.fail(("max_length",), f"max_length must be between 8 and 512, got {spec.max_length}")
    if spec.epochs > MAX_EPOCHS:
        where.fail(("epochs",), f"epochs must be at most {MAX_EPOCHS}, got {spec.epochs:g}")
    if spec.keep_best_checkpoint:
        where.fail(("keep_best_checkpoint",), "keep_best_checkpoint is not implemented: no checkpoint is kept; "
                                              "submit trains the chosen configuration again")
    if spec.eval_every > 1:
        where.fail(("eval_every",), f"eval_every is a fraction of an epoch (0 < eval_every <= 1), got {spec.eval_every}")
    sc = spec.scheduler
    if sc.type == "asha" and sc.reduction_factor <= 1:
        where.fail(("scheduler", "reduction_factor"), "reduction_factor must be above 1")
    if sc.type == "asha" and sc.grace_period >= spec.epochs:
        where.fail(("scheduler", "grace_period"),
                   f"grace_period ({sc.grace_period:g}) must be below epochs ({spec.epochs:g}) to stop anything")
    if spec.data.glue_dir and spec.data.hub:
        where.fail(("data",), "give glue_dir or hub, not both")
    if spec.distill is not None and spec.search.mode != "grid":
        where.fail(("distill",), "distillation sweeps run in grid mode (search: {mode: grid})")
    if spec.fuse in ("auto", "on") and spec.search.mode != "grid":
        where.fail(("fuse",), f"fuse: {spec.fuse} fuses a grid's learning rates; an optuna sweep runs one trial per "
                              "process (leave fuse out)")


def _name(raw, where: Where) -> str:
    if not isinstance(raw, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]*", raw):
        where.fail(("name",), f"name {str(raw)[:60]!r} must be letters, digits, '.', '_' or '-' "
                              f"(it names the results directory)")
    if len(raw) > MAX_NAME:
        where.fail(("name",), f"name is {len(raw)} characters long; at most {MAX_NAME}")
    return raw


def _no_empty(node, where: Where, keys: tuple = ()) -> None:
    """An empty value (``key:``, ``[]``, ``{}``, ``""``) never stands for a default: only the keys
    in NULLABLE may be null; nothing may be empty."""
    if keys in NULLABLE or keys[:1] == ("description",):
        return
    if node is None:
        where.fail(keys, f"{'/'.join(map(str, keys))} is empty: give a value or leave the key out")
    if node == "" or (isinstance(node, (list, dict)) and not node):
        where.fail(keys, f"{'/'.join(map(str, keys)) or 'the spec'} is empty")
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        _no_empty(v, where, keys + (k,))


def _grid_size(spec: SweepSpec, models: int, tasks: int, bss: list, lrs: list, where: Where) -> None:
    n = models * tasks * len(bss) * len(lrs) * len(spec.seeds) if spec.search.mode == "grid" else 0
    if n > MAX_TRIALS:
        where.fail(("search",), f"the grid has {n:,} trials; at most {MAX_TRIALS:,} (split it into several sweeps)")


def _data_dir(data: Data, where: Where) -> tuple[str | None, str | None]:
    glue_dir = _expand_env(data.glue_dir, where, ("data", "glue_dir")) if data.glue_dir else None
    hub = _expand_env(data.hub, where, ("data", "hub")) if data.hub else None
    if glue_dir and not Path(glue_dir).expanduser().is_dir():
        where.fail(("data", "glue_dir"), f"GLUE data directory {glue_dir} does not exist")
    return glue_dir, hub


def shipped_sweeps() -> list[str]:
    """The names of the sweeps shipped with glue-sweep (``paper``, ``quickstart``, ...)."""
    return sorted(p.stem for p in shipped("sweeps").glob("*.yaml"))


def find(path: str | os.PathLike) -> Path:
    """A sweep file: ``path`` itself, or a shipped sweep by name (``paper`` or ``paper.yaml``,
    wherever the package is installed) when no such file exists here."""
    p = Path(path)
    if p.is_file() or p.parent != Path("."):
        return p
    named = shipped("sweeps") / (p.name if p.suffix in (".yaml", ".yml") else p.name + ".yaml")
    return named if named.is_file() else p


def load(path: str | os.PathLike, results_root: str | None = None, expand: bool = True) -> Sweep:
    """The sweep of a file (``expand=False``: its grid is not expanded to check for repeated
    trials, for a reader that only needs its settings and size)."""
    p = find(path)
    if not p.is_file():
        names = ", ".join(shipped_sweeps())
        raise UserError(f"sweep file {p} does not exist" + (f" (shipped sweeps by name: {names})" if names else ""))
    try:
        if p.stat().st_size > MAX_BYTES:
            raise UserError(f"{p}: {p.stat().st_size:,} bytes: a sweep spec is at most {MAX_BYTES:,}")
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = p.read_bytes()[:e.start].count(b"\n") + 1
        raise UserError(f"{p}:{line}: not valid UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise UserError(f"sweep file {p}: cannot read ({e.strerror})") from None
    return parse(text, str(p), results_root, expand)


def read_yaml(text: str, path: str, with_node: bool = False):
    """The spec as a mapping, read strictly (``yamlstrict``: YAML 1.2 scalars, no repeated key,
    bounded aliases and size)."""
    raw, node = yamlstrict.read(text, path, "a sweep spec")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a sweep spec must be a mapping of keys (name, models, tasks, ...)")
    return (raw, node) if with_node else raw


def parse(text: str, path: str = "<sweep>", results_root: str | None = None, expand: bool = True) -> Sweep:
    raw, node = read_yaml(text, path, with_node=True)
    where = Where(path, text, node)
    _no_empty(raw, where)
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as e:
        raise explain(e, where, SweepSpec, "the sweep") from None
    name = _name(spec.name, where)
    _checks(spec, where)
    models = _models(spec, raw["models"], where)
    tasks = _tasks(spec.tasks, where)
    bss, lrs, budget = _search(spec.search, where)
    _grid_size(spec, len(models), len(tasks), bss, lrs, where)
    glue_dir, hub = _data_dir(spec.data, where)
    results = results_root or _expand_env(str(spec.results), where, ("results",))
    res, sc = spec.resources, spec.scheduler
    sweep = Sweep(name=name, path=path, models=models, tasks=tasks, mode=spec.search.mode, batch_sizes=bss,
                  learning_rates=lrs, optuna_trials=budget, epochs=spec.epochs, seeds=spec.seeds,
                  max_train_examples=spec.max_train_examples, max_length=spec.max_length, eval_every=spec.eval_every,
                  scheduler=sc.type, grace_period=sc.grace_period, reduction_factor=sc.reduction_factor,
                  cpus_per_trial=res.cpus_per_trial, gpus_per_trial=res.gpus_per_trial,
                  max_concurrent=res.max_concurrent, glue_dir=glue_dir, hub=hub, results=results,
                  retries=spec.retries, keep_best_checkpoint=spec.keep_best_checkpoint,
                  trust_remote_code=spec.trust_remote_code, raw=raw,
                  fuse=spec.fuse or ("auto" if spec.search.mode == "grid" else "off"), compile=spec.compile,
                  distill=distillation.resolve(spec.distill, where, [t.name for t in tasks]) if spec.distill else None)
    if sweep.mode == "grid" and expand:
        sweep.trials()  # raises on repeats
    return sweep
