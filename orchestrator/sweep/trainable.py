"""The Tune trainable, run in a Ray worker: a thin function around the trial runner (one trial)
or the fused loop (a unit of members, ``spec.units.plan_units``), and the one reporter both use.

Every dev evaluation is reported (``tune.report``) with the evaluation itself as JSON, which
the driver's recorder turns into the trial's record. A fused unit reports every member's
evaluations, each tagged with its ``member`` index, so that the recorder writes each member's
record exactly as its solo trial's. With grouped ASHA the trial (each member on its own) asks
the sweep's keeper after each evaluation (``asha.Judge``) and ends when told to stop (a stopped
member leaves the stack, the others go on; a retried unit leaves out the members stopped
before); the report then says ``stopped``. A trial or member that diverged, or that was
restarted after running out of memory, reports once more at the end to say so (a member that
diverged, the moment it leaves the stack, so its record is final however the unit ends).

A fault of one member of a unit stays that member's where it can be told apart: a member whose
start fails (``hooks.trial_start`` raises) is reported ``failed`` with its error and the others
train (the same command retries it; a unit whose every member fails raises, so Tune retries it
as it retries a solo trial). An error of the stacked step itself fails the unit: Tune retries it,
and the members already ended (stopped, diverged, failed) keep their records.

The data come with the trial (``shipping.Shipment``, through ``tune.with_parameters``), and a
trial with no GPU reserved runs on the CPU whatever the node has (Ray does not hide the GPUs
from a worker that reserved none).

A worker runs trial after trial (the driver reuses actors): torch, the tokenizer, the features
and the CUDA context stay warm between trials. For the Ray dashboard (:mod:`.dashboard`): a
worker announces each trial it starts, and each evaluation is a line of the worker's log and a
``ray.util.metrics`` gauge labelled with the trial.
"""

from __future__ import annotations

import json

import ray
from ray import tune

from ..config import Runtime, Trial
from ..fused.loop import run_unit
from ..train.runner import run_trial
from . import hooks, mps
from .asha import STATUS, Judge
from .dashboard import announce, log_evaluation
from .shipping import Shipment, ShippedSource, soft_labels_file, use_models, use_vocab
from .tune_jobs import trial_of


def warm_up() -> None:
    """Ray's ``worker_process_setup_hook`` (``cluster.start_ray``): a worker process imports this
    module (torch, transformers, the runner) as soon as it starts, while the driver is still
    setting up, so a trial placed on it starts without paying for the imports."""


def placement(soft_labels: str | None = None) -> Runtime:
    """Device, threads and GPU share of this worker from what Ray reserved for it: no GPU
    reserved, the CPU; a fraction of a GPU, its memory capped at that fraction and, where NVIDIA
    MPS runs, its threads too (set here, before the worker's first CUDA call)."""
    assigned = ray.get_runtime_context().get_assigned_resources()
    cpus, gpu = assigned.get("CPU", 1), assigned.get("GPU", 0)
    if ray.get_gpu_ids():
        mps.apply_share(gpu)
    return Runtime(device=None if ray.get_gpu_ids() else "cpu", threads=max(1, int(cpus)), soft_labels=soft_labels,
                   gpu_share=gpu if 0 < gpu < 1 else None)


def member_key(cfg) -> tuple[float, int]:
    """What tells the members of one fused unit apart: learning rate and seed."""
    return cfg.learning_rate, cfg.seed


class Reporter:
    """What one Tune trial reports: the evaluations of its trial, or of each member of its fused
    unit (``fused``: reports carry ``member`` and ``restarts``), each judged by grouped ASHA."""

    def __init__(self, trials: list[Trial], judge: Judge, fused: bool):
        self.trials, self.judge, self.fused = trials, judge, fused
        self.node = ray.get_runtime_context().get_node_id()
        self.n_params = self.n_train = 0
        n = len(trials)
        self.last, self.accum, self.restarts = [None] * n, [1] * n, [0] * n
        self.ended: set[int] = set()   # members whose last report is made
        self.by_key = {member_key(t.config): t for t in trials}   # a unit's members differ only in these

    def after_prepare(self, p) -> None:
        self.n_params = sum(x.numel() for x in p.model.parameters())
        self.n_train = len(p.train)
        # a unit's first member, or a member trained alone (distillation, a split unit, restarted)
        hooks.call("after_prepare", self.by_key.get(member_key(p.config), self.trials[0]), p)

    def unit_ready(self, unit) -> None:
        """The stacked unit is built: the hooks see it with its members' trials, in stack order."""
        hooks.call("unit_ready", [self.by_key[member_key(m.config)] for m in unit.members], unit)

    def base(self, i: int) -> dict:
        out = {"n_params": self.n_params, "train_examples": self.n_train, "node": self.node,
               "grad_accum": self.accum[i]}
        if self.fused:
            out.update(restarts=self.restarts[i], member=i)
        return out

    def on_eval(self, i: int):
        def report(ev) -> bool:
            self.last[i] = ev
            log_evaluation(self.trials[i], ev)
            go = self.judge.goes_on(self.trials[i].group, i, ev.epoch, ev.score)
            tune.report({"score": ev.score, "epoch": ev.epoch, "step": ev.step, "trial_status": STATUS[go],
                         "eval_json": json.dumps(ev.as_dict()), **self.base(i),
                         **({"outputs": ev.outputs} if ev.outputs else {})})   # the recorder stores them
            return go   # False: stopped early (grouped ASHA); a member leaves the stack
        return report

    def on_test(self, i: int):
        def report(tests: dict) -> None:
            """The test outputs of trial ``i``'s kept weights (after its last evaluation): the recorder stores them."""
            last = self.last[i]
            tune.report({"score": last.score if last else float("-inf"), "epoch": last.epoch if last else 0.0,
                         "step": last.step if last else 0, "trial_status": "test", "outputs": tests, **self.base(i)})
        return report

    def restarted(self, i: int, grad_accum: int) -> None:
        """Out of memory: trial ``i`` goes on with ``grad_accum`` micro-batches (the recorder starts
        its evaluations afresh); a member trains again from the start."""
        self.accum[i] = grad_accum
        if self.fused:
            self.restarts[i], self.last[i] = self.restarts[i] + 1, None

    def failed(self, i: int, error: BaseException) -> None:
        """Member ``i`` of a unit failed on its own (the others go on): its record says so."""
        self.ended.add(i)
        line = (str(error).strip().splitlines() or [""])[0]
        tune.report({"score": float("-inf"), "epoch": 0.0, "step": 0, "trial_status": "failed",
                     "note": f"{type(error).__name__}: {line}"[:500], **self.base(i)})

    def end(self, i: int, res) -> None:
        """The last report of a trial (or member) that diverged, or that ran out of memory and went
        on (restarted): its status or note for the record, after its last evaluation."""
        went_on = self.restarts[i] > 0 if self.fused else res.grad_accum > 1
        if i in self.ended or (res.status != "diverged" and not went_on):
            return
        self.ended.add(i)
        last, diverged = self.last[i], res.status == "diverged"
        tune.report({"score": last.score if last and not diverged else float("-inf"),
                     "epoch": last.epoch if last else 0.0, "step": res.steps,
                     "trial_status": "diverged" if diverged else "note", "note": res.note, **self.base(i)})


def trainable(config: dict, shipment: Shipment, keeper: str | None = None) -> None:
    """``keeper``: the name of grouped ASHA's keeper (``asha.start_keeper``), None without a scheduler."""
    judge = Judge(keeper, tune.get_context().get_trial_id())
    if config["trial"].get("members"):
        return unit_trainable(config, shipment, judge)
    trial = trial_of(config)
    announce([trial])
    hooks.call("trial_start", trial)
    rep = Reporter([trial], judge, fused=False)
    use_vocab(shipment)
    use_models(shipment)
    runtime = placement(soft_labels=soft_labels_file(shipment, trial.config.task))
    res = run_trial(trial.config, ShippedSource(shipment), on_eval=rep.on_eval(0), after_prepare=rep.after_prepare,
                    on_restart=lambda new_cfg, why: rep.restarted(0, new_cfg.grad_accum), runtime=runtime,
                    on_test=rep.on_test(0))
    rep.end(0, res)
    hooks.call("trial_end", trial, res)


def unit_trainable(config: dict, shipment: Shipment, judge: Judge) -> None:
    """A fused unit: its members trained as one stacked model (``fused.loop.run_unit``)."""
    trials = [trial_of({**config, "trial": m}) for m in config["trial"]["members"]]
    announce(trials)
    gone = judge.stopped(len(trials))
    todo = [i for i in range(len(trials)) if not gone[i]]
    if not todo:
        return
    rep = Reporter(trials, judge, fused=True)
    errors = {}
    for i in todo:   # each member's own start: one that fails leaves the unit, the others go on
        try:
            hooks.call("trial_start", trials[i])
        except Exception as e:   # noqa: BLE001 (recorded as the member's error)
            errors[i] = e
    if len(errors) == len(todo):   # nothing left to train: the unit fails as a solo trial would
        raise errors[todo[0]]
    for i, e in errors.items():
        rep.failed(i, e)
    todo = [i for i in todo if i not in errors]

    def on_restart(positions: list[int], why: str, grad_accum: int) -> None:
        for k in positions:
            rep.restarted(todo[k], grad_accum)

    use_vocab(shipment)
    use_models(shipment)   # as a solo trial does: shipped model files found first on a node without them
    runtime, source = placement(soft_labels=soft_labels_file(shipment, trials[0].config.task)), ShippedSource(shipment)
    if runtime.soft_labels:   # distillation: the stacked model has no soft-label loss, members run alone
        results = [run_trial(trials[i].config, source, on_eval=rep.on_eval(i), after_prepare=rep.after_prepare,
                             runtime=runtime, on_test=rep.on_test(i)) for i in todo]
    else:
        results = run_unit([trials[i].config for i in todo], source, on_evals=[rep.on_eval(i) for i in todo],
                           runtime=runtime, after_prepare=rep.after_prepare, on_restart=on_restart,
                           on_left=lambda k, res: rep.end(todo[k], res), on_unit=rep.unit_ready,
                           on_tests=[rep.on_test(i) for i in todo])
    for i, res in zip(todo, results):
        rep.end(i, res)
        hooks.call("trial_end", trials[i], res)
