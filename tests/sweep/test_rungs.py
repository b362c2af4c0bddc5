"""Grouped ASHA's decisions (``orchestrator.sweep.rungs``): hand-worked rung sequences, the same
actions as Ray Tune's ``ASHAScheduler`` on random asynchronous sequences, groups that never
compare with each other, a stopped trial that asks again, and a resumed sweep's seeded rungs."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from orchestrator.sweep.rungs import Groups, Rungs, cutoff, decide, milestones, record


def rungs(grace=1, max_t=4, rf=2, mode="max") -> Rungs:
    return Rungs(milestones(grace, max_t, rf), rf, 1.0 if mode == "max" else -1.0)


def test_milestones_and_cutoff():
    assert milestones(1, 4, 2) == (1, 2, 4)
    assert milestones(1, 2, 2) == (1, 2)
    assert milestones(1, 9, 3) == (1, 3, 9)
    assert milestones(2, 4, 3) == (2,)
    assert cutoff([], 2) is None
    assert cutoff([0.5], 2) == 0.5
    assert cutoff([0.4, 0.5], 2) == pytest.approx(0.45)
    assert cutoff([0.0, 3.0, 6.0], 3) == pytest.approx(4.0)   # the 2/3 quantile, interpolated


def test_a_hand_worked_sequence():
    """grace 1, rf 2, max_t 4: rungs at epochs 1, 2 and 4."""
    r = rungs()
    steps = [  # (trial, epoch, score, goes on, rung its score is recorded at)
        ("a", 1, 0.50, True, 1),    # first at rung 1: no cutoff yet
        ("b", 1, 0.40, False, 1),   # cutoff median(0.50) = 0.50
        ("c", 1, 0.60, True, 1),    # cutoff median(0.50, 0.40) = 0.45
        ("d", 1, 0.45, False, 1),   # cutoff median(0.50, 0.40, 0.60) = 0.50
        ("e", 1, 0.50, True, 1),    # a tie with the cutoff goes on
        ("a", 2, 0.70, True, 2),    # first at rung 2
        ("c", 2, 0.65, False, 2),   # below a's 0.70
        ("a", 3, 0.10, True, None), # between rungs: never judged
        ("e", 0.5, 0.0, True, None),  # before the grace period: never judged
        ("e", 4, 0.30, True, 4),    # came late: judged at the highest rung it reached, the first there
        ("a", 4, 0.20, False, 4),   # below e's 0.30 at rung 4 (Ray's action; it has ended anyway)
    ]
    for key, t, score, go, rung in steps:
        assert decide(r, key, t, score) == (go, rung), (key, t, score)
        assert record(r, key, t, score) == go
    assert r.recorded == {1: {"a": 0.5, "b": 0.4, "c": 0.6, "d": 0.45, "e": 0.5}, 2: {"a": 0.7, "c": 0.65},
                          4: {"e": 0.3, "a": 0.2}}
    assert record(r, "a", 2, 0.0) is True and r.recorded[2]["a"] == 0.7   # a rung is judged once per trial


def test_mode_min_and_a_reduction_factor_of_three():
    r = rungs(max_t=9, rf=3, mode="min")
    assert [record(r, k, 1, s) for k, s in [("a", 3.0), ("b", 2.0), ("c", 1.0), ("d", 2.5)]] == [True, True, True,
                                                                                                  False]
    # losses: lower is better; the cut for d is the 2/3 quantile of (-3, -2, -1) = -1.67 > -2.5


def _ray_asha(grace, max_t, rf):
    from ray.tune.schedulers import ASHAScheduler

    s = ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=grace, reduction_factor=rf, stop_last_trials=False)
    s.set_search_properties("score", "max")
    return s


@pytest.mark.parametrize("seed", range(8))
def test_the_same_actions_as_ray_tunes_asha(seed):
    """Random trials evaluated every half epoch, arriving in a random interleaving; a trial
    Ray stops reports no more. Every action is Ray's."""
    rnd = random.Random(seed)
    grace, rf = rnd.choice([(1, 2), (1, 3), (0.5, 2), (2, 2)])
    max_t = rnd.choice([4, 6, 8])
    ray_s, ours = _ray_asha(grace, max_t, rf), rungs(grace, max_t, rf)
    trials = {f"t{i}": SimpleNamespace(trial_id=f"t{i}") for i in range(rnd.randint(3, 12))}
    for t in trials.values():
        ray_s.on_trial_add(None, t)
    ticks = {k: 0 for k in trials}
    decisions = stops = 0
    while ticks:
        k = rnd.choice(sorted(ticks))
        ticks[k] += 1
        epoch = ticks[k] / 2
        score = round(rnd.gauss(0.5, 0.2), 2) if rnd.random() > 0.1 else 0.5   # some ties
        expected = ray_s.on_trial_result(None, trials[k], {"epoch": epoch, "score": score})
        assert record(ours, k, epoch, score) == (expected == ray_s.CONTINUE), (seed, k, epoch, score)
        decisions, stops = decisions + 1, stops + (expected != ray_s.CONTINUE)
        if expected != ray_s.CONTINUE or epoch >= max_t:
            del ticks[k]
    assert decisions >= len(trials) and stops >= 1


def test_groups_never_compare_with_each_other():
    """Group A scores ~90, group B ~10. One ASHA over both would stop B's trials at the first
    rung; per group, B's best goes on and B's weaker are stopped."""
    g = Groups(grace_period=1, max_t=4, reduction_factor=2)
    a = [g.ask("A|SST-2", f"a{i}", 1.0, s) for i, s in enumerate([90, 91, 92, 93])]
    b = [g.ask("B|CoLA", f"b{i}", 1.0, s) for i, s in enumerate([12, 11, 10, 9])]
    assert a == [True] * 4          # A's rise: each beats the cut
    assert b[0] is True and b[3] is False
    assert set(g.rungs) == {"A|SST-2", "B|CoLA"}


def test_a_stopped_trial_stays_stopped_and_the_last_rung_never_stops():
    g = Groups(grace_period=1, max_t=2, reduction_factor=2)
    assert g.ask("G", "a", 1, 0.9) and not g.ask("G", "b", 1, 0.1)
    assert g.is_stopped("b") and not g.is_stopped("a")
    assert g.ask("G", "b", 1, 0.99) is False          # asked again (a retried unit): still stopped
    assert g.ask("G", "a", 2, 0.5) and g.ask("G", "c", 1, 0.95)
    assert g.ask("G", "c", 2, 0.1) is True            # below a at rung 2, but at max_t it has ended
    assert not g.is_stopped("c")


def test_seeded_rungs_do_not_depend_on_the_order_of_finished_trials():
    finished = [("G", "x", [(1.0, 0.6), (2.0, 0.7)]), ("G", "y", [(1.0, 0.4)]), ("G", "z", [(1.0, 0.8), (2.0, 0.5)])]
    seeded = []
    for order in (finished, finished[::-1]):
        g = Groups(grace_period=1, max_t=4, reduction_factor=2)
        for group, key, evals in order:
            g.seed(group, key, evals)
        seeded.append(g.rungs["G"].recorded)
        assert not g.stopped
    assert seeded[0] == seeded[1] == {1: {"x": 0.6, "y": 0.4, "z": 0.8}, 2: {"x": 0.7, "z": 0.5}}
    g = Groups(grace_period=1, max_t=4, reduction_factor=2)
    for group, key, evals in finished:
        g.seed(group, key, evals)
    assert g.ask("G", "new", 1, 0.55) is False   # below the median 0.6 of what the finished trials reached


def test_a_resumed_sweep_seeds_the_rungs_with_its_finished_valid_records():
    from orchestrator.sweep.asha import finished_evals

    def rec(tid, status, scores):
        return {"trial_id": tid, "group": "G", "status": status,
                "evals": [{"epoch": float(i + 1), "score": s} for i, s in enumerate(scores)]}

    records = [rec("a", "completed", [0.6, 0.7]), rec("b", "stopped", [0.4]), rec("c", "running", [0.9]),
               rec("d", "failed", [0.8]), rec("e", "diverged", []), rec("f", "completed", [])]
    assert finished_evals(records) == [("G", "record:a", [(1.0, 0.6), (2.0, 0.7)]), ("G", "record:b", [(1.0, 0.4)])]
