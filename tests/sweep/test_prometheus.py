"""Prometheus graphing a running sweep: ``glue-sweep dashboard`` starts it on loopback with Ray's
scrape configuration, its API returns a ``ray_glue_sweep_dev_score`` series per trial, and it is
gone when the command ends; without the binary, one line says how to install it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
from test_driver import CLI, REPO, env, write_spec

from orchestrator.cli import console
from orchestrator.store import records as store
from orchestrator.sweep import prometheus


def have_prometheus() -> None:
    """Debian's prometheus, installed here when missing and this user may (as `make browser` does)."""
    if shutil.which("prometheus"):
        return
    if os.getuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "prometheus"], capture_output=True, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not shutil.which("prometheus"):
        pytest.skip("the prometheus binary is absent and cannot be installed here (not root, or no apt-get): "
                    "sudo apt-get install prometheus")


def query(url: str, expr: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout=30) as r:
        return json.loads(r.read())["data"]["result"]


def wait(what, timeout: float, step: float = 2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(step)
    pytest.fail(f"timed out after {timeout:.0f}s")


def scored(run: Path) -> dict[str, list[float]] | None:
    """Each trial's dev scores once every trial of the run has one, else None."""
    recs = store.read_records(run)[0]
    if len(recs) == 2 and all(r["evals"] for r in recs) and (run / "dashboard.json").exists():
        return {r["trial_id"]: [e["score"] for e in r["evals"]] for r in recs}
    return None


def test_prometheus_graphs_every_trials_dev_score_while_a_sweep_runs(tmp_path, real_glue_dir):
    have_prometheus()
    spec = write_spec(tmp_path, "prom", tmp_path / "results", real_glue_dir, tasks="[SST-2]", bs="[16]",
                      lr="[1e-4, 5e-5]", epochs=2, examples=120, extra="resources: {max_concurrent: 2}")
    # both trials wait before their second evaluation: the sweep runs on with one score each
    sweep = subprocess.Popen(CLI + ["run", str(spec)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, env=env(PYTHONPATH=str(REPO), GLUE_SWEEP_FAULTS="stall:lr1e-4:600,stall:lr5e-5:600"))
    run, dash = tmp_path / "results" / "prom", None
    try:
        scores = wait(lambda: scored(run), timeout=400)
        dash = subprocess.Popen(CLI + ["dashboard", str(run)], cwd=REPO, env=env(PYTHONPATH=str(REPO)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        while not any(line.startswith("(Prometheus stops") for line in lines):
            line = dash.stdout.readline()
            assert line, f"glue-sweep dashboard ended: {lines} {dash.stderr.read()[-2000:]}"
            lines.append(line.rstrip("\n"))
        url = next(line.split()[1] for line in lines if line.startswith("Prometheus: "))
        graph = next(line.split()[2] for line in lines if line.startswith("dev scores: "))
        assert url.startswith("http://127.0.0.1:") and graph.startswith(f"{url}/graph?")
        assert urllib.parse.parse_qs(urllib.parse.urlparse(graph).query)["g0.expr"] == ["ray_glue_sweep_dev_score"]
        assert any(line.startswith("Grafana: ") and "metrics/grafana/dashboards" in line for line in lines), lines
        # a series per trial, its value the trial's score, scraped from this sweep's Ray
        series = wait(lambda: (got := query(url, "ray_glue_sweep_dev_score"))
                      and {s["metric"]["trial"] for s in got} == set(scores) and got, timeout=420, step=3)
        for s in series:
            assert float(s["value"][1]) in scores[s["metric"]["trial"]], (s, scores)
            assert s["metric"]["task"] == "SST-2" and s["metric"]["model"] == "BERT-Tiny (random init)"
        # Prometheus listens on loopback only, and ends with the command
        (prom,) = [p for p in psutil.Process(dash.pid).children() if p.name() == "prometheus"]
        listening = [c.laddr.ip for c in prom.net_connections("inet") if c.status == psutil.CONN_LISTEN]
        assert listening and set(listening) <= {"127.0.0.1"}, listening
        dash.send_signal(signal.SIGINT)
        assert dash.wait(timeout=60) == 0, dash.stderr.read()[-2000:]
        assert not prom.is_running()
    finally:
        for p in (dash, sweep):
            if p and p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def test_without_prometheus_one_line_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    session = tmp_path / "session"
    (session / "metrics" / "prometheus").mkdir(parents=True)
    monkeypatch.setattr(prometheus.shutil, "which", lambda name: None)
    info = {"pid": os.getpid(), "session_dir": str(session)}
    assert console.graph_scores(info, alive=True) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [prometheus.INSTALL] and "apt-get install prometheus" in out[0]
