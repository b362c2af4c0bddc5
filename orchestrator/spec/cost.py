"""What a sweep costs on one GPU, counting what costs: a worker's start, a trial's start, and per
optimizer step the larger of its host time and its device time; evaluation alike; fused units,
early stopping and packed trials. Pure: no torch, no Ray.

It is an estimate. Each figure below says whether it was measured or assumed; the range comes
from the low and the high assumptions (``LOW``, ``HIGH``), the point from ``POINT``.

* host time of a step = operator calls x time per call (PyTorch eager dispatch and kernel
  launch); operator calls = a + b x layers, solo or fused (``SOLO_CALLS``, ``FUSED_CALLS``;
  counted on CPU with ``bench``'s operator counter).
* device time of a step = FLOPs / (H100 bf16 peak x MFU), but at least calls x the least GPU
  time of an operator call.
* a step takes max(host, device): a small model's step is bound by its host time.
* evaluation: each batch of 256 a forward pass (a third of a step's calls and of its FLOPs per
  token); a fused unit's members are evaluated stacked, 256 member-rows a batch, which makes as
  many batches as evaluating them one by one.
* start-up: a worker's first trial pays the process start, the imports and the CUDA context
  (``Assumptions.worker_s``); every trial pays its model build and data, measured on CPU (warm
  feature cache), plus ``Assumptions.trial_gpu_s`` to put them on the GPU. Workers are reused
  (Ray Tune's actor reuse): a new set of workers starts only where the grid's GPU share changes.
* fused units (``fuse: auto``): the learning rates and seeds of one (model, task, batch size)
  cell take one step together: one host time for K members' device work (a unit of several
  seeds makes its forward and backward calls once per seed: not counted, an underestimate of
  its host time).
* early stopping: synchronous successive halving per (model, task) (``successive_halving``);
  a fused unit steps while any member goes on (assumed: to its end), so only its device time and
  its members' evaluations shrink.
* packing: a trial at a GPU share s runs beside 1/s - 1 others (n = 1/s in all); packed
  workers (each its own CPU process, a core each assumed free) overlap their host time, n of
  them running 1 + (n - 1) x ``Assumptions.packing`` times as fast as one, up to the GPU's
  compute: a trial costs max(wall / that gain, device-busy time) GPU-seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..registry.models import approx_params, resolve, shape_of
from ..registry.tasks import get_task
from .units import plan_units

H100_BF16_FLOPS = 989e12       # dense bf16 peak of one H100 (SXM)
ASSUMED_MFU = 0.30             # model FLOPs utilisation assumed where none was measured
H100_MEMORY_BYTES = 81559 * 2**20   # an H100 80GB as nvidia-smi reports it
ASSUMED_PADDING = 1.25         # padded / real training tokens, assumed (bench.estimate measures it)
EVAL_BATCH = 256
EVAL_FRACTION = 1 / 3          # an evaluation batch: forward only, a third of a step's calls and FLOPs
# A trial's start-up on a warm feature cache, measured on CPU (bench.startup, bench/results/make-bench-cpu.md):
# 0.16 s for BERT-Tiny (4.39 M parameters), 1.04 s for BERT-Base (109.5 M); linear in parameters between.
STARTUP_MEASURED = ((4_385_920, 0.16), (109_482_240, 1.04))


@dataclass(frozen=True)
class Calls:
    """Operator calls of one training step = a + b x layers."""
    a: float
    b: float

    def __call__(self, layers: int) -> float:
        return self.a + self.b * layers


# Counted on CPU by bench.ops (bench/results/ops-cpu.json: every dispatched operator of a step,
# forward, backward, clipping and AdamW; batch 32 x 128 tokens): a solo step 495 calls at 2 layers,
# 2,395 at 12; a fused unit of 4 members 812 and 3,652. A stacked step's calls do not grow with K
# (one batched matmul per linear layer): the K = 4 fit is used for every K (assumed).
SOLO_CALLS = Calls(115.0, 190.0)
FUSED_CALLS = Calls(244.0, 284.0)
CALLS = (SOLO_CALLS, FUSED_CALLS)   # the defaults: (solo, fused)


@dataclass(frozen=True)
class Assumptions:
    """One end of the range. ``call_us``: host time per operator call (eager dispatch + launch,
    a modern x86 host; CUDA graphs or compilation would cut it, not modelled). ``mfu``: model
    FLOPs utilisation of the device work. ``kernel_us``: the least GPU time of one operator call
    (a small kernel takes 1-3 us; views and reshapes launch none: assumed). ``worker_s``: a
    worker's start: process start (0.5 / 1 / 2 s, assumed), the trainable's imports (5.5-5.9 s
    measured on a 2-core CPU machine; 3 / 5 / 6 s taken) and the CUDA context (1 / 2 / 3 s,
    assumed). ``trial_gpu_s``: a trial's start beyond the CPU-measured one (weights and data to
    the device, first allocations; assumed). ``packing``: how much of the ideal overlap n packed
    workers reach: together they run 1 + (n - 1) x packing times as fast as one (MPS lets their
    kernels run side by side; without it the GPU time-slices between them; not measured yet:
    assumed)."""
    call_us: float
    mfu: float
    kernel_us: float
    worker_s: float
    trial_gpu_s: float
    packing: float


LOW = Assumptions(call_us=5.0, mfu=0.40, kernel_us=0.5, worker_s=4.5, trial_gpu_s=0.1, packing=1.0)
POINT = Assumptions(call_us=10.0, mfu=ASSUMED_MFU, kernel_us=1.0, worker_s=8.0, trial_gpu_s=0.3, packing=0.7)
HIGH = Assumptions(call_us=15.0, mfu=0.20, kernel_us=2.0, worker_s=11.0, trial_gpu_s=1.0, packing=0.4)


def assumption_text(lo: Assumptions = LOW, pt: Assumptions = POINT, hi: Assumptions = HIGH,
                    paddings: tuple[float, ...] = (ASSUMED_PADDING,)) -> list[str]:
    """The assumptions of a range, one phrase each: least-most (point); ``paddings``: the padding
    factors the work items use."""
    def r(field: str, unit: str = "", scale: float = 1.0) -> str:
        a, b = sorted((getattr(lo, field) * scale, getattr(hi, field) * scale))
        return f"{a:g}-{b:g}{unit} ({getattr(pt, field) * scale:g}{unit})"
    return [f"host time {r('call_us', ' us')} per operator call",
            f"MFU {r('mfu', '%', 100)} of the H100's bf16 peak",
            f"an operator call at least {r('kernel_us', ' us')} of GPU time",
            f"a worker's start {r('worker_s', ' s')} (process, imports, CUDA context), workers reused",
            f"a trial's start as measured on CPU ({STARTUP_MEASURED[0][1]:g} s BERT-Tiny, {STARTUP_MEASURED[1][1]:g} s "
            f"BERT-Base) plus {r('trial_gpu_s', ' s')}",
            f"packed workers overlapping {r('packing', '%', 100)} (n at once run 1 + (n - 1) x that as fast "
            "as one), a CPU core each, up to the GPU's compute",
            (f"padding {ASSUMED_PADDING:g}" if set(paddings) <= {ASSUMED_PADDING} else
             f"padding as measured, {min(paddings):.2f}-{max(paddings):.2f}")]


def calls_from(doc: dict) -> tuple[Calls, Calls]:
    """(solo, fused) call fits from ``{"solo": {"a": .., "b": ..}, "fused": {"a": .., "b": ..}}``."""
    return tuple(Calls(float(doc[k]["a"]), float(doc[k]["b"])) for k in ("solo", "fused"))


def train_flops(layers: int, hidden: int, n_nonemb: int, tokens: float, seq: float) -> float:
    """Training FLOPs of ``tokens`` tokens in sequences of mean length ``seq``."""
    return 6.0 * n_nonemb * tokens + 12.0 * layers * hidden * seq * tokens


@dataclass(frozen=True)
class Work:
    """One trial, or one fused unit of ``members`` trials of one cell (they differ only in the
    learning rate and seed). ``eval_rows``: rows of each evaluation split."""
    label: str
    task: str
    layers: int
    hidden: int
    n_params: int
    n_nonemb: int
    batch: int
    train_rows: int
    epochs: float
    eval_rows: tuple[int, ...]
    eval_passes: float
    avg_tokens: float
    padding: float = ASSUMED_PADDING
    members: int = 1

    @property
    def steps(self) -> float:
        return math.ceil(self.train_rows / self.batch) * self.epochs

    @property
    def group(self) -> tuple[str, str]:
        return self.label, self.task


def step_seconds(w: Work, a: Assumptions, calls: tuple[Calls, Calls] = CALLS) -> tuple[float, float]:
    """(host, device) seconds of one training step of ``w`` (all its members)."""
    c = (calls[1] if w.members > 1 else calls[0])(w.layers)
    seq = w.avg_tokens * w.padding
    flops = w.members * train_flops(w.layers, w.hidden, w.n_nonemb, w.batch * seq, seq)
    return c * a.call_us * 1e-6, max(flops / (H100_BF16_FLOPS * a.mfu), c * a.kernel_us * 1e-6)


def utilisation(w: Work, a: Assumptions = POINT, calls: tuple[Calls, Calls] = CALLS) -> float:
    """The fraction of a training step the GPU is busy: device / max(host, device)."""
    host, dev = step_seconds(w, a, calls)
    return dev / max(host, dev)


def startup_seconds(n_params: float) -> float:
    """A trial's measured CPU start-up (warm cache) for a model of ``n_params`` parameters."""
    (p0, s0), (p1, s1) = STARTUP_MEASURED
    return max(s0, s0 + (s1 - s0) * (n_params - p0) / (p1 - p0))


@dataclass
class Seconds:
    """One work item's seconds: wall time (what it holds its GPU share for) and device-busy time."""
    start: float
    train_wall: float
    train_busy: float
    eval_wall: float
    eval_busy: float
    host_bound: bool

    @property
    def wall(self) -> float:
        return self.start + self.train_wall + self.eval_wall

    @property
    def busy(self) -> float:
        return self.train_busy + self.eval_busy


def seconds(w: Work, a: Assumptions, calls: tuple[Calls, Calls] = CALLS,
            fraction: float = 1.0) -> Seconds:
    """Seconds of ``w`` under ``a``, with early stopping leaving ``fraction`` of its epochs (a
    fused unit's host time stays whole: it steps while any member does)."""
    host, dev = step_seconds(w, a, calls)
    if w.members > 1:
        dev_f = dev * fraction
        train_wall, train_busy = w.steps * max(host, dev_f), w.steps * dev_f
    else:
        train_wall, train_busy = w.steps * fraction * max(host, dev), w.steps * fraction * dev
    c = calls[0](w.layers) * EVAL_FRACTION
    batches = sum(math.ceil(r / EVAL_BATCH) for r in w.eval_rows) * w.eval_passes * w.members * fraction
    tokens = sum(w.eval_rows) * w.eval_passes * w.members * fraction * w.avg_tokens
    e_flops = EVAL_FRACTION * train_flops(w.layers, w.hidden, w.n_nonemb, tokens, w.avg_tokens)
    e_busy = max(e_flops / (H100_BF16_FLOPS * a.mfu), batches * c * a.kernel_us * 1e-6)
    e_wall = max(batches * c * a.call_us * 1e-6, e_busy)
    start = startup_seconds(w.n_params * w.members) + a.trial_gpu_s
    return Seconds(start, train_wall, train_busy, e_wall, e_busy, host >= dev)


def successive_halving(n_configs: int, grace: float, rf: float, max_t: float) -> dict:
    """Epochs run by synchronous successive halving: every configuration runs to the first
    rung (``grace``); at each rung the best 1/rf (at least one) continue to the next rung
    (rung x rf), the survivors of the last rung below ``max_t`` run to ``max_t``."""
    rungs, r = [], grace
    while r < max_t:
        rungs.append(r)
        r *= rf
    alive, prev, run, stages = n_configs, 0.0, 0.0, []
    for r in rungs:
        run += alive * (r - prev)
        stages.append({"rung": r, "configs": alive})
        prev, alive = r, max(1, int(alive // rf))
    run += alive * (max_t - prev)
    stages.append({"rung": max_t, "configs": alive})
    full = n_configs * max_t
    return {"epochs_run": run, "epochs_full": full, "fraction": run / full if full else 1.0, "stages": stages}


def work_of(t, label: str | None = None, members: int = 1, padding: dict | None = None) -> Work | None:
    """The work of trial configuration ``t`` (a fused unit of ``members`` such trials); None
    when its model's size is unknown."""
    spec = resolve(t.model)
    shape, params = shape_of(spec), approx_params(spec)
    if shape is None or params is None:
        return None
    task = get_task(t.task)
    n = task.splits["train"].rows or 0
    n = min(n, t.max_train_examples) if t.max_train_examples else n
    return Work(label=label or t.model, task=task.name, layers=shape[0], hidden=shape[1], n_params=params[0],
                n_nonemb=params[1], batch=t.batch_size, train_rows=n, epochs=t.epochs,
                eval_rows=tuple(s.rows or 0 for s in task.eval_splits), eval_passes=t.epochs / (t.eval_every or 1),
                avg_tokens=task.avg_tokens, padding=(padding or {}).get((task.name, t.batch_size), ASSUMED_PADDING),
                members=members)


def works_of(sweep, fuse: str | None = None, padding: dict | None = None) -> tuple[list[Work], list, list[str]]:
    """The grid's work items in grid order (fused units where ``fuse`` (default: the sweep's) is
    auto), the trial configurations of each item's first member, and the labels of models of
    unknown size (left out). ``padding[(task, batch size)]`` overrides ``ASSUMED_PADDING``."""
    fuse = fuse or sweep.fuse
    works, firsts, unknown = [], [], []
    for part in plan_units(sweep.trials() if sweep.mode == "grid" else [], fuse):
        w = work_of(part[0].config, part[0].label, len(part), padding)
        if w is None:
            unknown.append(part[0].label)
            continue
        works.append(w)
        firsts.append(part[0].config)
    return works, firsts, sorted(set(unknown))


def halving_fractions(works: list[Work], grace: float | None, rf: float) -> list[float]:
    """Each item's share of its epochs under successive halving per (model, task) group (1 without)."""
    if grace is None:
        return [1.0] * len(works)
    sizes: dict = {}
    for w in works:
        sizes[w.group] = sizes.get(w.group, 0) + w.members
    max_t = max((w.epochs for w in works), default=0)
    return [successive_halving(sizes[w.group], grace, rf, max_t)["fraction"] for w in works]


def gpu_hours(works: list[Work], shares: list[float], a: Assumptions, fractions: list[float] | None = None,
              calls: tuple[Calls, Calls] = CALLS) -> dict:
    """GPU-hours of the items run in order on one GPU, each at its share: max(wall / packing
    gain, device-busy) seconds per item, plus a worker start each time the share changes."""
    total = busy = host_steps = steps = 0.0
    starts, prev, by_model = 0, None, {}
    for w, s, f in zip(works, shares, fractions or [1.0] * len(works)):
        sec = seconds(w, a, calls, f)
        n = round(1 / s)
        cost = max(sec.wall / (1 + (n - 1) * a.packing), sec.busy)
        total, busy = total + cost, busy + sec.busy
        by_model[w.label] = by_model.get(w.label, 0.0) + cost / 3600
        k = w.steps * w.members * (1.0 if w.members > 1 else f)
        steps, host_steps = steps + k, host_steps + (k if sec.host_bound else 0.0)
        if s != prev:
            starts, prev = starts + 1, s
    total += starts * a.worker_s
    return {"hours": total / 3600, "busy_hours": busy / 3600, "worker_sets": starts, "by_model": by_model,
            "host_bound_fraction": host_steps / steps if steps else 0.0}


def estimate_range(works: list[Work], shares: list[float], fractions: list[float] | None = None,
                   calls: tuple[Calls, Calls] = CALLS) -> dict:
    """Low, point and high GPU-hours (shares fixed: the sweep sizes them at the point)."""
    out = {name: gpu_hours(works, shares, a, fractions, calls) for name, a in (("low", LOW), ("point", POINT),
                                                                                   ("high", HIGH))}
    return {"low": out["low"]["hours"], "point": out["point"]["hours"], "high": out["high"]["hours"],
            "detail": out, "assumptions": assumption_text(paddings=tuple({w.padding for w in works})),
            "items": len(works),
            "steps": sum(w.steps * w.members for w in works)}

