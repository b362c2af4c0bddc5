"""The cost model (orchestrator/spec/cost.py): a step takes the larger of host and device time,
small models are bound by host time, fused units share one step's host time, early stopping,
packing, start-ups, and a range with the point inside it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.config import TrialConfig
from orchestrator.spec.units import plan_units
from orchestrator.spec import cost as C
from orchestrator.spec.sweep import parse


def _work(model: str = "BERT-Tiny", batch: int = 32, members: int = 1, **kw) -> C.Work:
    w = C.work_of(TrialConfig(model=model, task="SST-2", batch_size=batch, learning_rate=1e-4), members=members)
    return replace(w, **kw)


def test_call_fits_reproduce_the_counts():
    # bench.ops' counts (bench/results/ops-cpu.json): solo 495 calls at 2 layers, 2,395 at 12; fused (K = 4) 812, 3,652
    assert (C.SOLO_CALLS(2), C.SOLO_CALLS(12), C.FUSED_CALLS(2), C.FUSED_CALLS(12)) == (495, 2395, 812, 3652)
    solo, fused = C.calls_from({"solo": {"a": 1, "b": 2}, "fused": {"a": 3, "b": 4}})
    assert solo(10) == 21 and fused(10) == 43


def test_small_models_are_bound_by_host_time():
    for a in (C.LOW, C.POINT, C.HIGH):
        host, dev = C.step_seconds(_work("BERT-Tiny", 8), a)
        assert host > dev
        assert host == pytest.approx(495 * a.call_us * 1e-6)
    assert C.utilisation(_work("BERT-Tiny", 8)) < 0.2
    # BERT-Base at batch 128 on long MNLI rows: the device is the bound
    big = C.work_of(TrialConfig(model="BERT-Base", task="MNLI", batch_size=128, learning_rate=1e-4))
    # with every dispatched operator counted (2,395 a step), eager BERT-Base is host bound too at the
    # point assumptions; with a cheap host (CUDA graphs: ~1 us a call) the device is the bound
    assert C.utilisation(big) > 3 * C.utilisation(_work("BERT-Tiny", 8))
    graphs = replace(C.POINT, call_us=1.0)
    host, dev = C.step_seconds(big, graphs)
    assert dev > host and C.utilisation(big, graphs) == 1.0
    assert C.seconds(_work("BERT-Tiny", 8), graphs).host_bound and not C.seconds(big, graphs).host_bound


def test_time_grows_with_steps_and_calls():
    short, long = _work(train_rows=1024), _work(train_rows=4096)
    assert long.steps == 4 * short.steps
    for a in (C.LOW, C.POINT, C.HIGH):
        s, lg = C.seconds(short, a), C.seconds(long, a)
        assert lg.train_wall == pytest.approx(4 * s.train_wall) and lg.wall > s.wall
    assert C.seconds(_work(epochs=4), C.POINT).wall > C.seconds(_work(epochs=2), C.POINT).wall
    # host-bound: twice the operator calls, twice the training time
    base = C.seconds(_work(), C.POINT)
    doubled = C.seconds(_work(), C.POINT, (C.Calls(230, 380), C.FUSED_CALLS))
    assert doubled.train_wall == pytest.approx(2 * base.train_wall)


def test_a_fused_unit_is_cheaper_per_trial_when_host_bound():
    solo, unit = _work("BERT-Mini", 16), _work("BERT-Mini", 16, members=4)
    for a in (C.LOW, C.POINT, C.HIGH):
        s, u = C.seconds(solo, a), C.seconds(unit, a)
        assert u.train_wall < 4 * s.train_wall / 2        # one host time for four members' steps
        assert s.train_busy < u.train_busy < 4 * s.train_busy   # tiny kernels: the floor per call binds
        assert u.eval_wall == pytest.approx(4 * s.eval_wall)   # each member evaluated as its solo trial
        hours = lambda ws: C.gpu_hours(ws, [0.125] * len(ws), a)["hours"]  # noqa: E731
        assert hours([unit]) < hours([solo] * 4)


def test_early_stopping_halves_and_units_keep_stepping():
    sh = C.successive_halving(20, 1, 2, 4)
    assert sh["epochs_run"] == 40 and sh["fraction"] == 0.5
    works = [_work(batch=b) for b in (8, 16, 32, 64)]
    assert C.halving_fractions(works, None, 2) == [1.0] * 4
    assert C.halving_fractions(works, 1, 2) == [0.5] * 4   # 4 configs, grace 1, rf 2, 4 epochs: 8 of 16
    solo = C.seconds(works[0], C.POINT, fraction=0.5)
    assert solo.train_wall == pytest.approx(C.seconds(works[0], C.POINT).train_wall / 2)
    unit = _work(members=4)
    # a unit steps while any member does: its host-bound step time stays, its members' evaluations halve
    assert C.seconds(unit, C.POINT, fraction=0.5).train_wall == pytest.approx(C.seconds(unit, C.POINT).train_wall)
    assert C.seconds(unit, C.POINT, fraction=0.5).eval_busy == pytest.approx(C.seconds(unit, C.POINT).eval_busy / 2)


def test_packing_overlaps_host_time_up_to_the_gpu():
    w = _work("BERT-Tiny", 8)
    alone = C.gpu_hours([w], [1.0], C.POINT)
    eighth = C.gpu_hours([w], [0.125], C.POINT)
    gain = 1 + 7 * C.POINT.packing
    start = C.POINT.worker_s / 3600
    assert eighth["hours"] - start == pytest.approx((alone["hours"] - start) / gain)
    # a device-bound step cannot pack below its device time
    big = C.work_of(TrialConfig(model="BERT-Base", task="MNLI", batch_size=128, learning_rate=1e-4))
    assert C.gpu_hours([big], [0.125], C.POINT)["hours"] - start == pytest.approx(
        C.seconds(big, C.POINT).busy / 3600)
    # a worker set starts each time the share changes in the grid's order
    assert C.gpu_hours([w, w, w], [0.125, 0.125, 0.25], C.POINT)["worker_sets"] == 2


def test_startup_from_the_measured_figures():
    assert C.startup_seconds(4_385_920) == pytest.approx(0.16) and C.startup_seconds(109_482_240) == pytest.approx(1.04)
    assert C.startup_seconds(1e6) == pytest.approx(0.16)
    s = C.seconds(_work(), C.HIGH)
    assert s.start == pytest.approx(0.16 + C.HIGH.trial_gpu_s)


def test_the_range_holds_the_point():
    sweep = parse("name: x\nmodels: [BERT-Tiny, BERT-Medium]\ntasks: [RTE, MRPC]\n")
    for fuse in ("off", "auto"):
        works, firsts, unknown = C.works_of(sweep, fuse)
        assert not unknown and len(firsts) == len(works)
        r = C.estimate_range(works, [0.25] * len(works))
        assert 0 < r["low"] < r["point"] < r["high"]
        assert r["steps"] == sum(w.steps * w.members for w in works)
        assert any("per operator call" in x for x in r["assumptions"])
    # fuse: auto makes units of a cell's learning rates, as spec.units plans them
    units = plan_units(sweep.trials(), "auto")
    works, _, _ = C.works_of(sweep, "auto")
    assert [w.members for w in works] == [len(u) for u in units]
    assert len(C.works_of(sweep, "off")[0]) == len(sweep.trials())
