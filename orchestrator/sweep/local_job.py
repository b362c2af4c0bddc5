"""A local ``glue-sweep run`` as a Ray Job: the sweep on the dashboard's Jobs page, with its name,
status and live driver log, while the terminal looks as it did when the driver ran in-process.

1. A local Ray head starts (``ray start --head --block``, in a session of its own, every listener
   on a free loopback port, its own temporary directory so that several sweeps never share one),
   while this process checks the sweep (``driver.check``: bad input is one line before the head
   has come up, and the head is stopped).
2. The driver (``glue-sweep run`` with the same arguments, in the same directory, with the same
   environment: the head inherits it) is submitted to that head as a Ray Job named
   ``glue-sweep-<sweep>-<time>``. Its log is the Jobs page's driver log: the progress lines, the
   warnings, the final summary.
3. This process follows the job: it copies the job's log to stderr as it grows, and on a terminal
   it draws the live view from the result store (the progress lines the job logs for the Jobs
   page are not repeated under it). Ctrl-C (or SIGTERM) stops the job as Ctrl-C stopped the
   in-process driver: the head sends the driver SIGINT (``RAY_JOB_STOP_SIGNAL``), Tune ends the
   trials, the records stay whole, the exit code is 130. A second Ctrl-C stops the head at once.
4. The exit code is the driver's (0, 2 bad input, 3 failed trials, 4 store lost, 130 interrupted);
   the head stops with the job. If this process is killed, the head dies with it
   (``PR_SET_PDEATHSIG``) and the driver at once (``die_with_launcher``): as a killed in-process
   driver, every record written stays whole and the same command resumes.

``run --no-job`` (or ``GLUE_SWEEP_NO_JOB=1``) runs the driver in this process, as before.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import UserError
from ..store import records as store
from ..store import location as storage
from .address import LOOPBACK_ENV
from .cluster import free_ports, private_token, token_file, worker_env
from .paths import in_job
from .prometheus import die_with_parent

NO_JOB_ENV = "GLUE_SWEEP_NO_JOB"
LAUNCHER_ENV = "GLUE_SWEEP_LAUNCHER_PID"   # the job's driver ends when the process that launched it is gone
# ``ray start`` flags of every listener a head opens: each gets a port free now (Ray's defaults are
# fixed numbers a second sweep on the machine could not bind). Workers take ports the OS picks.
HEAD_PORTS = ("port", "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
              "metrics-export-port", "object-manager-port", "node-manager-port", "runtime-env-agent-port",
              "ray-client-server-port")
STOP_WAIT_S = 120          # the driver's time to end its trials after SIGINT before the head kills it
READY_TIMEOUT_S = 120      # the head's time to answer its Jobs API
GIVE_UP_S = 300            # how long a running head's Jobs API may fail to answer before the run gives up
ACTIVE = ("PENDING", "RUNNING")
# the job's log lines the live view replaces on a terminal (recorder: progress and best so far)
PROGRESS = re.compile(r"^\[\d\d:\d\d:\d\d\] (trials: |best so far, )")

log = logging.getLogger(__name__)


def wanted(address: str | None) -> bool:
    """Whether ``run`` goes through a local Ray Job: a local sweep (no address), not already the
    driver of a Ray Job, not asked to stay in-process."""
    return (not address and not in_job()
            and os.environ.get(NO_JOB_ENV, "").lower() not in ("1", "true", "yes"))


def head_command(ports: dict[str, int], temp_dir: str) -> list[str]:
    ray = Path(sys.executable).with_name("ray")
    return [str(ray) if ray.is_file() else "ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1", "--include-dashboard=true", f"--temp-dir={temp_dir}",
            "--disable-usage-stats", "--min-worker-port=0", "--max-worker-port=0"] \
        + [f"--{flag}={ports[flag]}" for flag in HEAD_PORTS]


def head_env(secure: bool) -> dict[str, str]:
    """The head's environment, which its workers and the job's driver inherit: this process's,
    loopback kept as the node's address, the workers' settings, SIGINT as the stop signal."""
    env = {**os.environ, **LOOPBACK_ENV, **worker_env(), "RAY_JOB_STOP_SIGNAL": "SIGINT",
           "RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    env[LAUNCHER_ENV] = str(os.getpid())
    if secure:
        env["RAY_AUTH_MODE"] = "token"
    return env


def die_with_launcher(every_s: float = 1.0) -> None:
    """In the job's driver: end at once (as a killed in-process driver would: every record written
    is whole) when the ``glue-sweep run`` that launched it is gone (killed, not interrupted)."""
    import threading

    try:
        pid = int(os.environ.get(LAUNCHER_ENV, ""))
    except ValueError:
        return

    def watch():
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGKILL)
            except PermissionError:
                pass
            time.sleep(every_s)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()


class Head:
    """A local Ray head of one sweep: started at once, ready when its Jobs API answers."""

    def __init__(self, secure: bool):
        self.secure = secure
        if secure:   # the login token, made as a local ray.init makes it when there is none yet (``ray start`` does not)
            from ray._private.authentication.authentication_token_setup import ensure_token_if_auth_enabled

            ensure_token_if_auth_enabled(create_token_if_missing=True)
            private_token()
        self.temp_dir = tempfile.mkdtemp(prefix="ray-glue-sweep-")
        self.ports = dict(zip(HEAD_PORTS, free_ports(len(HEAD_PORTS))))
        self.url = f"http://127.0.0.1:{self.ports['dashboard-port']}"
        self.log_path = Path(self.temp_dir) / "head.log"
        with open(self.log_path, "w") as out:
            self.proc = subprocess.Popen(head_command(self.ports, self.temp_dir), env=head_env(secure),
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True,
                                         preexec_fn=die_with_parent if sys.platform.startswith("linux") else None)

    def client(self):
        """The Jobs client of the head, once it answers; one line if the head did not start."""
        from ray.job_submission import JobSubmissionClient

        end = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise UserError(f"could not start Ray: {self._last_line()}")
            try:   # the token given outright: this process may have imported Ray before token auth was asked
                c = JobSubmissionClient(self.url, headers=self._login())
                private_token()
                return c
            except Exception as e:   # not up yet
                if time.monotonic() > end:
                    raise UserError(f"could not start Ray: its dashboard at {self.url} did not answer within "
                                    f"{READY_TIMEOUT_S} s ({str(e).splitlines()[0][:200]}); see {self.log_path}") from None
                time.sleep(0.25)

    def _login(self) -> dict[str, str] | None:
        if not self.secure:
            return None
        token = os.environ.get("RAY_AUTH_TOKEN") or token_file().read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def _last_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = [l.strip() for l in self.log_path.read_text(errors="replace").splitlines() if l.strip()]
            errors = [l for l in lines if "Error" in l or "error" in l]
            return ((errors or lines or ["no output"])[-1])[:300] + f" (see {self.log_path})"
        return f"see {self.log_path}"

    def driver_log(self, sid: str) -> Path:
        return Path(self.temp_dir) / "session_latest" / "logs" / f"job-driver-{sid}.log"

    def stop(self, wait_s: float = 60.0) -> None:
        """SIGTERM to ``ray start --block`` (it stops what it started), SIGKILL to the group after ``wait_s``."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


class Tail:
    """The new whole lines of a growing file; Ray's own lines before the entrypoint's left out."""

    def __init__(self, path: Path):
        self.path, self.offset, self.rest, self.started = path, 0, b"", False

    def lines(self, final: bool = False) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        parts = (self.rest + data).split(b"\n")
        self.rest = b"" if final else parts.pop()
        out = []
        for raw in parts:
            line = raw.decode(errors="replace").rstrip("\r")
            if not self.started:
                self.started = line.startswith("Running entrypoint for job ")
                continue
            out.append(line)
        return out


def entrypoint(argv: list[str]) -> str:
    """``cd <here> && exec <python> -m orchestrator.cli.main <argv>``: the same run, where it was asked."""
    import shlex

    cmd = [sys.executable, "-m", "orchestrator.cli.main", *argv]
    return f"cd {shlex.quote(os.getcwd())} && exec {' '.join(shlex.quote(a) for a in cmd)}"


def exit_code(info) -> int:
    status = str(info.status)
    if status == "SUCCEEDED":
        return 0
    if status == "STOPPED":
        return 130
    code = getattr(info, "driver_exit_code", None)
    return code if isinstance(code, int) and code > 0 else 1


class Follower:
    """The job's log on stderr, and on a terminal the live view drawn from the store."""

    def __init__(self, name: str, loc: storage.Location, tail: Tail, started: float):
        self.name, self.loc, self.tail, self.started = name, loc, tail, started
        self.tty = sys.stderr.isatty()
        self.view = None
        self.last_read = 0.0

    def _total(self) -> int | None:
        """The sweep's size, as its driver wrote it to ``dashboard.json`` when it started."""
        with contextlib.suppress(OSError, ValueError):
            f = self.loc.join("dashboard.json")
            info = json.loads(f.read_text())
            if isinstance(info, dict) and isinstance(info.get("trials"), int) and info.get("pid") != os.getpid() \
                    and str(info.get("started_at", "")) >= time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)):
                return info["trials"]
        return None

    def poll(self) -> None:
        for line in self.tail.lines():
            self.show(line)
        if self.tty and time.monotonic() - self.last_read >= 1.0:
            self.last_read = time.monotonic()
            self._draw()

    def _draw(self) -> None:
        from ..results import live

        if self.view is None:
            total = self._total()
            if total is None:
                return
            self.view = live.Screen(self.name, [], total, sys.stderr)
        with contextlib.suppress(OSError):
            self.view.update(store.read_records(self.loc)[0])

    def show(self, line: str) -> None:
        if self.view is not None:
            if not PROGRESS.match(line):
                self.view.log(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.view is not None:
            with contextlib.suppress(OSError):
                self.view.stop(store.read_records(self.loc)[0])
            self.view = None
        for line in self.tail.lines(final=True):
            print(line, file=sys.stderr, flush=True)


def run(sweep, argv: list[str], loc: storage.Location, secure: bool, check) -> int:
    """Start a head, run ``check()`` meanwhile, submit ``glue-sweep <argv>`` to it, follow it."""
    started = time.time()
    head = Head(secure)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        check()
        c = head.client()
        sid = f"glue-sweep-{sweep.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        c.submit_job(entrypoint=entrypoint(argv), submission_id=sid,
                     metadata={"glue_sweep": sweep.name, "storage": str(loc), "started_by": "glue-sweep run"})
        log.info(f"sweep {sweep.name} runs as Ray Job {sid}: {head.url}/#/jobs/{sid}")
        return follow(c, sid, Follower(sweep.name, loc, Tail(head.driver_log(sid)), started), head)
    finally:
        signal.signal(signal.SIGTERM, previous)
        head.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _asked(ask, head: Head, patience_s: float = GIVE_UP_S):
    """``ask()`` of the head's Jobs API, asked again while the head runs: a loaded machine's
    dashboard may drop a request now and then, which must not end the sweep."""
    end = time.monotonic() + patience_s
    while True:
        try:
            return ask()
        except Exception:
            if head.proc.poll() is not None or time.monotonic() > end:
                raise
            time.sleep(1.0)


def follow(c, sid: str, out: Follower, head: Head, poll_s: float = 0.25) -> int:
    """Until the job ends: its log to stderr; Ctrl-C stops it (twice: stops the head)."""
    stopping = False
    status_at = 0.0
    while True:
        try:
            out.poll()
            if time.monotonic() - status_at >= 1.0:
                status_at = time.monotonic()
                if str(_asked(lambda: c.get_job_status(sid), head)) not in ACTIVE:
                    break
            time.sleep(poll_s)
        except KeyboardInterrupt:
            if stopping:
                out.end()
                print("glue-sweep: interrupted again: Ray stopped (records written so far are kept)",
                      file=sys.stderr)
                head.stop(wait_s=5)
                return 130
            stopping = True
            with contextlib.suppress(Exception):
                c.stop_job(sid)
        except Exception as e:   # the head went away under the job
            if head.proc.poll() is None:
                raise
            out.end()
            raise UserError(f"the local Ray stopped during the sweep ({str(e).splitlines()[0][:200]}); "
                            f"records written so far are kept: run the same command again") from None
    out.end()
    return exit_code(_asked(lambda: c.get_job_info(sid), head))
