"""Where a sweep runs: the cluster address check, the local or remote Ray start, the Ray
dashboard's address and login, and the one-driver-per-sweep lock."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import ray

from ..errors import UserError

# Settings that travel from the driver to every worker. Paths do not (GLUE_DIR, MODELS_DIR,
# HF_HOME, the feature cache, the vocabulary): a node keeps its own, and the data, features and
# vocabulary travel with the trials (shipping.py).
FORWARD_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
FORWARD_PREFIX = "GLUE_SWEEP_"   # every GLUE_SWEEP_* setting travels too (hooks read theirs) ...
LOCAL_ONLY = ("GLUE_SWEEP_CACHE", "GLUE_SWEEP_VOCAB", "GLUE_SWEEP_TASKS_DIR")   # ... but these paths


def worker_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if v and (k in FORWARD_ENV or k.startswith(FORWARD_PREFIX)) and k not in LOCAL_ONLY}
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def check_client_address(address: str) -> None:
    """Ray Client (``ray://``) runs Tune's controller on the head and cannot carry the driver's
    store writer; a dashboard address (``http://``) is for job submission. Both: one line."""
    if address.startswith("ray://"):
        raise UserError(f"{address}: Ray Client (ray://) addresses cannot run a sweep; submit it as a Ray Job "
                        f"instead: glue-sweep submit-job SWEEP --address http://<head>:8265")
    if address.startswith(("http://", "https://")):
        raise UserError(f"{address} is a Ray dashboard address: submit the sweep to it with "
                        f"glue-sweep submit-job SWEEP --address {address} (run --address takes host:port or auto)")


def check_address(address: str) -> None:
    """Fail fast, with one line, when a cluster address cannot be reached."""
    if address in ("auto", "local"):
        return
    check_client_address(address)
    url = urlparse(address if "://" in address else f"tcp://{address}")
    host, port = url.hostname, url.port or (10001 if url.scheme == "ray" else 6379)
    if not host:
        raise UserError(f"cluster address {address!r} is not host:port")
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as e:
        raise UserError(f"cannot reach the Ray cluster at {address} ({e.strerror or e})") from None


class RunLock:
    """One driver per sweep directory: a second ``run`` on it refuses, it never interleaves."""

    def __init__(self, run_dir: Path, label: str | None = None):
        self.path = run_dir / ".lock"
        self.label = label or str(run_dir)
        self.fd = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(self.fd, 64, 0).decode(errors="replace").strip()
            os.close(self.fd)
            raise UserError(f"sweep directory {self.label} is in use by another glue-sweep run"
                            f"{' (pid ' + other + ')' if other else ''}") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def start_ray(address: str | None, num_cpus: int | None, secure: bool):
    """A new local Ray (dashboard on loopback) or a connection to ``address``; returns
    (context, dashboard URL)."""
    if secure:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    # In a Ray Job the job's runtime_env (working_dir, env_vars: job.py) already applies to every
    # worker; a second one here would conflict with it.
    in_job = "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ
    kw = dict(runtime_env=None if in_job else {"env_vars": worker_env()}, log_to_driver=False, logging_level="ERROR")
    try:
        if address:
            check_address(address)
            ctx = ray.init(address=address, **kw)
        else:
            # address="local": always a new local instance, never a stale one that a
            # `ray start` left in /tmp/ray/ray_current_cluster.
            ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                           _node_ip_address="127.0.0.1", **kw)
    except UserError:
        raise
    except Exception as e:
        first = next((l for l in str(e).splitlines() if l.strip()), type(e).__name__)
        raise UserError(f"could not {'connect to the Ray cluster at ' + address if address else 'start Ray'}: "
                        f"{first[:300]}") from None
    url = getattr(ctx, "dashboard_url", None) or ""
    return ctx, (f"http://{url}" if url and not url.startswith("http") else url)


def dashboard_info(url: str, secure: bool) -> dict:
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    return {"url": url, "auth": "token" if secure else "none", "token_file": str(token_file) if secure else None,
            "pid": os.getpid(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def print_dashboard(info: dict, out=sys.stderr) -> None:
    if not info.get("url"):
        return
    print(f"Ray dashboard: {info['url']}", file=out)
    if info["auth"] == "token":
        print(f"  token auth on: log in with the token in {info['token_file']} (or `ray get-auth-token`; "
              f"`make dashboard` prints both)", file=out)
    port = urlparse(info["url"]).port or 8265
    print(f"  on a remote head node: ssh -N -L {port}:127.0.0.1:{port} <you>@<head>, then open http://127.0.0.1:{port}",
          file=out)


