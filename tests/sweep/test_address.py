"""Cluster addresses (``orchestrator.sweep.address``): a port where something answers that is
not a Ray GCS (a web server, a silent listener, one that hangs up), a dead port, a dashboard
that is not one, ``submit-job`` without a scheme: one line within seconds, before any data is
read, tokenised or Ray is started. Every server here is started by the test on 127.0.0.1.

The loopback-only cluster (its GCS on 127.0.0.1 only) is in ``test_loopback_only_cluster_runs_a_sweep``."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from hostile import BASE, cli, one_line
from test_driver import _wait_for, env, records, run_cli, write_spec

from orchestrator.errors import UserError
from orchestrator.sweep import address

LIMIT = 10.0   # seconds a refusal may take (the promise)


class _Handler(http.server.BaseHTTPRequestHandler):
    answer: tuple[int, bytes] = (200, b"<html>hello</html>")

    def do_GET(self):
        code, body = self.answer
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@contextlib.contextmanager
def http_server(code: int = 200, body: bytes = b"<html>hello</html>"):
    """A plain HTTP/1 server on loopback (what a Ray dashboard's port, or any web server, is)."""
    handler = type("H", (_Handler,), {"answer": (code, body)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def tcp_server(behaviour: str):
    """A TCP listener on loopback that accepts and then says nothing (``silent``) or hangs up
    at once (``closes``)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.settimeout(0.2)
    held, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = s.accept()
            except OSError:
                continue
            if behaviour == "closes":
                c.close()
            else:
                held.append(c)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield s.getsockname()[1]
    finally:
        stop.set()
        t.join(5)
        for c in held:
            c.close()
        s.close()


@contextlib.contextmanager
def fake_gcs():
    """A real gRPC server on loopback (grpcio comes with Ray): it speaks HTTP/2 as a GCS does."""
    import grpc

    server = grpc.server(ThreadPoolExecutor(1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spec(tmp_path, real_glue_dir) -> Path:
    spec = tmp_path / "s.yaml"
    spec.write_text(BASE + f"results: {tmp_path / 'results'}\ndata: {{glue_dir: {real_glue_dir}}}\n")
    return spec


def _timed(argv) -> tuple[int, str, float]:
    t0 = time.monotonic()
    rc, _, err = cli(argv)
    return rc, err, time.monotonic() - t0


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """A feature cache that nothing has written: a refusal before tokenising leaves it absent."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(cache))
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "")   # what submit-job sets is undone after the test
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return cache


@pytest.mark.hardening
@pytest.mark.parametrize("server", ["http", "silent", "closes"])
def test_a_port_that_is_not_a_ray_gcs_is_one_line_within_seconds(tmp_path, real_glue_dir, fresh_cache, server):
    """Before: a web server or a silent listener on the port passed the TCP check and Ray waited on
    it for ever (Ctrl-C ignored); now the port must answer as a gRPC server (HTTP/2) does."""
    spec = _spec(tmp_path, real_glue_dir)
    ctx = http_server() if server == "http" else tcp_server(server)
    with ctx as port:
        rc, err, took = _timed(["run", spec, "--address", f"127.0.0.1:{port}"])
    assert rc == 2, err
    one_line(err)
    assert f"127.0.0.1:{port} is not a Ray cluster's GCS address" in err
    assert ("HTTP/1 server" in err) if server == "http" else True
    assert took < LIMIT
    assert not (tmp_path / "results").exists() and not fresh_cache.exists()   # nothing read, tokenised or written


@pytest.mark.hardening
def test_a_dead_port_is_one_line_within_seconds(tmp_path, real_glue_dir, fresh_cache):
    spec = _spec(tmp_path, real_glue_dir)
    rc, err, took = _timed(["run", spec, "--address", f"127.0.0.1:{_closed_port()}"])
    assert rc == 2 and "cannot reach the Ray cluster" in err and took < LIMIT, err
    one_line(err)
    assert not fresh_cache.exists()


def test_a_grpc_server_passes_the_check_and_loopback_is_known():
    with fake_gcs() as port:
        address.check_address(f"127.0.0.1:{port}")
    assert address.is_loopback("127.0.0.1:6379") and address.is_loopback("[::1]:6379")
    assert address.is_loopback("localhost:1") and not address.is_loopback("auto") and not address.is_loopback(None)
    assert not address.is_loopback("head.example:6379")   # a name, never looked up


@pytest.mark.hardening
@pytest.mark.parametrize("what", ["no scheme, dead", "no scheme, web server", "http, dead", "http, web server",
                                  "http, answers 404"])
def test_submit_job_addresses_that_are_not_a_ray_dashboard_are_one_line_within_seconds(tmp_path, real_glue_dir,
                                                                                   fresh_cache, what):
    """Before: ``submit-job 127.0.0.1:1`` took about a minute and four lines (Ray's retries)."""
    spec = _spec(tmp_path, real_glue_dir)
    ctx = http_server(404, b"not found") if "404" in what else http_server() if "web" in what else \
        contextlib.nullcontext(_closed_port())
    with ctx as port:
        addr = f"127.0.0.1:{port}" if what.startswith("no scheme") else f"http://127.0.0.1:{port}"
        rc, err, took = _timed(["submit-job", spec, "--address", addr])
    assert rc == 2, err
    one_line(err)
    assert took < LIMIT
    assert ("cannot reach" in err) if "dead" in what else ("not a Ray" in err), err
    assert "http://<head>:8265" in err or "dashboard" in err


def test_submit_job_accepts_what_answers_as_a_ray_dashboard():
    with http_server(body=json.dumps({"ray_version": "2.60.0", "version": "4"}).encode()) as port:
        address.check_dashboard(f"http://127.0.0.1:{port}")
    with http_server(401, b"token required") as port:   # token authentication: the Jobs client sends the token
        address.check_dashboard(f"http://127.0.0.1:{port}")
    with http_server(200, b"[1, 2]") as port, pytest.raises(UserError, match="names no Ray version"):
        address.check_dashboard(f"http://127.0.0.1:{port}")


# --- a cluster on loopback only ----------------------------------------------------------------

@contextlib.contextmanager
def loopback_only_head(port: int):
    """A one-node cluster whose every listener is on 127.0.0.1 (``ray start --head`` with
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), in its own process group, stopped afterwards."""
    ray_bin = str(Path(sys.executable).parent / "ray")
    e = env(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    tok = subprocess.run([ray_bin, "get-auth-token", "--generate"], env=e, capture_output=True, text=True)
    assert tok.returncode == 0, tok.stderr
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats"], env=e,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        status = lambda: subprocess.run([ray_bin, "status", f"--address=127.0.0.1:{port}"], env=e,
                                        capture_output=True, text=True, timeout=60)
        _wait_for(lambda: status().returncode == 0, 180, "the loopback-only head node")
        yield head
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)


def test_loopback_only_cluster_runs_a_sweep(tmp_path, real_glue_dir):
    """Before: Ray replaced 127.0.0.1 by the machine's external address, where this GCS does not
    listen, and the driver hung printing "Failed to connect to GCS"."""
    port = _closed_port()
    with loopback_only_head(port):
        listening = {c.laddr.ip for c in psutil.net_connections("tcp")
                     if c.status == "LISTEN" and c.laddr.port == port}
        assert listening and all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ip in listening), listening
        spec = write_spec(tmp_path, "lo", tmp_path / "results", real_glue_dir, tasks="[SST-2]", bs="[16]",
                          lr="[1e-4]", epochs=1, examples=64)
        r = run_cli(["run", str(spec), "--address", f"127.0.0.1:{port}"], timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Failed to connect to GCS" not in r.stderr
    recs = records(tmp_path / "results" / "lo")
    assert len(recs) == 1 and all(x["status"] == "completed" for x in recs.values())
