"""The live view (orchestrator/results/live.py): counts that add up, the truth after a crash, best per
group with the leaderboard's tie rule, ETAs; the train progress line; the status command."""

from __future__ import annotations

import fcntl
import io
import os
import time
from datetime import datetime, timezone

from synthetic import make_record, write_run

from orchestrator.cli.console import Progress, live_view
from orchestrator.results import live


def _records():
    recs = [make_record("BERT-Tiny", "SST-2", bs, lr, [80.0, 81.0], status=st)
            for bs, lr, st in [(16, 1e-4, "completed"), (32, 1e-4, "stopped"), (16, 5e-5, "failed")]]
    run = make_record("BERT-Tiny", "SST-2", 32, 5e-5, [70.0], status="running")
    run["evals"][0]["elapsed_s"] = 30.0
    run["evals"][0]["train_s"] = 24.0   # the rest: start-up and the evaluation
    run["train_examples"] = 600
    run["trial"]["epochs"] = 3.0
    return recs + [run]


def test_counts_add_up_and_running_rows_have_rate_and_eta():
    v = live.snapshot("s", _records(), total=8, live=True)
    assert sum(v.counts.values()) == v.total == 8
    assert v.counts["pending"] == 4 and v.counts["running"] == 1 and v.counts["failed"] == 1
    (r,) = v.running
    assert (r["bs"], r["lr"], r["epoch"], r["score"]) == (32, "5e-5", 1.0, 70.0)
    assert r["rate"] == 600 / 24.0 and r["eta_s"] == 60.0   # training examples per training second; 2 epochs at 30 s
    assert v.eta_s is not None and v.eta_s > 60
    text = live.plain(v)
    assert "8 trials: 1 completed, 1 stopped, 1 running, 4 pending, 1 failed" in text
    assert "running: BERT-Tiny SST-2 32 5e-5 0 1.0/3 70.00 25 - 1m00s" in text


def _running(model, lr, started, evals=(), unit=None, n_params=None, epochs=3.0):
    rec = make_record(model, "SST-2", 32, lr, [70.0 + i for i in range(len(evals))], status="running", n_params=n_params)
    for ev, elapsed in zip(rec["evals"], evals):
        ev["elapsed_s"] = elapsed
    rec["trial"]["epochs"], rec["started_at"] = epochs, datetime.fromtimestamp(started, timezone.utc).isoformat()
    if unit:
        rec["unit"] = unit
    return rec


def test_the_clock_moves_a_running_trial_between_evaluations():
    t0 = 1_000_000.0
    rec = _running("BERT-Tiny", 1e-4, t0, evals=[30.0])   # 30 s an epoch
    at = {s: live.snapshot("s", [rec], 1, True, now=t0 + s).running[0] for s in (30, 45, 59, 200)}
    assert at[45]["progress"] == 1.5 and at[45]["eta_s"] == 45.0 and at[45]["running_s"] == 45.0
    assert at[59]["progress"] > at[45]["progress"] and at[59]["eta_s"] < at[45]["eta_s"]
    # no further than the next evaluation, which has not come: an overdue trial waits at 2.0
    assert at[200]["progress"] == 2.0 and at[200]["eta_s"] == 30.0
    v = live.snapshot("s", [rec], 1, True, now=t0 + 45, started=t0 - 15)
    assert v.elapsed_s == 60.0 and "elapsed 1m00s" in live.counts_line(v)
    assert "1.5/3" in live.plain(v) and " 0m45s " in live.plain(v)


def test_a_trial_not_yet_evaluated_borrows_its_models_rate_else_the_sweeps_by_parameters():
    t0 = 1_000_000.0
    tiny = _running("BERT-Tiny", 1e-4, t0, evals=[30.0], n_params=4_000_000)
    new_tiny = _running("BERT-Tiny", 5e-5, t0 + 20, n_params=4_000_000)
    big = _running("BERT-Base", 1e-4, t0 + 20, n_params=40_000_000)
    rows = {(r["model"], r["lr"]): r for r in live.snapshot("s", [tiny, new_tiny, big], 3, True, now=t0 + 35).running}
    assert rows[("BERT-Tiny", "5e-5")]["progress"] == 0.5 and rows[("BERT-Tiny", "5e-5")]["eta_s"] == 75.0
    assert rows[("BERT-Base", "1e-4")]["eta_s"] == 3 * 300.0 - 15.0   # 10x the parameters: 300 s an epoch


def test_the_sweeps_eta_shares_work_by_process_and_is_never_below_a_running_trials():
    t0 = 1_000_000.0
    # a fused unit of two members (one process) and a solo trial: 2 processes
    a = _running("BERT-Tiny", 1e-4, t0, evals=[30.0], unit="u1")
    b = _running("BERT-Tiny", 5e-5, t0, evals=[30.0], unit="u1")
    c = _running("BERT-Tiny", 3e-5, t0, evals=[30.0], unit="u2", epochs=3.0)
    v = live.snapshot("s", [a, b, c], 3, True, now=t0 + 30)
    assert {r["process"] for r in v.running} == {"u1", "u2"}
    # 3 trials x 60 s left, 1.5 trials a process: 120 s of process time over 2 processes = 60 s
    assert v.eta_s == 60.0
    # one long trial beside many short finished ones: the sweep ends no sooner than it does
    done = [make_record("BERT-Tiny", "SST-2", 8, lr, [80.0]) for lr in (1e-4, 5e-5, 3e-5, 2e-5)]
    slow = _running("BERT-Base", 1e-4, t0, evals=[600.0], n_params=40_000_000)
    v = live.snapshot("s", done + [slow], 5, True, now=t0 + 600)
    assert v.eta_s == v.running[0]["eta_s"] == 1200.0


def test_the_screen_redraws_every_second_while_no_record_changes():

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    t0 = time.time()
    buf = Terminal()
    screen = live.Screen("s", [_running("BERT-Tiny", 1e-4, t0 - 10, evals=[30.0])], 1, buf, every=0.2)
    try:
        time.sleep(1.3)
    finally:
        screen.stop()
    frames = buf.getvalue().count("running trials (1)")
    assert frames >= 4, buf.getvalue()[-2000:]


def test_without_a_driver_nothing_is_running():
    v = live.snapshot("s", _records(), total=4, live=False)
    assert v.running == [] and v.counts["running"] == 0 and v.counts["interrupted"] == 1
    assert "(not running)" in live.counts_line(v) and "ETA" not in live.counts_line(v)


def test_best_per_group_breaks_ties_like_the_leaderboard():
    recs = [make_record("BERT-Tiny", "SST-2", 32, 1e-4, [81.0]), make_record("BERT-Tiny", "SST-2", 16, 1e-4, [81.0]),
            make_record("BERT-Tiny", "SST-2", 16, 5e-5, [81.0]), make_record("BERT-Tiny", "SST-2", 8, 1e-4, [99.0],
                                                                              status="diverged")]
    (best,) = live.best_rows(recs)
    assert (best["bs"], best["lr"], best["score"]) == (16, "5e-5", 81.0)


def test_driver_alive_follows_the_sweep_lock(tmp_path):
    run = write_run(tmp_path / "run", _records())
    assert not live.driver_alive(run)
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        assert live.driver_alive(run) and live_view(run).counts["running"] == 1
    finally:
        os.close(fd)
    assert not live.driver_alive(run) and live_view(run).counts["interrupted"] == 1


def test_rich_view_renders_the_tables():
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=120).print(live.renderable(live.snapshot("s", _records(), 8, True)))
    out = buf.getvalue()
    for word in ("running trials (1)", "ex/s", "ETA", "best so far", "81.00", "1.0/3"):
        assert word in out, word


def test_train_progress_line_has_epoch_rate_and_eta():
    p = Progress(quiet=True, epochs=2, batch_size=32)
    p.line(10, 100, 0.7, now=p.t0 + 5)   # the first report starts the clock of the rate
    line = p.line(30, 100, 0.6, now=p.t0 + 15)
    assert line.startswith("epoch 0.60/2  step 30/100 (30%)  loss 0.6000  64 ex/s")
    assert line.endswith("ETA 0m35s")
