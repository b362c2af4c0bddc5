"""A local ``glue-sweep run`` as a Ray Job (``sweep.local_job``): the head's command and
environment, the log follower, exit codes; real runs: bad input refused before the head is up,
the driver's exit code passed through, Ctrl-C stopping the job with code 130 and the head gone;
``make faults``: a killed ``glue-sweep run`` taking its job's driver and Ray with it.
(The Jobs page and its driver log in chromium: tests/sweep/test_dashboard.py.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.results import live
from orchestrator.store import records as store
from orchestrator.sweep import local_job

REPO = Path(__file__).resolve().parents[2]


def test_the_head_listens_on_loopback_ports_of_its_own():
    ports = {flag: 40000 + i for i, flag in enumerate(local_job.HEAD_PORTS)}
    cmd = local_job.head_command(ports, "/tmp/ray-glue-sweep-x")
    assert cmd[1:4] == ["start", "--head", "--block"]
    assert "--node-ip-address=127.0.0.1" in cmd and "--dashboard-host=127.0.0.1" in cmd
    for flag in ("port", "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                 "metrics-export-port", "ray-client-server-port"):
        assert f"--{flag}={ports[flag]}" in cmd, flag
    assert "--temp-dir=/tmp/ray-glue-sweep-x" in cmd


def test_the_heads_environment_stops_a_job_with_sigint(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    env = local_job.head_env(secure=True)
    assert env["RAY_JOB_STOP_SIGNAL"] == "SIGINT" and int(env["RAY_JOB_STOP_WAIT_TIME_S"]) >= 30
    assert env["RAY_AUTH_MODE"] == "token" and env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert "RAY_ADDRESS" not in env   # the head is new, never a connection to another cluster
    assert "RAY_AUTH_MODE" not in local_job.head_env(secure=False) or os.environ.get("RAY_AUTH_MODE")


def test_the_jobs_client_logs_in_with_the_token_outright(tmp_path, monkeypatch):
    """Whatever this process's Ray thinks of token auth (Ray imported before RAY_AUTH_MODE was set),
    the client sends the token: a head that asks for it always gets it."""
    import ray.job_submission

    token = tmp_path / "auth_token"
    token.write_text("s3cr3t\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    seen = []
    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", lambda url, headers=None: seen.append(headers) or url)
    head = local_job.Head.__new__(local_job.Head)
    head.secure, head.url, head.proc = True, "http://127.0.0.1:1", SimpleNamespace(poll=lambda: None)
    assert head.client() == "http://127.0.0.1:1"
    assert seen == [{"Authorization": "Bearer s3cr3t"}]
    head.secure = False
    head.client()
    assert seen[-1] is None


def test_wanted_only_for_a_local_run_outside_a_job(monkeypatch):
    monkeypatch.delenv(local_job.NO_JOB_ENV, raising=False)
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert local_job.wanted(None)
    assert not local_job.wanted("127.0.0.1:6379")
    monkeypatch.setenv(local_job.NO_JOB_ENV, "1")
    assert not local_job.wanted(None)
    monkeypatch.delenv(local_job.NO_JOB_ENV)
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    assert not local_job.wanted(None)


def test_the_tail_gives_whole_lines_after_rays_own(tmp_path):
    f = tmp_path / "job.log"
    f.write_text("2026 INFO job_manager.py -- Runtime env is setting up.\nRunning entrypoint for job x: cd /\nsweep a")
    tail = local_job.Tail(f)
    assert tail.lines() == []   # Ray's lines left out, the half line kept back
    with open(f, "a") as out:
        out.write(": 2 trials\n[12:00:00] trials: 0 finished\nlast")
    assert tail.lines() == ["sweep a: 2 trials", "[12:00:00] trials: 0 finished"]
    assert tail.lines(final=True) == ["last"]
    assert local_job.PROGRESS.match("[12:00:00] trials: 0 finished") and not local_job.PROGRESS.match("sweep a")


@pytest.mark.parametrize("status, code, want", [("SUCCEEDED", 0, 0), ("FAILED", 3, 3), ("FAILED", 2, 2),
                                                ("FAILED", None, 1), ("STOPPED", None, 130)])
def test_the_exit_code_is_the_drivers(status, code, want):
    assert local_job.exit_code(SimpleNamespace(status=status, driver_exit_code=code)) == want


def test_the_entrypoint_runs_the_same_command_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    e = local_job.entrypoint(["run", "my sweep.yaml", "--no-retry-failed"])
    assert e.startswith(f"cd {tmp_path} && exec {sys.executable} -m orchestrator.cli.main run 'my sweep.yaml'")


def _spec(tmp_path: Path, glue_dir) -> Path:
    spec = tmp_path / "job.yaml"
    spec.write_text(f"name: job\nmodels: [{{name: BERT-Tiny, init: random}}]\ntasks: [SST-2]\n"
                    f"search: {{batch_size: [16], learning_rate: [1e-4, 5e-5]}}\nepochs: 1\n"
                    f"max_train_examples: 64\nresults: {tmp_path / 'results'}\ndata: {{glue_dir: {glue_dir}}}\nfuse: off\n")
    return spec


def _env(**faults) -> dict:
    env = {k: v for k, v in os.environ.items() if k != local_job.NO_JOB_ENV}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), GLUE_SWEEP_HOOKS=str(REPO / "tests" / "faults" / "plugin.py"),
               **faults)
    return env


def _answers(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def test_bad_input_is_one_line_before_ray_is_up(tmp_path):
    spec = _spec(tmp_path, tmp_path / "no-such-glue")
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "run", str(spec)], cwd=tmp_path,
                         env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    errors = [l for l in out.stderr.splitlines() if l.startswith("glue-sweep: error:")]
    assert len(errors) == 1 and "no-such-glue" in errors[0], out.stderr
    assert "Ray Job" not in out.stderr   # nothing submitted
    assert time.monotonic() - t < 60
    assert not (tmp_path / "results" / "job" / "trials").exists()


def test_a_failed_trial_and_ctrl_c_keep_their_exit_codes(tmp_path, real_glue_dir):
    spec = _spec(tmp_path, real_glue_dir)
    run = tmp_path / "results" / "job"
    # the driver's exit code 3 (a trial failed) comes back through the job; its lines are on stderr;
    # a user without a Ray login token yet gets one, readable by its owner only (as a local ray.init makes it)
    home = tmp_path / "home"
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "run", str(spec)], cwd=tmp_path,
                         env=_env(GLUE_SWEEP_FAULTS="raise:lr1e-4", HOME=str(home)), capture_output=True, text=True,
                         timeout=400)
    assert out.returncode == 3, out.stderr
    assert (home / ".ray" / "auth_token").stat().st_mode & 0o777 == 0o600
    assert "runs as Ray Job glue-sweep-job-" in out.stderr and "sweep job: 2 trials" in out.stderr
    assert "1 trial(s) failed" in out.stderr and "injected fault in" in out.stderr
    assert "Running entrypoint" not in out.stderr and "job_manager.py" not in out.stderr   # Ray's own lines stay out
    url = json.loads((run / "dashboard.json").read_text())["url"]
    assert not _answers(url), "the head outlived its job"
    # Ctrl-C while the retried trial sleeps: the job is stopped, 130, the records whole, Ray gone
    p = subprocess.Popen([sys.executable, "-m", "orchestrator.cli.main", "run", str(spec)], cwd=tmp_path,
                         env=_env(GLUE_SWEEP_FAULTS="sleep:lr1e-4:300"), stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    end = time.monotonic() + 240
    while time.monotonic() < end:
        recs = store.read_records(run)[0]
        if any(r["status"] == "running" and "lr1e-4" in r["trial_id"] for r in recs):
            break
        time.sleep(1)
    else:
        p.kill()
        pytest.fail("the retried trial never started: " + p.stderr.read())
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=200)
    assert p.returncode == 130, err
    assert "interrupted" in err
    assert {r["trial_id"].split("_")[-2]: r["status"] for r in store.read_records(run)[0]}["lr5e-5"] == "completed"
    url = json.loads((run / "dashboard.json").read_text())["url"]
    assert not _answers(url), "the head outlived its job"


@pytest.mark.faults
def test_a_killed_run_takes_its_jobs_driver_and_ray_with_it(tmp_path, real_glue_dir):
    """`glue-sweep run` killed (SIGKILL): its job's driver goes at once (the sweep's lock free
    again), Ray after it (``make faults``)."""
    spec = _spec(tmp_path, real_glue_dir)
    run = tmp_path / "results" / "job"
    p = subprocess.Popen([sys.executable, "-m", "orchestrator.cli.main", "run", str(spec)], cwd=tmp_path,
                         env=_env(GLUE_SWEEP_FAULTS="sleep:lr:300"), stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 240
        while not ((run / "dashboard.json").exists() and live.driver_alive(run)) and time.monotonic() < end:
            time.sleep(1)   # the job's driver holds the lock and has written where its dashboard is
        assert live.driver_alive(run), "the job's driver never took the sweep's lock"
    finally:
        p.kill()
        p.wait()
    end = time.monotonic() + 20
    while live.driver_alive(run) and time.monotonic() < end:
        time.sleep(0.5)
    assert not live.driver_alive(run), "the job's driver outlived the killed glue-sweep run"
    url = json.loads((run / "dashboard.json").read_text())["url"]
    end = time.monotonic() + 60
    while _answers(url) and time.monotonic() < end:
        time.sleep(1)
    assert not _answers(url), "Ray outlived the killed glue-sweep run"


def test_a_dropped_request_to_a_running_head_is_asked_again():
    """A loaded machine's dashboard may close a connection now and then: the run asks again
    while its head runs, and gives up only when the head is gone."""
    answers = iter([ConnectionError("Remote end closed connection without response"), "RUNNING"])

    def ask():
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    alive = SimpleNamespace(proc=SimpleNamespace(poll=lambda: None))
    assert local_job._asked(ask, alive) == "RUNNING"
    gone = SimpleNamespace(proc=SimpleNamespace(poll=lambda: 1))
    with pytest.raises(ConnectionError):
        local_job._asked(lambda: (_ for _ in ()).throw(ConnectionError("refused")), gone)
