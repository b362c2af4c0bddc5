"""The Tune trainable of a fused unit (``units.plan_units``): one Tune trial trains its members
as one stacked model (``fused.run_unit``) and reports every member's evaluations, each tagged
with its ``member`` index, so that the recorder writes each member's record exactly as its solo
trial's. With grouped ASHA each member's evaluation is judged on its own (``asha.Judge``): a
stopped member leaves the stack (its report says ``stopped``), the others go on; a retried unit
leaves out the members stopped before. A member that diverged reports once more at the end to
say so."""

from __future__ import annotations

import json

import ray
from ray import tune

from ..fused import run_unit
from ..runner import run_trial
from . import hooks
from .asha import STATUS, Judge
from .dashboard import log_evaluation
from .jobs import trial_of
from .shipping import Shipment, ShippedSource, soft_labels_file, use_vocab


def unit_trainable(config: dict, shipment: Shipment, judge: Judge) -> None:
    from .trainable import placement   # (trainable imports this module)

    trials = [trial_of({**config, "trial": m}) for m in config["trial"]["members"]]
    hooks.call("trial_start", trials[0])
    gone = judge.stopped(len(trials))
    todo = [i for i in range(len(trials)) if not gone[i]]
    if not todo:
        return
    node = ray.get_runtime_context().get_node_id()
    state = {"n_params": 0, "n_train": 0, "last": [None] * len(trials), "accum": [1] * len(trials),
             "restarts": [0] * len(trials)}

    def after_prepare(p):
        state["n_params"] = sum(x.numel() for x in p.model.parameters())
        state["n_train"] = len(p.train)
        hooks.call("after_prepare", trials[0], p)

    def base(i: int) -> dict:
        return {"n_params": state["n_params"], "train_examples": state["n_train"], "node": node,
                "grad_accum": state["accum"][i], "restarts": state["restarts"][i], "member": i}

    def on_restart(positions: list[int], why: str, grad_accum: int) -> None:
        for k in positions:   # out of memory: these members train again from the start
            i = todo[k]
            state["accum"][i], state["restarts"][i], state["last"][i] = grad_accum, state["restarts"][i] + 1, None

    def on_eval(i: int):
        def report(ev):
            state["last"][i] = ev
            log_evaluation(trials[i], ev)
            go = judge.goes_on(trials[i].group, i, ev.epoch, ev.score)
            tune.report({"score": ev.score, "epoch": ev.epoch, "step": ev.step, "trial_status": STATUS[go],
                         "eval_json": json.dumps(vars(ev)), **base(i)})
            return go   # False: this member leaves the stack
        return report

    use_vocab(shipment)
    runtime, source = placement(soft_labels=soft_labels_file(shipment, trials[0].config.task)), ShippedSource(shipment)
    if runtime.soft_labels:   # distillation: the stacked model has no soft-label loss, members run alone
        results = [run_trial(trials[i].config, source, on_eval=on_eval(i), after_prepare=after_prepare,
                             runtime=runtime) for i in todo]
    else:
        results = run_unit([trials[i].config for i in todo], source, on_evals=[on_eval(i) for i in todo],
                           runtime=runtime, after_prepare=after_prepare, on_restart=on_restart)
    for i, res in zip(todo, results):
        if res.status == "diverged" or state["restarts"][i]:
            report_end(res, state["last"][i], base(i))


def report_end(res, last, base: dict) -> None:
    """The last report of a trial (or member) that diverged, or that ran out of memory and went
    on (restarted): its status or note for the record, after its last evaluation ``last``."""
    diverged = res.status == "diverged"
    tune.report({"score": last.score if last and not diverged else float("-inf"),
                 "epoch": last.epoch if last else 0.0, "step": res.steps,
                 "trial_status": "diverged" if diverged else "note", "note": res.note, **base})
