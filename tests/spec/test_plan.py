"""``glue-sweep plan``'s compute lines (orchestrator/spec/plan.py): the FLOP count and the cost
model's range on one H100 with its assumptions."""

from __future__ import annotations

import re

from orchestrator.spec import cost as C, plan
from orchestrator.spec.sweep import parse

ESTIMATE = re.compile(r"estimate: ([\d.,]+)-([\d.,]+) H100-hours \(point ([\d.,]+)\) on one H100 \(")


def test_plan_prints_the_range_and_its_assumptions():
    sweep = parse("name: x\nmodels: [BERT-Tiny]\ntasks: [RTE]\nsearch: {batch_size: [32], learning_rate: [1e-4, 3e-5]}\n"
                  "fuse: off\n")
    text = plan.render(sweep)
    lines = [x for x in text.splitlines() if "estimate:" in x]
    assert len(lines) == 1
    m = ESTIMATE.search(lines[0])
    assert m, lines[0]
    assert "assumptions: host time 5-15 us (10 us) per operator call" in lines[0]
    assert "fuse off, without early stopping" in lines[0] and "with fuse: auto" in lines[0]
    c = plan.cost_estimate(sweep)
    assert c["items"] == 2 and c["low"] <= c["point"] <= c["high"]
    assert plan.cost_estimate(sweep, fuse="auto")["items"] == 1
    assert "compute: about" in text and "H100-hours at 30%" not in text


def test_early_stopping_and_unknown_sizes():
    asha = parse("name: x\nmodels: [BERT-Tiny]\ntasks: [RTE]\nscheduler: asha\n")
    assert "with ideal ASHA halving" in plan.cost_line(asha)
    full, es = plan.cost_estimate(asha, early_stopping=False), plan.cost_estimate(asha)
    assert es["early_stopping"] and es["point"] < full["point"]
    unknown = parse("name: x\nmodels: [org/unknown-model, BERT-Tiny]\ntasks: [RTE]\n")
    assert "sizes unknown for org/unknown-model, left out" in plan.cost_line(unknown)
    assert plan.cost_estimate(unknown)["items"] == 5   # fuse: auto (a grid's default): 5 units of 4 learning rates
    assert plan.cost_estimate(unknown, fuse="off")["items"] == 20


def test_the_plan_uses_the_cost_models_defaults():
    sweep = parse("name: x\nmodels: [BERT-Tiny]\ntasks: [RTE]\nsearch: {batch_size: [32], learning_rate: [1e-4]}\n")
    works, firsts, _ = C.works_of(sweep)
    c = plan.cost_estimate(sweep)
    assert c["point"] == C.gpu_hours(works, [0.125], C.POINT)["hours"]
    more = plan.cost_estimate(sweep, calls=(C.Calls(2 * 115, 2 * 190), C.FUSED_CALLS))
    assert more["point"] > c["point"]


def test_the_stored_outputs_estimate_is_what_the_store_writes():
    import numpy as np

    from orchestrator.spec import plan as P
    from orchestrator.spec.sweep import parse
    from orchestrator.store.outputs import pack

    sw = parse("name: x\nmodels: [BERT-Tiny]\ntasks: [SST-2, MNLI, STS-B]\nsearch: {batch_size: [32], learning_rate: [1e-4]}\n"
               "epochs: 2\n")
    written = 0
    for t in sw.trials():
        from orchestrator.registry.tasks import get_task
        task = get_task(t.config.task)
        shape = (lambda rows: (rows,)) if task.is_regression else (lambda rows: (rows, task.num_labels))
        rng = np.random.default_rng(0)
        written += len(pack({f"{e}": {s.name: rng.random(shape(s.rows)).astype(np.float16) for s in task.eval_splits}
                             for e in (1, 2)}))
    assert 0.7 * P.outputs_bytes(sw.trials()) < written <= P.outputs_bytes(sw.trials())   # compression saves a little
    assert "stored dev outputs" in P.render(sw)
