"""Where a sweep runs: the local or remote Ray start (its address checked: ``address``), the Ray
dashboard's address and login, and the one-driver-per-sweep lock."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import ray
from ray._private import ray_constants   # read by services.get_node_ip_address at each call
from ray._private import parameter as ray_parameter

from ..errors import UserError
from ..config import ALLOC_CONF
from .address import LOOPBACK_ENV, auto_address, check_address, is_loopback

# Settings that travel from the driver to every worker. Paths do not (GLUE_DIR, MODELS_DIR,
# HF_HOME, the feature cache, the vocabulary): a node keeps its own, and the data, features and
# vocabulary travel with the trials (shipping.py).
FORWARD_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
FORWARD_PREFIX = "GLUE_SWEEP_"   # every GLUE_SWEEP_* setting travels too (hooks read theirs) ...
LOCAL_ONLY = ("GLUE_SWEEP_CACHE", "GLUE_SWEEP_VOCAB", "GLUE_SWEEP_TASKS_DIR")   # ... but these paths

log = logging.getLogger(__name__)


WARM_UP = "orchestrator.sweep.trainable.warm_up"


def worker_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if v and (k in FORWARD_ENV or k.startswith(FORWARD_PREFIX)) and k not in LOCAL_ONLY}
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["PYTORCH_CUDA_ALLOC_CONF"] = os.environ.get("PYTORCH_CUDA_ALLOC_CONF") or ALLOC_CONF   # expandable segments
    return env


def check_fits(spec_path: str, cpus: float, gpus) -> None:
    """One line when no node of the cluster could ever hold a trial (Ray would wait forever)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    most_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    if cpus > most_cpus:
        raise UserError(f"{spec_path}: cpus_per_trial {cpus:g} is more than any node of the cluster has "
                        f"(the largest has {most_cpus:g} CPUs)")
    if gpus != "auto" and float(gpus) > most_gpus:
        raise UserError(f"{spec_path}: gpus_per_trial {float(gpus):g} is more than any node of the cluster has "
                        f"(the largest has {most_gpus:g} GPUs)")


class RunLock:
    """One driver per sweep directory: a second ``run`` on it refuses, it never interleaves.
    Leaving with an error, it removes the lock file and the directories it created (when they
    are still empty), so a refused run leaves the results as they were."""

    def __init__(self, run_dir: Path, label: str | None = None):
        self.path = run_dir / ".lock"
        self.label = label or str(run_dir)
        self.fd = None
        self.created: list[Path] = []

    def __enter__(self):
        try:
            self.created = [p for p in [self.path.parent, *self.path.parent.parents] if not p.exists()]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if new:
                self.created.insert(0, self.path)
            self._take()
        except OSError as e:
            self._release(failed=True)
            raise UserError(f"cannot lock {self.path}: {e.strerror or e}") from None
        return self

    def _take(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(self.fd, 64, 0).decode(errors="replace").strip()
            os.close(self.fd)
            self.fd, self.created = None, []
            raise UserError(f"sweep directory {self.label} is in use by another glue-sweep run"
                            f"{' (pid ' + other + ')' if other else ''}") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def _release(self, failed: bool) -> None:
        if failed:   # remove what this run created, while still holding the lock
            for p in self.created:
                with contextlib.suppress(OSError):
                    p.unlink() if p == self.path else p.rmdir()
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                os.close(self.fd)
            self.fd = None

    def __exit__(self, exc_type, *exc):
        self._release(failed=exc_type is not None)


def token_file() -> Path:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))


def private_token() -> None:
    """The login token readable by its owner only (Ray writes it 0644)."""
    with contextlib.suppress(OSError):
        path = token_file()
        if path.is_file() and path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


def keep_loopback() -> None:
    """A cluster on this machine's loopback is reached at 127.0.0.1, not at the machine's external
    address that Ray puts in its place (``address.LOOPBACK_ENV``; the CLI sets the variable before
    Ray is imported; Ray reads it again here, where it is already imported)."""
    os.environ.update(LOOPBACK_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
# The listeners of a local sweep's Ray, each given a port free at start (bound on loopback, then
# released for Ray to take): Ray's own defaults are fixed numbers (the dashboard 8265, its agent's
# HTTP 52365), which a second Ray on the machine cannot bind. Workers bind a port the OS picks
# (min/max_worker_port 0); a local sweep starts no Ray Client server.
LOCAL_PORTS = ("gcs_server_port", "dashboard_port", "dashboard_agent_listen_port", "metrics_agent_port",
               "metrics_export_port", "object_manager_port", "node_manager_port", "runtime_env_agent_port")


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on loopback now (held together while chosen, so never twice)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def local_ports() -> dict[str, int]:
    return {**dict(zip(LOCAL_PORTS, free_ports(len(LOCAL_PORTS)))), "min_worker_port": 0, "max_worker_port": 0}


@contextlib.contextmanager
def _head_ports(ports: dict[str, int]):
    """``ray.init`` takes only the dashboard's and the metrics exporter's ports; the others are
    fields of the head node's ``RayParams``, given here for the one ``ray.init`` that starts it."""
    base = ray_parameter.RayParams

    class WithPorts(base):
        def __init__(self, *args, **kw):
            super().__init__(*args, **(kw if kw.get("gcs_address") else {**kw, **ports}))

    ray_parameter.RayParams = WithPorts
    try:
        yield
    finally:
        ray_parameter.RayParams = base


def start_ray(address: str | None, num_cpus: int | None, secure: bool):
    """A new local Ray (dashboard on loopback) or a connection to ``address``; returns
    (context, dashboard URL)."""
    if secure:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    # In a Ray Job the job's runtime_env (working_dir, env_vars: job.py) already applies to every
    # worker; a second one here would conflict with it.
    in_job = "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ
    # Every worker imports the trainable when it starts (not when its first trial arrives).
    kw = dict(runtime_env=None if in_job else {"env_vars": worker_env(), "worker_process_setup_hook": WARM_UP},
              log_to_driver=False, logging_level="ERROR")
    try:
        if address:
            address = auto_address() if address == "auto" else address
            check_address(address)
            if is_loopback(address):
                keep_loopback()
            ctx = ray.init(address=address, **kw)
        else:
            # address="local": always a new local instance, never a stale one that a
            # `ray start` left in /tmp/ray/ray_current_cluster.
            with _head_ports(local_ports()):
                ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                               _node_ip_address="127.0.0.1", **kw)
    except UserError:
        raise
    except Exception as e:
        first = next((l for l in str(e).splitlines() if l.strip()), type(e).__name__)
        raise UserError(f"could not {'connect to the Ray cluster at ' + address if address else 'start Ray'}: "
                        f"{first[:300]}") from None
    private_token()
    url = getattr(ctx, "dashboard_url", None) or ""
    return ctx, (f"http://{url}" if url and not url.startswith("http") else url)


def dashboard_info(url: str, secure: bool, session_dir: str | None = None) -> dict:
    """What ``dashboard.json`` says: the dashboard's address and login, the driver, and the Ray
    session's directory (its logs and metrics configuration) when it is on this machine."""
    return {"url": url, "auth": "token" if secure else "none", "token_file": str(token_file()) if secure else None,
            "pid": os.getpid(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "session_dir": session_dir}


def log_dashboard(info: dict) -> None:
    """The dashboard's address and how to log in, when the sweep starts."""
    if not info.get("url"):
        return
    log.info(f"Ray dashboard: {info['url']}")
    if info["auth"] == "token":
        log.info(f"  token auth on: log in with the token in {info['token_file']} (or `ray get-auth-token`; "
                 f"`make dashboard` prints both)")
    port = urlparse(info["url"]).port or 8265
    log.info(f"  on a remote head node: ssh -N -L {port}:127.0.0.1:{port} <you>@<head>, then open "
             f"http://127.0.0.1:{port}")


