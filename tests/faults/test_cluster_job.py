"""A sweep submitted as a Ray Job to a two-node loopback cluster whose worker node sees none of
the GLUE data, the feature cache, the vocabulary or the project's source (each hidden under an
empty tmpfs in the worker node's own mount namespace): the trials run on both nodes and the
best dev scores equal a local run's of the same spec. Needs root (``unshare --mount``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import orchestrator
from orchestrator.registry.models import packaged_minilm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sweep"))
from test_driver import REPO, _wait_for, env, free_port, records, run_cli, write_spec  # noqa: E402

RAY = str(Path(sys.executable).parent / "ray")
# Every port the two nodes listen on is chosen free: other clusters on this machine keep theirs.
PORTS: list[int] = []
while len(PORTS) < 8:
    PORTS += [p for p in [free_port()] if p not in PORTS]
PORT, DASHBOARD, *AGENT = PORTS


def _node_env(tmp: Path) -> dict:
    """A node's environment: the venv's Python first on PATH, no project on PYTHONPATH, its own
    HOME and feature cache, no GLUE_DIR."""
    e = env(RAY_AUTH_MODE="token", HOME=str(tmp / "home"))
    for k in ("PYTHONPATH", "GLUE_DIR", "GLUE_SWEEP_CACHE", "MODELS_DIR", "GLUE_SWEEP_VOCAB"):
        e.pop(k, None)
    e["PATH"] = f"{Path(sys.executable).parent}:{e.get('PATH', '')}"
    e["RAY_AUTH_TOKEN_PATH"] = str(Path.home() / ".ray" / "auth_token")
    return e


def _editable_package() -> Path | None:
    """Where the venv's own install of the package lives (an editable install points at a clone)."""
    r = subprocess.run([sys.executable, "-c", "import orchestrator; print(orchestrator.__file__)"], cwd="/",
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, capture_output=True, text=True)
    return Path(r.stdout.strip()).parent if r.returncode == 0 and r.stdout.strip() else None


def hidden_dirs(glue: Path, cache: Path) -> list[Path]:
    dirs = [glue.resolve(), cache, Path.home() / ".cache" / "glue-sweep", Path(orchestrator.__file__).parent]
    if packaged_minilm():
        dirs.append(packaged_minilm())
    if _editable_package():
        dirs.append(_editable_package())
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


@contextlib.contextmanager
def job_cluster(tmp: Path, hide: list[Path]):
    """Head (with the Jobs API on loopback) and a worker node in its own mount namespace."""
    (tmp / "home").mkdir(exist_ok=True)
    e = _node_env(tmp)
    tok = subprocess.run([RAY, "get-auth-token", "--generate"], env=env(RAY_AUTH_MODE="token"), capture_output=True)
    assert tok.returncode == 0, tok.stderr
    status = lambda: subprocess.run([RAY, "status", f"--address=127.0.0.1:{PORT}"], env=e, capture_output=True,
                                    text=True, timeout=60)
    mounts = "; ".join(f"mount -t tmpfs none {d}" for d in hide)
    nodes = []
    try:
        nodes.append(subprocess.Popen(
            [RAY, "start", "--head", "--block", f"--port={PORT}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
             "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={DASHBOARD}",
             f"--dashboard-agent-listen-port={AGENT[0]}", f"--runtime-env-agent-port={AGENT[1]}",
             f"--metrics-export-port={AGENT[2]}"],
            env=e, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        _wait_for(lambda: status().returncode == 0, 180, "the head node")
        worker = (f"{mounts}; exec {RAY} start --block --address=127.0.0.1:{PORT} --node-ip-address=127.0.0.1 "
                  f"--num-cpus=1 --dashboard-agent-listen-port={AGENT[3]} --runtime-env-agent-port={AGENT[4]} "
                  f"--metrics-export-port={AGENT[5]}")
        nodes.append(subprocess.Popen(["unshare", "--mount", "sh", "-c", worker], env=e, cwd="/",
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True))
        _wait_for(lambda: status().stdout.count("node_") >= 2, 180, "the worker node to join")
        yield e
    finally:
        for n in reversed(nodes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(n.pid, signal.SIGTERM)
            try:
                n.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(n.pid, signal.SIGKILL)


def scores(run_dir: Path) -> dict:
    """Every trial's dev scores, and the best per group."""
    recs = records(run_dir).values()
    best = {}
    for r in recs:
        best[r["group"]] = max([best.get(r["group"], float("-inf"))] + [e["score"] for e in r["evals"]])
    return {"trials": {r["trial_id"]: [e["score"] for e in r["evals"]] for r in recs}, "best": best}


def test_job_on_two_nodes_where_the_worker_sees_no_data(tmp_path, real_glue_dir):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for the worker node's mount namespace")
    glue = tmp_path / "glue"
    glue.symlink_to(real_glue_dir)
    cache = Path(os.environ["GLUE_SWEEP_CACHE"])
    cache.mkdir(parents=True, exist_ok=True)
    spec = write_spec(tmp_path, "jobsweep", tmp_path / "local", glue, tasks="[SST-2]", bs="[16, 32]",
                      lr="[1e-4, 5e-5]", epochs=1, examples=160)
    local = run_cli(["run", str(spec)])
    assert local.returncode == 0, local.stderr[-3000:]
    store = tmp_path / "store"
    with job_cluster(tmp_path, hidden_dirs(real_glue_dir, cache)) as e:
        e = dict(e, GLUE_SWEEP_HOOKS=str(REPO / "tests" / "faults" / "plugin.py"), GLUE_SWEEP_FAULTS="sleep:s0:12")   # long enough for the worker node to start its first trial
        r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "submit-job", str(spec), "--address",
                            f"http://127.0.0.1:{DASHBOARD}", "--storage", str(store), "--wait"],
                           cwd=REPO, env=dict(e, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-5000:]
    assert "ray job logs --address" in r.stderr and "glue-sweep-jobsweep-" in r.stderr
    recs = records(store / "jobsweep")
    assert len(recs) == 4 and all(x["status"] == "completed" for x in recs.values())
    assert len({x["node"] for x in recs.values()}) == 2, [x["node"] for x in recs.values()]
    assert scores(store / "jobsweep") == scores(tmp_path / "local" / "jobsweep")
    assert (store / "jobsweep" / "sweep.yaml").is_file() and (store / "jobsweep" / "data.json").is_file()
    st = run_cli(["status", str(store / "jobsweep")])
    assert st.returncode == 0 and "4 trials: 4 completed" in st.stdout
