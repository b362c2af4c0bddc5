"""Prometheus for a running sweep's gauges (``glue-sweep dashboard``), without Ray: Debian's
``prometheus`` started on loopback at a free port with the scrape configuration Ray writes into
its session directory (``metrics/prometheus/prometheus.yml``, which scrapes every node's metrics
exporter), its data in a temporary directory, and stopped (then its data removed) when the
command ends. Ray prefixes user metrics with ``ray_``: the trials' dev scores are
``ray_glue_sweep_dev_score`` (tags trial, model, task)."""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import UserError

BINARY = "prometheus"
DEV_SCORE = "ray_glue_sweep_dev_score"
INSTALL = ("Prometheus is not installed, so the sweep's scores cannot be graphed: install it with "
           "`sudo apt-get install prometheus` (Debian, Ubuntu) or from prometheus.io, then run this again")


def installed() -> str | None:
    return shutil.which(BINARY)


def scrape_config(session_dir: str | Path) -> Path:
    """The Prometheus configuration Ray wrote for its session (its dashboard writes it at start)."""
    return Path(session_dir) / "metrics" / "prometheus" / "prometheus.yml"


def grafana_dir(session_dir: str | Path) -> Path:
    """Ray's Grafana dashboards (JSON) and provisioning files for its session."""
    return Path(session_dir) / "metrics" / "grafana"


def graph_url(base: str, expr: str = DEV_SCORE) -> str:
    """A Prometheus graph page of ``expr`` over the last hour (one line per trial)."""
    return f"{base}/graph?" + urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": "1h"})


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """In the child, before exec: Linux ends it when the command that started it dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


class Prometheus:
    """``with Prometheus(session_dir) as p:`` Prometheus runs at ``p.url`` (127.0.0.1 only)."""

    def __init__(self, session_dir: str | Path, binary: str | None = None, ready_s: float = 60):
        self.config = scrape_config(session_dir)
        self.binary, self.ready_s = binary or installed() or BINARY, ready_s
        self.proc: subprocess.Popen | None = None
        self.data: str | None = None
        self.url = ""

    def __enter__(self) -> Prometheus:
        if not self.config.is_file():
            raise UserError(f"{self.config} is missing: Ray's dashboard writes it when the sweep's Ray starts")
        self.data = tempfile.mkdtemp(prefix="glue-sweep-prometheus-")
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        try:
            with open(Path(self.data) / "prometheus.log", "wb") as log:
                self.proc = subprocess.Popen(
                    [self.binary, f"--config.file={self.config}", f"--web.listen-address=127.0.0.1:{port}",
                     f"--storage.tsdb.path={Path(self.data) / 'tsdb'}", "--log.level=warn"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, preexec_fn=die_with_parent)
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> None:
        end = time.monotonic() + self.ready_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                err = (Path(self.data) / "prometheus.log").read_text(errors="replace").strip().splitlines()
                raise UserError(f"Prometheus exited at start (status {self.proc.returncode}): "
                                f"{err[-1][:300] if err else 'no message'}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            time.sleep(0.3)
        raise UserError(f"Prometheus did not answer at {self.url} within {self.ready_s:.0f} s")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.data:
            shutil.rmtree(self.data, ignore_errors=True)
            self.data = None
