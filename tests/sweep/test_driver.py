"""The sweep driver on real Ray: resume without re-running,
failing and killed trials, a killed driver, the lock, cluster addresses, a two-node cluster.

The trials are BERT-Tiny shapes trained from scratch on a few hundred real GLUE examples:
seconds each, so the tests exercise the plumbing, not the accuracy.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from orchestrator.spec import sweep as S
from orchestrator.store import records as store

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "orchestrator.cli.main"]


def write_spec(tmp: Path, name: str, results: Path, glue_dir: Path, extra: str = "", tasks="[SST-2, MRPC]",
               bs="[16, 32]", lr="[1e-4, 5e-5]", epochs=2, examples=200) -> Path:
    """A BERT-Tiny grid of solo trials (``fuse: off``): these tests are about solo trials (faults
    inside a fused unit: tests/faults/test_fused_faults.py)."""
    p = tmp / f"{name}.yaml"
    p.write_text(f"""name: {name}
models: [{{name: BERT-Tiny, init: random}}]
tasks: {tasks}
search: {{batch_size: {bs}, learning_rate: {lr}}}
epochs: {epochs}
max_train_examples: {examples}
results: {results}
data: {{glue_dir: {glue_dir}}}
fuse: off
{extra}
""")
    return p


FAULT_PLUGIN = str(REPO / "tests" / "faults" / "plugin.py")


def env(**extra) -> dict:
    """The environment of a CLI run; faults (GLUE_SWEEP_FAULTS) come with the plugin that applies them."""
    e = dict(os.environ)
    e.update({"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "token"})
    e.pop("RAY_ADDRESS", None)
    e.update(extra)
    if "GLUE_SWEEP_FAULTS" in extra:
        e["GLUE_SWEEP_HOOKS"] = FAULT_PLUGIN
    return e


def run_cli(args, timeout=400, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, cwd=REPO, env=env(**kw), capture_output=True, text=True, timeout=timeout)


def records(run_dir: Path) -> dict[str, dict]:
    recs, problems = store.read_records(run_dir)
    assert not problems, problems
    return {r["trial_id"]: r for r in recs}


# --- real sweeps ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def faulty_sweep(tmp_path_factory, real_glue_dir):
    """One real sweep (8 trials) in which one trial always raises, one diverges, and one runs
    out of memory at batch 32 (it is re-run with gradient accumulation)."""
    tmp = tmp_path_factory.mktemp("sweep")
    spec = write_spec(tmp, "faulty", tmp / "results", real_glue_dir, extra="retries: 1\n"
                      "scheduler: {type: asha, grace_period: 1, reduction_factor: 2}")
    r = run_cli(["run", str(spec)], GLUE_SWEEP_FAULTS="raise:MRPC__bs32_lr5e-5,nan:SST-2__bs32_lr1e-4,"
                                                      "oom:SST-2__bs32_lr5e-5:16")
    return SimpleNamespace(spec=spec, run_dir=tmp / "results" / "faulty", proc=r)


def test_sweep_runs_every_trial_once_and_records_the_failure(faulty_sweep, real_glue_dir):
    r = faulty_sweep.proc
    assert r.returncode == 3, r.stderr[-3000:]   # ended with a failed trial: exit 3, naming it last
    assert r.stderr.rstrip().splitlines()[-2:] == [
        "1 trial(s) failed (run the same command again to retry them):",
        "  BERT-Tiny-random__MRPC__bs32_lr5e-5_s0: RuntimeError: injected fault in BERT-Tiny-random__MRPC__bs32_lr5e-5_s0"]
    recs = records(faulty_sweep.run_dir)
    expected = {t.id for t in S.load(faulty_sweep.spec).trials()}
    assert set(recs) == expected and len(recs) == 8
    failed = [r for r in recs.values() if r["status"] == "failed"]
    assert [f["trial_id"] for f in failed] == ["BERT-Tiny-random__MRPC__bs32_lr5e-5_s0"]
    assert failed[0]["attempts"] == 2 and "injected fault" in failed[0]["error"]
    diverged = recs["BERT-Tiny-random__SST-2__bs32_lr1e-4_s0"]
    assert diverged["status"] == "diverged" and "nan" in diverged["error"].lower() and not diverged["evals"]
    oom = recs["BERT-Tiny-random__SST-2__bs32_lr5e-5_s0"]
    assert oom["status"] in ("completed", "stopped") and oom["grad_accum"] == 2 and oom["trial"]["batch_size"] == 32
    assert "gradient accumulation 2" in oom["note"] and oom["evals"][0]["epoch"] == 1.0
    for rec in recs.values():
        if rec["status"] in ("failed", "diverged"):
            continue
        assert rec["status"] in ("completed", "stopped")
        assert rec["evals"] and all("accuracy" in e["metrics"] for e in rec["evals"])
        assert [e["epoch"] for e in rec["evals"]] == [1.0, 2.0][:len(rec["evals"])]
    # every group keeps at least one trial to the end
    for task in ("SST-2", "MRPC"):
        assert any(r["status"] == "completed" and r["trial"]["task"] == task for r in recs.values())
    assert "Ray dashboard: http://127.0.0.1:" in r.stderr
    assert not list((faulty_sweep.run_dir / "ray").rglob("checkpoint_*")), "no model checkpoints by default"
    # every evaluation's outputs beside its record (float16 probabilities), re-scoring to its score;
    # the out-of-memory trial keeps only its evaluations after the restart
    from orchestrator.data.sources import GlueDir
    from orchestrator.registry.tasks import get_task
    from orchestrator.results import uncertainty
    from orchestrator.store import outputs
    for rec in recs.values():
        if not rec["evals"]:
            assert not rec.get("outputs")
            continue
        task = get_task(rec["trial"]["task"])
        labels = {s.name: GlueDir(real_glue_dir).load(task, s.name).labels for s in task.eval_splits}
        stored = outputs.read(faulty_sweep.run_dir, rec["trial_id"])
        dev = [k for k in stored if not k.startswith("test@")]
        assert rec["outputs"] == dev == [f"{e['epoch']:g}" for e in rec["evals"]], rec["trial_id"]
        for e in rec["evals"]:
            outs = stored[f"{e['epoch']:g}"]
            assert outs["dev"].dtype == np.float16 and outs["dev"].shape == (len(labels["dev"]), 2)
            assert uncertainty.score(task, outs, labels) == pytest.approx(e["score"], abs=0.5)


def test_leaderboard_says_how_sure_it_is_from_the_stored_outputs(faulty_sweep, tmp_path):
    out = tmp_path / "export"
    r = run_cli(["leaderboard", str(faulty_sweep.run_dir), "--uncertainty", "--ensemble", "2", "--out", str(out),
                 "--format", "csv,md"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "How sure (95% bootstrap intervals" in r.stdout and "Ensembles of the 2 best configurations" in r.stdout
    md = (out / "leaderboard.md").read_text()   # in the report too, after the leaderboard's own tables
    assert md.index("How sure: intervals") > md.index("GLUE leaderboard") and "Ensembles of the 2 best" in md
    assert "95% interval" in md and "held-out" in md
    import pandas as pd
    u = pd.read_csv(out / "uncertainty.csv")
    assert set(u["task"]) == {"SST-2", "MRPC"} and u["note"].isna().all()
    assert ((u["ci_low"] <= u["score"]) & (u["score"] <= u["ci_high"])).all()
    assert u["held_out"].notna().all() and (u["optimism"] > -100).all()
    e = pd.read_csv(out / "ensemble.csv")
    assert set(e["task"]) == {"SST-2", "MRPC"} and e["score"].notna().all() and (e["members"] <= 2).all()


def test_rerun_runs_nothing_finished_again(faulty_sweep):
    before = {p.name: p.read_bytes() for p in store.trials_dir(faulty_sweep.run_dir).glob("*.json")}
    r = run_cli(["run", str(faulty_sweep.spec), "--resume", "--no-retry-failed"])
    assert r.returncode == 3, r.stderr[-2000:]   # the failed trial is still failed
    assert "8 already finished, 0 to run" in r.stderr and "MRPC__bs32_lr5e-5_s0: RuntimeError" in r.stderr
    after = {p.name: p.read_bytes() for p in store.trials_dir(faulty_sweep.run_dir).glob("*.json")}
    assert after == before


@pytest.mark.parametrize("change, word", [(("epochs: 2", "epochs: 3"), "epochs"),
                                          (("epochs: 2", "epochs: 2\neval_every: 0.5"), "eval_every"),
                                          (("epochs: 2", "epochs: 2\nmax_length: 64"), "max_length")])
def test_changed_settings_are_not_mixed_with_old_results(faulty_sweep, tmp_path, change, word):
    before = {p.name: p.read_bytes() for p in faulty_sweep.run_dir.rglob("*") if p.is_file()}
    p = tmp_path / "faulty.yaml"
    p.write_text(faulty_sweep.spec.read_text().replace(*change))
    r = run_cli(["run", str(p)])
    assert r.returncode == 2 and word in r.stderr and "new name" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
    after = {p.name: p.read_bytes() for p in faulty_sweep.run_dir.rglob("*") if p.is_file()}
    assert after == before   # refused: sweep.yaml and every record as they were


def _result(rec: dict) -> dict:
    """What a record says about the trial's results (not when or where it ran)."""
    return {**{k: rec.get(k) for k in ("trial_id", "status", "trial", "settings_hash", "data_fingerprint",
                                       "attempts", "error", "n_params", "train_examples")},
            "evals": [{k: v for k, v in e.items() if k not in ("elapsed_s", "train_s", "eval_s")}
                      for e in rec["evals"]]}


@pytest.mark.faults   # two more real sweeps (about two minutes): make faults
def test_failed_trial_runs_again_once_its_cause_is_gone(faulty_sweep, tmp_path, real_glue_dir):
    """After the fault is removed, the same command runs exactly the failed trial, and its record
    equals that of a run that never had the fault."""
    others = {k: v for k, v in records(faulty_sweep.run_dir).items() if v["status"] != "failed"}
    r = run_cli(["run", str(faulty_sweep.spec)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "7 already finished, 1 to run (1 failed before: retried" in r.stderr
    recs = records(faulty_sweep.run_dir)
    tid = "BERT-Tiny-random__MRPC__bs32_lr5e-5_s0"
    assert {k: v for k, v in recs.items() if k != tid} == others   # nothing else ran again
    clean = write_spec(tmp_path, "clean", tmp_path / "results", real_glue_dir, tasks="[MRPC]", bs="[32]",
                       lr="[5e-5]", extra="retries: 1")
    r = run_cli(["run", str(clean)])
    assert r.returncode == 0, r.stderr[-3000:]
    fault_free = records(tmp_path / "results" / "clean")[tid]
    assert recs[tid]["status"] == "completed" and _result(recs[tid]) == _result(fault_free)


def test_second_driver_on_the_same_sweep_is_refused(faulty_sweep):
    from orchestrator.sweep.cluster import RunLock

    with RunLock(faulty_sweep.run_dir):
        r = run_cli(["run", str(faulty_sweep.spec)])
    assert r.returncode == 2
    assert "in use by another glue-sweep run" in r.stderr and r.stderr.count("\n") == 1


def test_unreachable_cluster_fails_fast_with_one_line(tmp_path, real_glue_dir):
    spec = write_spec(tmp_path, "remote", tmp_path / "results", real_glue_dir)
    t0 = time.monotonic()
    r = run_cli(["run", str(spec), "--address", "127.0.0.1:1"], timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("glue-sweep: error: cannot reach the Ray cluster at 127.0.0.1:1")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "results").exists()
    assert time.monotonic() - t0 < 60


def _wait_for(pred, timeout, what):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _finished(run_dir):
    return {r["trial_id"]: r for r in store.read_records(run_dir)[0] if r["status"] in store.FINAL}


def free_port() -> int:
    """A TCP port free on loopback now: clusters of tests running at once never share one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_cluster(port: int):
    """A head and a worker node started with `ray start --block` on loopback, one CPU each,
    in their own process groups so that only they are stopped afterwards. Yields the list
    of the two `ray start` processes (head first)."""
    ray_bin = str(Path(sys.executable).parent / "ray")
    e = env(RAY_AUTH_MODE="token")
    tok = subprocess.run([ray_bin, "get-auth-token", "--generate"], env=e, capture_output=True, text=True)
    assert tok.returncode == 0, tok.stderr
    status = lambda: subprocess.run([ray_bin, "status", f"--address=127.0.0.1:{port}"], env=e,
                                    capture_output=True, text=True, timeout=60)
    nodes = []
    try:
        nodes.append(subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={port}",
                                       "--node-ip-address=127.0.0.1", "--num-cpus=1", "--include-dashboard=false"],
                                      env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        _wait_for(lambda: status().returncode == 0, 120, "the head node")
        nodes.append(subprocess.Popen([ray_bin, "start", "--block", f"--address=127.0.0.1:{port}",
                                       "--node-ip-address=127.0.0.1", "--num-cpus=1"],
                                      env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        _wait_for(lambda: status().stdout.count("node_") >= 2, 120, "the worker node to join")
        yield nodes
    finally:
        for n in reversed(nodes):
            try:
                os.killpg(n.pid, signal.SIGTERM)
                n.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(n.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        subprocess.run(["pkill", "-9", "-f", f"127.0.0.1:{port}"], capture_output=True)
