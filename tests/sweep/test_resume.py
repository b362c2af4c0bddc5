"""Sweeps that resume: a driver killed mid-sweep and finished by another (another working
directory, HOME and the same storage), a killed trial worker retried, an optuna study resumed
from what it knows. Split from test_driver.py so that the suite's workers share the slow runs;
part of `make faults` only (marker ``faults``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from test_driver import CLI, REPO, _finished, _wait_for, env, records, run_cli, write_spec

from orchestrator.spec import sweep as S
from orchestrator.store import location as storage, records as store

pytestmark = pytest.mark.faults


def test_driver_sigkill_then_a_driver_elsewhere_finishes_exactly_once(tmp_path, real_glue_dir, s3_server):
    """The store on S3 (a server on loopback): the driver is killed mid-sweep, another one started
    from another working directory and HOME with the same --storage runs only what is unfinished."""
    spec = write_spec(tmp_path, "killed", tmp_path / "results", real_glue_dir, tasks="[SST-2]",
                      bs="[16, 32]", lr="[1e-4, 5e-5, 3e-5]")
    uri = s3_server(f"killed-{tmp_path.name}")
    run_dir = storage.at(uri).join("killed")
    first, second = tmp_path / "first", tmp_path / "second"
    for d in (first / "home", second / "home"):
        d.mkdir(parents=True)
    proc = subprocess.Popen(CLI + ["run", str(spec), "--storage", uri], cwd=first,
                            env=env(GLUE_SWEEP_FAULTS="sleep:bs32:4", HOME=str(first / "home"), PYTHONPATH=str(REPO)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: len(_finished(run_dir)) >= 2, 240, "two finished trials")
        done_before = {k: json.dumps(v, sort_keys=True) for k, v in _finished(run_dir).items()}
        assert len(done_before) < 6, "the sweep finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    r = subprocess.run(CLI + ["run", str(spec), "--storage", uri], cwd=second, capture_output=True, text=True,
                       env=env(HOME=str(second / "home"), PYTHONPATH=str(REPO)), timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{len(done_before)} already finished" in r.stderr
    recs = records(run_dir)
    assert set(recs) == {t.id for t in S.load(spec).trials()}
    assert all(r["status"] == "completed" and r["attempts"] == 1 for r in recs.values() if r["trial_id"] in done_before)
    assert all(r["status"] == "completed" for r in recs.values())
    for k, v in done_before.items():   # finished before the kill: kept as they were, not re-run
        assert json.dumps(recs[k], sort_keys=True) == v
    assert not (tmp_path / "results").exists()         # nothing went to the spec's local results


def test_killed_trial_worker_is_retried_and_the_others_go_on(tmp_path, real_glue_dir):
    psutil = pytest.importorskip("psutil")
    spec = write_spec(tmp_path, "workerkill", tmp_path / "results", real_glue_dir, tasks="[SST-2]",
                      bs="[16, 32]", lr="[1e-4]", extra="retries: 2")
    run_dir = tmp_path / "results" / "workerkill"
    killed = []
    marker = f"sleep:bs32:8:{tmp_path.name}"   # also identifies this sweep's workers by their environment
    proc = subprocess.Popen(CLI + ["run", str(spec)], cwd=REPO, env=env(GLUE_SWEEP_FAULTS=marker),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


    def kill_bs32_worker():
        rec = store.read_records(run_dir)[0]
        if not any(r["trial_id"].endswith("bs32_lr1e-4_s0") and r["status"] == "running" for r in rec):
            return False
        for p in psutil.process_iter(["cmdline"]):
            try:
                if "ray::" in " ".join(p.info["cmdline"] or []) and p.environ().get("GLUE_SWEEP_FAULTS") == marker:
                    killed.append(p.pid)
            except (psutil.AccessDenied, psutil.NoSuchProcess):
                continue
        if not killed:
            return False
        for pid in killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return True

    try:
        _wait_for(kill_bs32_worker, 240, "a running trial worker")
        _, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    recs = records(run_dir)
    assert len(recs) == 2
    assert all(r["status"] in ("completed", "failed") for r in recs.values())
    failed = any(r["status"] == "failed" for r in recs.values())
    assert proc.returncode == (3 if failed else 0), err[-3000:]
    assert max(r["attempts"] for r in recs.values()) >= 2, recs


def test_optuna_mode_runs_its_budget_and_resumes_with_what_it_knows(tmp_path, real_glue_dir):
    extra = "search: {mode: optuna, trials: TRIALS, batch_size: [16, 32], learning_rate: {low: 1e-5, high: 3e-4}}"
    spec = write_spec(tmp_path, "opt", tmp_path / "results", real_glue_dir, tasks="[MRPC]", epochs=1,
                      extra="").read_text()
    spec = spec.replace("search: {batch_size: [16, 32], learning_rate: [1e-4, 5e-5]}", extra)
    p = tmp_path / "opt.yaml"
    p.write_text(spec.replace("TRIALS", "2"))
    r = run_cli(["run", str(p)])
    assert r.returncode == 0, r.stderr[-3000:]
    first = records(tmp_path / "results" / "opt")
    assert len(first) == 2 and all(x["status"] == "completed" for x in first.values())
    for rec in first.values():
        assert rec["trial"]["batch_size"] in (16, 32) and 1e-5 <= rec["trial"]["learning_rate"] <= 3e-4
    p.write_text(spec.replace("TRIALS", "3"))
    r = run_cli(["run", str(p)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 already finished, 1 to run" in r.stderr and "2 known" in r.stderr
    after = records(tmp_path / "results" / "opt")
    assert len(after) == 3
    for k, v in first.items():
        assert after[k] == v
    # the study is kept in the run's SQLite file, which optuna's own API (and optuna-dashboard) opens
    import optuna

    storage = f"sqlite:///{tmp_path / 'results' / 'opt' / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.study_name == "BERT-Tiny (random init) / MRPC / seed 0"
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3 and {t.params["batch_size"] for t in done} <= {16, 32}
    # a failed sample kept with --no-retry-failed: nothing to run, and the run still fails, naming it
    path = next(store.trials_dir(tmp_path / "results" / "opt").glob("*.json"))
    rec = json.loads(path.read_text())
    path.write_text(json.dumps({**rec, "status": "failed", "error": "RuntimeError: it broke"}))
    r = run_cli(["run", str(p), "--no-retry-failed"])
    assert r.returncode == 3 and "3 already finished, 0 to run" in r.stderr, r.stderr[-3000:]
    assert r.stderr.rstrip().splitlines()[-1] == f"  {rec['trial_id']}: RuntimeError: it broke"
