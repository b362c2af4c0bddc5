"""The live view (orchestrator/results/live.py): counts that add up, the truth after a crash, best per
group with the leaderboard's tie rule, ETAs; the train progress line; the status command."""

from __future__ import annotations

import fcntl
import io
import os

from synthetic import make_record, write_run

from orchestrator.cli.console import Progress, live_view
from orchestrator.results import live


def _records():
    recs = [make_record("BERT-Tiny", "SST-2", bs, lr, [80.0, 81.0], status=st)
            for bs, lr, st in [(16, 1e-4, "completed"), (32, 1e-4, "stopped"), (16, 5e-5, "failed")]]
    run = make_record("BERT-Tiny", "SST-2", 32, 5e-5, [70.0], status="running")
    run["evals"][0]["elapsed_s"] = 30.0
    run["train_examples"] = 600
    run["trial"]["epochs"] = 3.0
    return recs + [run]


def test_counts_add_up_and_running_rows_have_rate_and_eta():
    v = live.snapshot("s", _records(), total=8, live=True)
    assert sum(v.counts.values()) == v.total == 8
    assert v.counts["pending"] == 4 and v.counts["running"] == 1 and v.counts["failed"] == 1
    (r,) = v.running
    assert (r["bs"], r["lr"], r["epoch"], r["score"]) == (32, "5e-5", 1.0, 70.0)
    assert r["rate"] == 600 / 30.0 and r["eta_s"] == 60.0   # 2 epochs left at 30 s each
    assert v.eta_s is not None and v.eta_s > 60
    text = live.plain(v)
    assert "8 trials: 1 completed, 1 stopped, 1 running, 4 pending, 1 failed" in text
    assert "running: BERT-Tiny SST-2 32 5e-5 0 1/3 70.00 20 1m00s" in text


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
    for word in ("running trials (1)", "ex/s", "ETA", "best so far", "81.00", "1/3"):
        assert word in out, word


def test_train_progress_line_has_epoch_rate_and_eta():
    p = Progress(quiet=True, epochs=2, batch_size=32)
    p.line(10, 100, 0.7, now=p.t0 + 5)   # the first report starts the clock of the rate
    line = p.line(30, 100, 0.6, now=p.t0 + 15)
    assert line.startswith("epoch 0.60/2  step 30/100 (30%)  loss 0.6000  64 ex/s")
    assert line.endswith("ETA 0m35s")
