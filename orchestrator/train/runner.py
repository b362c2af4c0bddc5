"""One GLUE fine-tuning trial, readable top to bottom.

The paper's recipe: AdamW (weight decay 0.01, not on biases and LayerNorm), linear warm-up
over the first 10% of steps then linear decay to 0, gradient clipping at 1.0, max sequence
length 128, 4 epochs, the checkpoint's own dropout. Batches are grouped by length (order still
random per epoch and fixed by the seed) and padded to their own longest row, or, with
``compile``, to their bucket (``batches``: the narrowest of at most eight widths fitted to the
task's lengths that holds the batch's longest row, so a compiled trial sees at most nine batch
shapes). The training rows and labels go to the device once and
each batch is gathered there by index; the dev split(s) are padded once (sorted by length, cut
into batches, kept in ``Prepared.dev_batches``). A step (``step.train_step``)
never waits for the device; the loop checks the loss for NaN every step on CPU and every
``GPU_CHECK_EVERY`` steps on a GPU. The dev split(s) are scored after every epoch (optionally
every N steps) and each evaluation goes to ``on_eval``; the sweep plugs Ray Tune's reporting in
there. A NaN or infinite loss stops the trial as diverged. No checkpoint is written unless
``save_dir`` is given.
"""

from __future__ import annotations

import inspect
import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from ..config import Runtime, TrialConfig
from ..data import features as feats
from ..errors import UserError
from ..registry.models import ModelSpec, load_model, load_tokenizer, resolve
from ..registry.tasks import Task, get_task
from . import test_outputs
from .predict import (as_outputs, autocast_for, decisions, dev_batches, evaluate, evaluate_outputs, outputs,  # noqa: F401
                      predict, score, stored_outputs)
from .batches import DeviceRows, batch_order, batch_widths, train_subset
from .device import free_memory, grad_scaler, is_out_of_memory, precision, set_memory_share
from .distill import loss_fn as distill_loss_fn, run_stages, student_train
from .step import Schedule, solo_step, tensor_lr


@dataclass
class Evaluation:
    epoch: float                 # fractional at mid-epoch evaluations
    step: int
    metrics: dict[str, float]    # x100, keys from Task.metric_keys()
    score: float                 # the task's headline score
    train_loss: float            # mean training loss since the previous evaluation
    elapsed_s: float             # since the trial started
    train_s: float | None = None   # training time so far: start-up and evaluations left out
    # the model's outputs per dev row, by split (``stored_outputs``); not part of the record itself
    outputs: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        """The evaluation as the record keeps it (its outputs are stored beside the record)."""
        return {k: v for k, v in vars(self).items() if k != "outputs"}


@dataclass
class TrialResult:
    status: str                  # completed | diverged | stopped
    evals: list[Evaluation] = field(default_factory=list)
    n_params: int = 0
    train_examples: int = 0
    steps: int = 0
    startup_s: float = 0.0       # trial start to first training step
    train_s: float = 0.0         # first training step to the end, evaluations excluded
    eval_s: float = 0.0          # time spent scoring the dev split(s)
    examples_per_s: float = 0.0  # training examples over train_s
    note: str = ""
    grad_accum: int = 1          # > 1 when an out-of-memory error forced smaller micro-batches

    def to_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Prepared:
    config: TrialConfig
    runtime: Runtime
    task: Task
    spec: ModelSpec
    model: object
    train: feats.Encoded
    evals: dict[str, feats.Encoded]
    device: object
    use_token_types: bool
    cache_stats: dict
    # Seconds per start-up phase: setup_s, tokenizer_s, features_train_s, features_eval_s
    # (cache load, or reading and tokenising), model_s (build or load), to_device_s; prepare_s in all.
    timings: dict = field(default_factory=dict)
    loss_fn: Callable | None = None           # distillation: (logits, packed targets) -> loss; None: the model's own
    dev_batches: dict = field(default_factory=dict)   # id of an eval split -> (split, its padded batches on the device)


def prepare(config: TrialConfig, source, cache=None, runtime: Runtime = Runtime()) -> Prepared:
    """Everything a trial needs before its first step: task, data (from the feature cache
    when warm), tokenizer and model. Raises UserError for bad input before any training."""
    t_begin = t_last = time.perf_counter()
    timings: dict = {}

    def lap(name: str) -> None:
        nonlocal t_last
        now = time.perf_counter()
        timings[name] = round(now - t_last, 4)
        t_last = now

    task = get_task(config.task)
    if not task.trainable:
        target = f"; it is predicted with an {task.predict_with} model" if task.predict_with else ""
        raise UserError(f"task {task.name} has no training split{target}")
    spec = resolve(config.model)
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    device = torch.device(runtime.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        set_memory_share(runtime.gpu_share, device)   # packed on one GPU: an overrun fails here, not beside it
    lap("setup_s")
    tokenizer = load_tokenizer(spec, config.init, config.trust_remote_code)
    lap("tokenizer_s")
    stats: dict = {}
    train = feats.features(task, "train", source, tokenizer, config.max_length, cache, stats)
    rows = train_subset(len(train), config.max_train_examples)
    if len(rows) < len(train):   # the whole split (the usual case) is used as loaded, not copied
        train = train.subset(rows)
    train = student_train(config, task, train, tokenizer, runtime.soft_labels, cache, stats) if config.distilled else train
    lap("features_train_s")
    evals = {s.name: feats.features(task, s.name, source, tokenizer, config.max_length, cache, stats)
             for s in task.eval_splits}
    lap("features_eval_s")
    model = seeded_model(spec, task, config, config.seed)
    lap("model_s")
    model = model.to(device)
    use_types = "token_type_ids" in inspect.signature(model.forward).parameters
    lap("to_device_s")
    timings["prepare_s"] = round(t_last - t_begin, 4)
    return Prepared(config, runtime, task, spec, model, train, evals, device, use_types, stats, timings,
                    distill_loss_fn(config, task.is_regression) if config.distilled else None)


def seeded_model(spec: ModelSpec, task: Task, config: TrialConfig, seed: int):
    """The model a trial of ``config`` with seed ``seed`` starts from (on the host): every random
    generator seeded first, so the new head's (or a random-init model's) weights follow the seed,
    and the generators are left where that trial's training starts drawing from them."""
    seed_everything(seed)
    return load_model(spec, task.num_labels, config.init, config.trust_remote_code)


def no_decay(name: str, p) -> bool:
    """Biases and LayerNorm weights get no weight decay."""
    return p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name or name.endswith(".bias")


def make_optimizer(model, config: TrialConfig, device):
    """AdamW over the model's trainable parameters (no decay on biases and LayerNorm); the fused kernel
    where there is one. ``step.tensor_lr`` then makes its learning rate a device tensor."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (plain if no_decay(name, p) else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    # The fused kernel (CPU and CUDA): one pass over all parameters, several times faster than the per-parameter
    # loop (measured 31 vs 141 ms per step for a 22M-parameter model on one CPU thread).
    try:
        return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-6, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-6, foreach=True)


def lr_factor(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """The learning rate's factor at optimizer step ``step`` (0-based): linear warm-up, linear decay
    (on the host; a trial's step reads ``step.Schedule``, the same on the device)."""
    warmup = int(math.ceil(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def schedule(cfg: TrialConfig, n: int) -> tuple[int, int, int | None]:
    """(optimizer steps per epoch, steps in all, steps between mid-epoch evaluations or None)."""
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    eval_every = cfg.eval_every_steps
    if cfg.eval_every and cfg.eval_every < 1:
        eval_every = max(1, round(cfg.eval_every * steps_per_epoch))
    return steps_per_epoch, total_steps, eval_every


GPU_CHECK_EVERY = 25   # steps between NaN checks on a GPU (each check waits for the device)


def run(p: Prepared, on_eval: Callable[[Evaluation], object] | None = None,
        on_progress: Callable[[int, int, float], None] | None = None, t_start: float | None = None) -> TrialResult:
    """Train ``p.model`` on ``p.train``, evaluating after every epoch. ``on_eval`` or ``on_progress``
    (called after every step) returning False stops the trial (status ``stopped``)."""
    cfg, model, device = p.config, p.model, p.device
    t_start = time.perf_counter() if t_start is None else t_start
    n = len(p.train)
    steps_per_epoch, total_steps, eval_every = schedule(cfg, n)
    optimizer = make_optimizer(model, cfg, device)
    sched = Schedule(total_steps, cfg.warmup_ratio, device)
    lr = tensor_lr(optimizer, sched, cfg.learning_rate)
    mode, autocast = precision(device)
    scaler = grad_scaler(mode)
    step_fn = solo_step(model, cfg.compile and scaler is None)
    # On a GPU the host does not wait for each step: losses stay on the device and are checked
    # for NaN every GPU_CHECK_EVERY steps and at evaluations (a progress callback needs them now).
    sync = device.type != "cuda" or on_progress is not None
    data = DeviceRows(p.train, p.use_token_types, device)
    rng = np.random.default_rng(cfg.seed)
    micro = cfg.batch_size // cfg.grad_accum

    res = TrialResult(status="completed", n_params=sum(x.numel() for x in model.parameters()), train_examples=n)
    model.train()
    step, loss_sum, loss_count, seen, window = 0, 0.0, 0, 0, 0.0

    t_train = time.perf_counter()
    res.startup_s = round(t_train - t_start, 3)
    while step < total_steps:
        order = batch_order(p.train.lengths, cfg.batch_size, rng, cfg.group_by_length)
        for rows, width in data.epoch(order, batch_widths(p.train.lengths, order, cfg.batch_size, cfg.max_length,
                                                    bucketed=cfg.compile)):
            loss = step_fn(model, optimizer, sched, lr, cfg.learning_rate, data.parts(rows, width, micro),
                           cfg.max_grad_norm, autocast, p.loss_fn, scaler)
            batch_loss = float(loss) if sync else loss
            end_of_epoch = (step + 1) % steps_per_epoch == 0 or step + 1 == total_steps
            evaluating = end_of_epoch or bool(eval_every and (step + 1) % eval_every == 0)
            window = window + batch_loss
            if sync or evaluating or (step + 1) % GPU_CHECK_EVERY == 0:
                why = divergence(window, batch_loss, sync, step + 1)
                if why:   # the step's update is discarded with the trial: a diverged trial saves nothing
                    res.status, res.note = "diverged", why
                    break
                window = 0.0
            step, seen, loss_sum, loss_count = step + 1, seen + len(rows), loss_sum + batch_loss, loss_count + 1
            stop = on_progress is not None and on_progress(step, total_steps, batch_loss) is False
            if evaluating and not stop:
                ev = evaluation(p, res, step, steps_per_epoch, float(loss_sum) / max(1, loss_count), t_start, t_train)
                loss_sum, loss_count = 0.0, 0
                stop = on_eval is not None and on_eval(ev) is False
            if stop:
                res.status = "stopped"
                break
            if step >= total_steps:
                break
        if res.status != "completed":
            break

    _finish(p, res, step, seen, t_train)
    return res


def evaluation(p: Prepared, res: TrialResult, step: int, steps_per_epoch: int, train_loss: float,
               t_start: float, t_train: float | None = None) -> Evaluation:
    """Evaluate on the dev split now; the evaluation joins ``res``."""
    t_eval = time.perf_counter()
    train_s = None if t_train is None else round(t_eval - t_train - res.eval_s, 3)
    metrics, score, outs = evaluate_outputs(p, autocast_for(p.device))
    res.eval_s += time.perf_counter() - t_eval
    ev = Evaluation(epoch=round(step / steps_per_epoch, 4), step=step, metrics=metrics, score=score,
                    train_loss=train_loss, elapsed_s=round(time.perf_counter() - t_start, 3), train_s=train_s)
    ev.outputs = stored_outputs(outs)
    res.evals.append(ev)
    return ev


def divergence(window, batch_loss, sync: bool, step: int) -> str | None:
    """Why training stops as diverged (the losses summed since the last check are not finite), or None."""
    if math.isfinite(float(window)):
        return None
    return f"loss became {batch_loss if sync else 'non-finite'} {'at' if sync else 'by'} step {step}"


def _finish(p: Prepared, res: TrialResult, step: int, seen: int, t_train: float) -> None:
    res.steps = step
    res.eval_s = round(res.eval_s, 3)
    res.train_s = round(max(0.0, time.perf_counter() - t_train - res.eval_s), 3)
    res.examples_per_s = round(seen / res.train_s, 2) if res.train_s > 0 else 0.0
    if p.runtime.save_dir and res.status == "completed":
        save(p, p.runtime.save_dir)


def save(p: Prepared, directory: str) -> None:
    """The fine-tuned model as safetensors, with its tokenizer, for predicting test sets."""
    p.model.save_pretrained(directory, safe_serialization=True)
    load_tokenizer(p.spec, p.config.init, p.config.trust_remote_code).save_pretrained(directory)


def run_trial(config: TrialConfig, source, on_eval=None, on_progress=None, cache=None,
              after_prepare: Callable[[Prepared], None] | None = None,
              on_restart: Callable[[TrialConfig, str], None] | None = None,
              runtime: Runtime = Runtime(), on_test: Callable[[dict], None] | None = None) -> TrialResult:
    """Prepare and run a trial. An out-of-memory error restarts it from scratch with twice
    the gradient accumulation (half the micro-batch, the same effective batch size), as long
    as the batch size divides; the result records the accumulation used. ``on_test``: the test
    outputs of its best (and last) evaluation's weights when it ends (``test_outputs``)."""
    t0 = time.perf_counter()
    while True:
        p = prepare(config, source, cache, runtime)
        if after_prepare is not None:
            after_prepare(p)
        kept = test_outputs.Kept() if on_test is not None else None

        def evaluated(ev, p=p, kept=kept):
            if kept is not None:
                kept.offer(ev.epoch, ev.score, p.model.named_parameters)
            return on_eval(ev) if on_eval is not None else None

        try:
            res = run_stages(run, p, evaluated, on_progress, t0)   # distill+fine-tune: two stages, else one
            if kept is not None and res.status in ("completed", "stopped"):
                tests = test_outputs.predict_tests(p, source, kept)
                if tests:
                    on_test(tests)
            res.grad_accum = config.grad_accum
            if config.grad_accum > 1:
                res.note = (res.note + "; " if res.note else "") + (
                    f"out of memory at micro-batch {config.batch_size // (config.grad_accum // 2)}: ran with gradient "
                    f"accumulation {config.grad_accum} (micro-batch {config.batch_size // config.grad_accum}, "
                    f"effective batch {config.batch_size})")
            return res
        except Exception as e:
            nxt = config.grad_accum * 2
            if not is_out_of_memory(e) or nxt > config.batch_size or config.batch_size % nxt:
                raise
            oom = str(e).splitlines()[0] if str(e) else type(e).__name__
        # Outside the except block: its traceback no longer holds the failed step's tensors.
        del p
        free_memory()
        config = config.replace(grad_accum=config.grad_accum * 2)
        if on_restart is not None:
            on_restart(config, oom)
