"""A fused unit: K trials that differ only in their learning rate and seed, trained as one stacked model.

The trials of one (model, task, batch size, seed, ...) cell see the same batches in the same
order (the order follows the seed and the batch size alone), start from the same weights (the
same seed builds the same classifier head) and differ only in the learning rate. Trials of
several seeds join one unit too: each seed's members start from that seed's weights, take its
batches and draw its dropout masks (``seeds``: each seed's members adjacent in the stack, run on
their own batch). So they
train as one ``stacked.StackedBert``: one forward and backward pass per step for all members, one
``adamw.StackedAdamW`` step with each member's learning rate and gradient clipping. The members
are evaluated together (``evaluation.Evaluator``: one stacked forward per dev batch, each
member's metrics by the solo trial's code) and each member's evaluations go to its own
callback, so each member yields the ``TrialResult`` its solo trial would. A member whose loss
turns NaN or infinite, or whose callback returns False, leaves the stack; the others go on. A
member that diverged is told at once (``on_left``), not when the unit ends, so that its final
status is recorded even if the unit is stopped or fails later.

On a GPU the step never waits for the host: the training rows are on the device and each batch
is gathered there (``batches.DeviceRows``, padded as a solo trial's), the step
(``fused_step``) reads nothing back and lifts no Python number (the schedule's factor and the
learning rates are device tensors), and losses accumulate on the device and are checked for NaN
every ``check_every`` steps and at evaluations (on CPU every step, as a solo trial does). With
``TrialConfig.compile`` the step is compiled (``train.step.compiled``); the word-embedding
gradient is then the embedding's own and AdamW the foreach arithmetic. Its graphs hold the
unit's own optimizer and model objects, so a later unit compiles its own (a solo step's are reused).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..config import Runtime, TrialConfig
from ..errors import UserError
from ..train import runner, test_outputs
from ..train.batches import DeviceRows
from ..train.step import Schedule, compiled
from ..train.device import free_memory, is_out_of_memory, keep_large_blocks, precision, use_bf16
from .adamw import StackedAdamW
from .evaluation import Evaluator
from .seeds import Seeds
from .stacked import WORDS, StackedBert, Vocabulary, WordGrads, member, stack_parameters, stackable
from ..spec.units import unit_key

GPU_CHECK_EVERY = 25   # steps between NaN checks on a GPU (each check waits for the device)
STACK_ALL_WORDS = False   # True stacks every word-embedding row (bench/fused.py measures the difference)


def check_unit(configs: list[TrialConfig]) -> None:
    if not configs:
        raise UserError("a fused unit needs at least one trial")
    if len({unit_key(c) for c in configs}) > 1:
        raise UserError("the trials of a fused unit may differ only in their learning rate and "
                        "(when they do not compile their step) their seed")


@dataclass
class _Member:
    config: TrialConfig
    on_eval: Callable | None
    result: runner.TrialResult
    row: int                          # position in the stack while it trains
    loss_count: int = 0
    left_at: float | None = None      # unit training seconds when it left
    eval_s: float = 0.0               # seconds of the unit's evaluations while it trained
    seen: int = 0
    kept: test_outputs.Kept | None = None   # its best and last evaluation's weights on the host (test outputs)


class _Unit:
    def __init__(self, p: runner.Prepared, configs: list[TrialConfig], on_evals, t_start: float,
                 check_every: int | None, backend: str | None = None, on_left: Callable | None = None):
        self.p, self.t_start, self.on_left = p, t_start, on_left
        n_params = sum(x.numel() for x in p.model.parameters())
        self.seeds = Seeds(p, configs)   # several seeds: each one's model, batch order and dropout stream
        self.members = [_Member(c, (on_evals or [None] * len(configs))[i],
                                runner.TrialResult(status="completed", n_params=n_params,
                                                   train_examples=len(p.train)), self.seeds.row_of[i])
                        for i, c in enumerate(configs)]
        by_row = sorted(self.members, key=lambda m: m.row)
        word_weight = dict(p.model.named_parameters())[WORDS]
        trains_words = word_weight.requires_grad
        others = [dict(m.named_parameters())[WORDS] for m in self.seeds.models[1:]]
        self.words = (Vocabulary(p.train.input_ids, word_weight, len(configs), others, self.seeds.group)
                      if trains_words and not STACK_ALL_WORDS else None)
        self.train = self.words.compact(p.train) if self.words is not None else p.train
        self.params = stack_parameters(p.model, len(configs), self.words, self.seeds.models, self.seeds.group)
        self.seeds.models = None
        decayed = {n for n, t in p.model.named_parameters() if t.requires_grad and not runner.no_decay(n, t)}
        compile_ = p.config.compile
        self.opt = StackedAdamW(self.params, [m.config.learning_rate for m in by_row], decayed, p.config.weight_decay,
                                fused=False if compile_ else None)
        self.words_wd = p.config.weight_decay if WORDS in decayed else 0.0
        self.net = StackedBert(p.model.config, p.task.num_labels)
        if trains_words and not compile_:
            self.net.word_grads = WordGrads()
        self.step_fn = (compiled("fused", fused_step, f"{p.model.config.to_json_string(use_diff=False)}", p.device,
                                 backend) if compile_ else fused_step)
        self.loss_sum = torch.zeros(len(configs), dtype=torch.float64, device=p.device)
        self.check_every = check_every or (1 if p.device.type == "cpu" else GPU_CHECK_EVERY)
        self.bad = torch.zeros(len(configs), dtype=torch.bool, device=p.device)
        # bf16 where the GPU has it, else fp32 (fp16 would need a loss scale per member)
        self.autocast = precision(p.device)[1] if use_bf16(p.device) else contextlib.nullcontext
        self.eval_autocast = runner.autocast_for(p.device)
        self.scorer = Evaluator(p, self.words)
        self.train_s0: float | None = None
        self.eval_total = 0.0             # seconds spent in evaluations

    @property
    def alive(self) -> list[_Member]:
        """The members still in the stack, in row order (several seeds: rows in seed order)."""
        return sorted((m for m in self.members if m.row >= 0), key=lambda m: m.row)

    def now(self) -> float:
        """Training seconds so far (evaluations excluded)."""
        return time.perf_counter() - self.train_s0 - self.eval_total

    def train_step(self, parts, schedule: Schedule) -> torch.Tensor:
        """One step of every member on one batch (micro-batches ``parts``); each member's mean loss, [K]."""
        losses = self.step_fn(self.net, self.params, self.opt, self.words, self.words_wd, schedule.factor, parts,
                              self.p.config.max_grad_norm, self.autocast)
        schedule.advance()   # outside a compiled step: the schedule's length is the trial's
        return losses

    def leave(self, members: list[_Member], status: str, note: str = "") -> None:
        for m in members:
            m.result.status, m.result.note = status, note or m.result.note
            m.left_at = self.now() if self.train_s0 is not None else 0.0
        stay = [m for m in self.alive if m not in members]   # in row order: each seed's members stay adjacent
        rows = [m.row for m in stay]
        for m in members:
            m.row = -1
        if stay:
            self.opt.keep(rows)
            self.seeds.keep(rows)
            if self.words is not None:
                self.words.keep(rows)
            idx = torch.tensor(rows, device=self.p.device)
            self.loss_sum, self.bad = self.loss_sum.index_select(0, idx), self.bad.index_select(0, idx)
        for i, m in enumerate(stay):
            m.row = i
        if self.on_left is not None and status == "diverged":
            for m in members:
                self.on_left(next(i for i, x in enumerate(self.members) if x is m), m.result)

    def check_finite(self, batch_losses: torch.Tensor, step: int) -> torch.Tensor:
        """Members whose loss went NaN or infinite leave the stack (this waits for the device);
        returns the losses of those that stay."""
        self.bad |= ~torch.isfinite(batch_losses)
        flags = self.bad.tolist()
        if not any(flags):
            return batch_losses
        values = batch_losses.tolist()
        where = f"at step {step + 1}" if self.check_every == 1 else f"by step {step + 1}"
        keep = [m.row for m in self.alive if not flags[m.row]]
        for m in [m for m in self.alive if flags[m.row]]:
            self.leave([m], "diverged", f"loss became {values[m.row]} {where}")
        return batch_losses.index_select(0, torch.tensor(keep, dtype=torch.long, device=batch_losses.device))

    def evaluate(self, step: int, steps_per_epoch: int) -> None:
        """Score every member still training (all at once); each evaluation goes to its own callback."""
        means = (self.loss_sum / max(1, self.alive[0].loss_count if self.alive else 1)).tolist()
        t0 = time.perf_counter()
        train_s = round(t0 - self.train_s0 - self.eval_total, 3)
        scores = self.scorer.evaluate_outputs(self.params, self.eval_autocast)
        spent = time.perf_counter() - t0
        self.eval_total += spent
        stopped = []
        for m in self.alive:
            metrics, score, outs = scores[m.row]
            m.eval_s += spent
            ev = runner.Evaluation(epoch=round(step / steps_per_epoch, 4), step=step, metrics=metrics, score=score,
                              train_loss=means[m.row], elapsed_s=round(time.perf_counter() - self.t_start, 3),
                                      train_s=train_s)
            ev.outputs = runner.stored_outputs(outs)
            m.result.evals.append(ev)
            if m.kept is not None:
                m.kept.offer(ev.epoch, score, lambda m=m: member(self.p.model, self.params, m.row, self.words).items())
            if m.on_eval is not None and m.on_eval(ev) is False:
                stopped.append(m)
        self.loss_sum.zero_()
        for m in self.members:
            m.loss_count = 0
        if stopped:
            self.leave(stopped, "stopped")


def fused_step(net: StackedBert, params: dict, opt: StackedAdamW, words: Vocabulary | None, words_wd: float,
               factor: torch.Tensor, parts, max_grad_norm: float, autocast=contextlib.nullcontext) -> torch.Tensor:
    """One optimizer step of a stacked unit on one batch given as micro-batches ``parts``
    ((inputs, labels, share of the batch) each): every member's gradients, its own clipping, AdamW
    at its learning rate times the schedule's ``factor`` (a device tensor), the untrained word
    rows' decay. Returns each member's mean loss, [K], a device tensor."""
    total = None
    for batch, labels, share in parts:
        with autocast():
            losses = net.losses(params, batch, labels)
        (losses * share).sum().backward()
        part = losses.detach().double() * share
        total = part if total is None else total + part
    if net.word_grads is not None:
        params[WORDS].grad = net.word_grads.grad(params[WORDS])
    opt.clip_(max_grad_norm)
    opt.step(factor)
    if words is not None:
        words.decay(opt.lr, words_wd)
    opt.zero_grad()
    return total


def _train(u: _Unit, on_progress) -> int:
    p, cfg = u.p, u.p.config
    steps_per_epoch, total_steps, eval_every = runner.schedule(cfg, len(p.train))
    sched = Schedule(total_steps, cfg.warmup_ratio, p.device)
    data = DeviceRows(u.train, p.use_token_types, p.device)
    rngs, micro, step = [np.random.default_rng(s) for s in u.seeds.order], cfg.batch_size // cfg.grad_accum, 0
    while step < total_steps and u.alive:
        for batches in u.seeds.epochs(p, data, rngs):   # each seed's (rows, width)
            if u.train_s0 is None:
                u.train_s0 = time.perf_counter()
                for m in u.members:
                    m.result.startup_s = round(u.train_s0 - u.t_start, 3)
            parts = u.seeds.parts(data, batches, micro) if u.seeds.many else data.parts(*batches[0], micro)
            losses = u.train_step(parts, sched)
            end_of_epoch = (step + 1) % steps_per_epoch == 0 or step + 1 == total_steps
            evaluating = end_of_epoch or bool(eval_every and (step + 1) % eval_every == 0)
            if (step + 1) % u.check_every == 0 or evaluating:
                losses = u.check_finite(losses, step)   # a member that diverged leaves (its step discarded with it)
                if not u.alive:
                    break
            else:
                u.bad |= ~torch.isfinite(losses)
            step += 1
            u.loss_sum += losses
            for m in u.alive:
                m.loss_count, m.seen, m.result.steps = m.loss_count + 1, m.seen + u.seeds.rows_of(batches, m.row), step
            if on_progress is not None and on_progress(step, total_steps, losses) is False:
                u.leave(u.alive, "stopped")
            if evaluating and u.alive:
                u.evaluate(step, steps_per_epoch)
            if step >= total_steps or not u.alive:
                break
    return step


def run_fused(p: runner.Prepared, configs: list[TrialConfig], on_evals: list[Callable] | None = None,
              on_progress: Callable | None = None, t_start: float | None = None,
              check_every: int | None = None, backend: str | None = None,
              on_left: Callable[[int, runner.TrialResult], None] | None = None,
              on_unit: Callable[["_Unit"], None] | None = None,
              on_tests: list[Callable | None] | None = None, source=None) -> list[runner.TrialResult]:
    """Train the members ``configs`` (``p`` prepared for the first; the members of its seed share
    its weights and batches, those of another seed start from that seed's) as one stacked model. Returns each member's ``TrialResult``, in order. ``backend``:
    ``torch.compile``'s, when the trials compile their step (default inductor). ``on_left(position,
    result)``: a member diverged and left the stack (its result is final but for its timings).
    ``on_unit(unit)``: the stacked unit, built, before its first step (fault-injection hooks).
    ``on_tests[i]``: member i's test outputs (``test_outputs``; its data from ``source``) once the
    unit ends."""
    check_unit([p.config, *configs])
    if not stackable(p.model):
        raise UserError(f"model {p.config.model} is not a BERT classifier: it cannot be fused")
    if p.loss_fn is not None:
        raise UserError("a fused unit has no distillation loss: distilled trials run alone")
    if p.runtime.save_dir:
        raise UserError("a fused unit does not save models: run the trial alone to keep its weights")
    if p.device.type == "cpu":
        keep_large_blocks()
    u = _Unit(p, configs, on_evals, time.perf_counter() if t_start is None else t_start, check_every, backend,
              on_left)
    if on_unit is not None:
        on_unit(u)
    for m, tell in zip(u.members, on_tests or []):
        m.kept = test_outputs.Kept() if tell is not None else None
    u.p.model.train()
    _train(u, on_progress)
    end = u.now() if u.train_s0 is not None else 0.0
    for m in u.members:
        res = m.result
        res.eval_s = round(m.eval_s, 3)
        res.train_s = round(max(0.0, m.left_at if m.left_at is not None else end), 3)
        res.examples_per_s = round(m.seen / res.train_s, 2) if res.train_s > 0 else 0.0
    for m, tell in zip(u.members, on_tests or []):
        if tell is not None and m.kept is not None and m.result.status in ("completed", "stopped"):
            tests = test_outputs.predict_tests(p, source, m.kept)   # its weights into the solo model, one by one
            if tests:
                tell(tests)
    return [m.result for m in u.members]


def run_unit(configs: list[TrialConfig], source, on_evals: list[Callable] | None = None, cache=None,
             runtime: Runtime = Runtime(), on_progress: Callable | None = None,
             after_prepare: Callable[[runner.Prepared], None] | None = None,
             on_restart: Callable[[list[int], str, int], None] | None = None,
             on_left: Callable[[int, runner.TrialResult], None] | None = None,
             on_unit: Callable[["_Unit"], None] | None = None,
             on_tests: list[Callable | None] | None = None) -> list[runner.TrialResult]:
    """Prepare the unit (data, tokenizer and the first member's model: every member of its seed
    starts from it, as each member's own seed would build it; another seed's model is built as
    its solo trial builds it) and train it.

    Out of memory, the unit is split in two halves, each trained afresh from the start; a
    member left alone runs as its solo trial (``runner.run_trial``: it halves its micro-batch
    next, keeping the effective batch). ``on_restart(members, why, grad_accum)`` is told first,
    with the positions of the members that start again (and the gradient accumulation they
    start with), so their earlier evaluations can be discarded. ``on_left`` and ``on_unit``: as
    ``run_fused``'s (positions in ``configs``; a member left alone by a split is a solo trial,
    whose end its caller sees)."""
    t0 = time.perf_counter()
    check_unit(configs)
    on_evals = list(on_evals or [None] * len(configs))
    p = runner.prepare(configs[0], source, cache, runtime)
    if after_prepare is not None:
        after_prepare(p)
    try:
        return run_fused(p, configs, on_evals, on_progress, t_start=t0, on_left=on_left, on_unit=on_unit,
                         on_tests=on_tests, source=source)
    except Exception as e:   # noqa: BLE001 (anything but out-of-memory is raised again)
        if not is_out_of_memory(e):
            raise
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
    del p   # outside the except block: its traceback no longer holds the failed step's tensors
    free_memory()
    return _split(configs, source, on_evals, cache, runtime, on_progress, after_prepare, on_restart, why,
                  on_left, on_unit, on_tests)


def _split(configs, source, on_evals, cache, runtime, on_progress, after_prepare, on_restart,
           why, on_left=None, on_unit=None, on_tests=None) -> list[runner.TrialResult]:
    on_tests = list(on_tests or [None] * len(configs))
    half = (len(configs) + 1) // 2
    results: list[runner.TrialResult] = []
    for lo, hi in ((0, half), (half, len(configs))):
        if lo == hi:
            continue
        if on_restart is not None:
            on_restart(list(range(lo, hi)), why, configs[lo].grad_accum)
        tell = None if on_restart is None else (lambda ms, w, a, lo=lo: on_restart([lo + m for m in ms], w, a))
        if hi - lo == 1:
            part = [runner.run_trial(configs[lo], source, on_eval=on_evals[lo], cache=cache, runtime=runtime,
                                after_prepare=after_prepare, on_test=on_tests[lo],
                                on_restart=None if tell is None else (lambda c, w, tell=tell: tell([0], w, c.grad_accum)))]
        else:
            left = None if on_left is None else (lambda k, res, lo=lo: on_left(lo + k, res))
            part = run_unit(configs[lo:hi], source, on_evals[lo:hi], cache, runtime, on_progress, after_prepare, tell,
                            left, on_unit, on_tests[lo:hi])
        for res in part:
            res.note = "; ".join(x for x in (f"out of memory with {len(configs)} members fused ({why}): trained in "
                                             f"units of {hi - lo}", res.note) if x)
        results += part
    return results


def training_unit(p: runner.Prepared, configs: list[TrialConfig], backend: str | None = None) -> _Unit:
    """A fused unit ready to take steps (``unit.train_step(parts, schedule)``), for tests and benchmarks."""
    check_unit([p.config, *configs])
    return _Unit(p, configs, None, time.perf_counter(), None, backend)
