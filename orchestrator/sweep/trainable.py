"""The Tune trainable: a thin function around the trial runner, run in a Ray worker.

Every dev evaluation is reported (``tune.report``) with the evaluation itself as JSON, which
the driver's recorder turns into the trial's record. With grouped ASHA the trial asks the
sweep's keeper after each evaluation (``asha.Judge``) and ends when told to stop; the report
then says ``stopped``. A diverged trial, or one restarted after
running out of memory, reports once more at the end to say so.

The data come with the trial (``shipping.Shipment``, through ``tune.with_parameters``), and a
trial with no GPU reserved runs on the CPU whatever the node has (Ray does not hide the GPUs
from a worker that reserved none).

For the Ray dashboard (:mod:`.dashboard`): the trial's actor is named after the trial, each
evaluation is a line of the worker's log and a ``ray.util.metrics`` gauge.
"""

from __future__ import annotations

import json

import ray
from ray import tune

from ..config import Runtime
from ..runner import run_trial
from . import hooks
from .asha import STATUS, Judge
from .dashboard import log_evaluation
from .jobs import trial_of
from .unit import report_end, unit_trainable
from .shipping import Shipment, ShippedSource, soft_labels_file, use_models, use_vocab


def placement(soft_labels: str | None = None) -> Runtime:
    """Device, threads and GPU share of this worker from what Ray reserved for it: no GPU
    reserved, the CPU; a fraction of a GPU, its memory capped at that fraction."""
    assigned = ray.get_runtime_context().get_assigned_resources()
    cpus, gpu = assigned.get("CPU", 1), assigned.get("GPU", 0)
    return Runtime(device=None if ray.get_gpu_ids() else "cpu", threads=max(1, int(cpus)), soft_labels=soft_labels,
                   gpu_share=gpu if 0 < gpu < 1 else None)


def trainable(config: dict, shipment: Shipment, keeper: str | None = None) -> None:
    """``keeper``: the name of grouped ASHA's keeper (``asha.start_keeper``), None without a scheduler."""
    judge = Judge(keeper, tune.get_context().get_trial_id())
    if config["trial"].get("members"):
        return unit_trainable(config, shipment, judge)
    trial = trial_of(config)
    hooks.call("trial_start", trial)
    node = ray.get_runtime_context().get_node_id()
    state = {"last": None, "n_params": 0, "n_train": 0, "accum": 1}

    def after_prepare(p):
        state["n_params"] = sum(x.numel() for x in p.model.parameters())
        state["n_train"] = len(p.train)
        hooks.call("after_prepare", trial, p)

    def base() -> dict:
        return {"n_params": state["n_params"], "train_examples": state["n_train"], "node": node,
                "grad_accum": state["accum"]}

    def on_eval(ev):
        state["last"] = ev
        log_evaluation(trial, ev)
        go = judge.goes_on(trial.group, 0, ev.epoch, ev.score)
        tune.report({"score": ev.score, "epoch": ev.epoch, "step": ev.step, "trial_status": STATUS[go],
                     "eval_json": json.dumps(vars(ev)), **base()})
        return go   # False: stopped early (grouped ASHA)

    def on_restart(new_cfg, why):
        state["accum"] = new_cfg.grad_accum   # the recorder starts the record's evaluations afresh

    use_vocab(shipment)
    use_models(shipment)
    runtime = placement(soft_labels=soft_labels_file(shipment, trial.config.task))
    res = run_trial(trial.config, ShippedSource(shipment), on_eval=on_eval, after_prepare=after_prepare,
                    on_restart=on_restart, runtime=runtime)
    if res.status == "diverged" or res.grad_accum > 1:
        report_end(res, state["last"], base())

