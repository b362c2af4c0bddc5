"""The full fault-injection suite (`make faults`): real small sweeps with faults injected,
each compared with a fault-free run of the same sweep. After every fault the sweep ends (or
resumes) with every trial exactly once, the finished trials' results equal to the fault-free
run's (the trials are deterministic on CPU: same seed, one thread), and the same leaderboard.

The reduced suite that `make test` runs lives in tests/sweep/test_driver.py (driver SIGKILL and
resume, worker SIGKILL, a raising trial, a NaN trial, out-of-memory)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.results.load import load_run
from orchestrator.results.tables import glue_table
from orchestrator.store import records as store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sweep"))
from test_driver import CLI, REPO, _wait_for, env, free_port, local_cluster, records, run_cli, write_spec  # noqa: E402

TIMING = {"elapsed_s", "train_s", "started_at", "unit", "updated_at", "attempts", "error", "node", "note"}


def results_of(run_dir: Path) -> dict:
    """Every trial's results without the fields that record when and where it ran."""
    out = {}
    for tid, rec in records(run_dir).items():
        r = {k: v for k, v in rec.items() if k not in TIMING}
        r["evals"] = [{k: v for k, v in e.items() if k not in TIMING} for e in rec["evals"]]
        out[tid] = r
    return out


def leaderboard_of(run_dir: Path):
    return glue_table(load_run(run_dir)).to_dict("records")


def spec_for(tmp: Path, name: str, glue_dir: Path) -> Path:
    return write_spec(tmp, name, tmp / "results", glue_dir, tasks="[SST-2, RTE]", bs="[16, 32]", lr="[1e-4]",
                      epochs=2, examples=160, extra="retries: 2")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, real_glue_dir):
    """The fault-free run every faulty run is compared with."""
    tmp = tmp_path_factory.mktemp("reference")
    spec = spec_for(tmp, "sweep", real_glue_dir)
    r = run_cli(["run", str(spec)])
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp / "results" / "sweep"
    res = results_of(run_dir)
    assert len(res) == 4 and all(x["status"] == "completed" for x in res.values())
    return res, leaderboard_of(run_dir)


def check_same_as_reference(run_dir: Path, reference):
    res, board = reference
    got = results_of(run_dir)
    assert set(got) == set(res)
    for tid in res:
        assert got[tid] == res[tid], tid
    assert leaderboard_of(run_dir) == board


def test_flaky_trial_is_retried_to_the_same_result(tmp_path, real_glue_dir, reference):
    spec = spec_for(tmp_path, "sweep", real_glue_dir)
    r = run_cli(["run", str(spec)], GLUE_SWEEP_FAULTS="flaky:RTE__bs16", GLUE_SWEEP_FAULT_DIR=str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    recs = records(tmp_path / "results" / "sweep")
    assert recs["BERT-Tiny-random__RTE__bs16_lr1e-4_s0"]["attempts"] == 2
    check_same_as_reference(tmp_path / "results" / "sweep", reference)


def test_failing_trial_exits_3_and_runs_again_to_the_same_result(tmp_path, real_glue_dir, reference):
    spec = spec_for(tmp_path, "sweep", real_glue_dir)
    run_dir = tmp_path / "results" / "sweep"
    r = run_cli(["run", str(spec)], GLUE_SWEEP_FAULTS="raise:RTE__bs16")
    assert r.returncode == 3, r.stderr[-3000:]
    assert r.stderr.rstrip().splitlines()[-1].startswith("  BERT-Tiny-random__RTE__bs16_lr1e-4_s0: RuntimeError")
    r = run_cli(["run", str(spec)])          # the cause is gone: exactly the failed trial runs
    assert r.returncode == 0, r.stderr[-3000:]
    assert "3 already finished, 1 to run (1 failed before: retried" in r.stderr
    check_same_as_reference(run_dir, reference)


def _interrupt_then_resume(tmp_path, real_glue_dir, sig, reference):
    spec = spec_for(tmp_path, "sweep", real_glue_dir)
    run_dir = tmp_path / "results" / "sweep"
    proc = subprocess.Popen(CLI + ["run", str(spec)], cwd=REPO, env=env(GLUE_SWEEP_FAULTS="sleep:bs32:5"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: any(r["status"] in store.FINAL for r in store.read_records(run_dir)[0]), 240,
                  "a finished trial")
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    finals = {r["trial_id"] for r in store.read_records(run_dir)[0] if r["status"] in store.FINAL}
    assert 0 < len(finals) < 4, "the interruption came too late to test anything"
    r = run_cli(["run", str(spec)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{len(finals)} already finished, {4 - len(finals)} to run" in r.stderr
    check_same_as_reference(run_dir, reference)
    return proc.returncode, err


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path, real_glue_dir, reference):
    rc, err = _interrupt_then_resume(tmp_path, real_glue_dir, signal.SIGINT, reference)
    assert rc == 130 and "run the same command again" in err and "Traceback" not in err


def test_driver_sigkill_resumes_to_the_fault_free_result(tmp_path, real_glue_dir, reference):
    rc, _ = _interrupt_then_resume(tmp_path, real_glue_dir, signal.SIGKILL, reference)
    assert rc == -signal.SIGKILL


def test_full_disk_stops_the_sweep_keeps_what_is_written_and_resumes(tmp_path, real_glue_dir, reference):
    spec = spec_for(tmp_path, "sweep", real_glue_dir)
    run_dir = tmp_path / "results" / "sweep"
    r = run_cli(["run", str(spec)], GLUE_SWEEP_FAULTS="enospc:6")
    assert r.returncode == 4, r.stderr[-3000:]   # the store failed mid-sweep: not bad input (2)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("glue-sweep: error: cannot write") and "No space left on device" in last
    recs, problems = store.read_records(run_dir)
    assert not problems                       # nothing torn
    assert not list(store.trials_dir(run_dir).glob(".*.tmp"))   # no temporary files left
    assert len(recs) <= 4
    r = run_cli(["run", str(spec)])          # space is back
    assert r.returncode == 0, r.stderr[-3000:]
    check_same_as_reference(run_dir, reference)


def test_worker_node_leaving_the_cluster_mid_sweep(tmp_path, real_glue_dir, reference):
    """Head and worker on loopback; the worker node is killed while trials run on both; its
    trial is retried on the head and the sweep completes with the fault-free results."""
    port = free_port()
    with local_cluster(port) as nodes:
        spec = spec_for(tmp_path, "sweep", real_glue_dir)
        run_dir = tmp_path / "results" / "sweep"
        proc = subprocess.Popen(CLI + ["run", str(spec), "--address", f"127.0.0.1:{port}"], cwd=REPO,
                                env=env(GLUE_SWEEP_FAULTS="sleep:s0:6"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(lambda: sum(r["status"] == "running" for r in store.read_records(run_dir)[0]) >= 2, 240,
                      "trials on both nodes")
            time.sleep(2)
            os.killpg(nodes[1].pid, signal.SIGKILL)    # the worker node leaves, abruptly
            _, err = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err[-3000:]
        recs = records(run_dir)
        assert len(recs) == 4 and all(r["status"] == "completed" for r in recs.values())
        assert max(r["attempts"] for r in recs.values()) >= 2
        check_same_as_reference(run_dir, reference)


def test_two_node_cluster_on_loopback(tmp_path, real_glue_dir):
    """A head and a worker started with `ray start` on loopback; the trials land on both."""
    port = free_port()
    with local_cluster(port):
        spec = write_spec(tmp_path, "cluster", tmp_path / "results", real_glue_dir, tasks="[SST-2]",
                          bs="[16, 32]", lr="[1e-4, 5e-5]")
        r = run_cli(["run", str(spec), "--address", f"127.0.0.1:{port}"], GLUE_SWEEP_FAULTS="sleep:s0:3")
        assert r.returncode == 0, r.stderr[-3000:]
        recs = records(tmp_path / "results" / "cluster")
        assert len(recs) == 4 and all(r["status"] == "completed" for r in recs.values())
        assert len({r["node"] for r in recs.values()}) == 2, [r["node"] for r in recs.values()]
