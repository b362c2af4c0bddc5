"""bench.engine's figures from a worker's events (pure), and its spec as the sweep reads it."""

from __future__ import annotations

import pytest

from bench import engine as E


def _events():
    # two workers; worker 1 runs a then c, worker 2 runs b; start-up 0.2 s each
    return [{"e": "start", "id": "a", "pid": 1, "t": 10.0}, {"e": "start", "id": "b", "pid": 2, "t": 10.5},
            {"e": "end", "id": "a", "pid": 1, "t": 12.0, "startup_s": 0.2, "train_s": 1, "eval_s": 0.5},
            {"e": "end", "id": "b", "pid": 2, "t": 13.0, "startup_s": 0.2, "train_s": 1, "eval_s": 0.5},
            {"e": "start", "id": "c", "pid": 1, "t": 12.3},
            {"e": "end", "id": "c", "pid": 1, "t": 14.0, "startup_s": 0.2, "train_s": 1, "eval_s": 0.5}]


def test_summary_splits_start_up_pace_and_trial_to_trial():
    s = E.summarise("x", _events(), t0=0.0, t1=15.0)
    assert s["trials"] == 3 and s["workers"] == 2
    assert s["driver_startup_s"] == 10.0 and s["shutdown_s"] == 1.0
    assert s["wall_per_trial_s"] == pytest.approx((14.0 - 10.0) / 3, abs=1e-3)
    assert s["in_trial_s"] == pytest.approx((2.0 + 2.5 + 1.7) / 3, abs=1e-3)
    # c's first step (12.3 + 0.2) after a's end (12.0) in the same worker
    assert s["trial_to_trial_s"] == {"median": 0.5, "max": 0.5, "n": 1}


def test_no_reuse_means_no_trial_to_trial_figure():
    ev = [e for e in _events() if e["id"] != "c"]
    assert E.summarise("x", ev, 0.0, 15.0)["trial_to_trial_s"] is None


def test_the_spec_expands_to_32_solo_trials(tmp_path):
    from orchestrator.spec.sweep import load

    p = tmp_path / "e.yaml"
    p.write_text(E.spec_text("e32", str(tmp_path), tmp_path / "results"))
    sweep = load(p)
    trials = sweep.trials()
    assert len(trials) == 32 == len(E.bare_trials()) and sweep.fuse == "off"
    assert {t.config.to_dict()["seed"] for t in trials} == set(range(8))
