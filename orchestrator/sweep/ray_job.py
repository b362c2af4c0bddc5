"""``glue-sweep submit-job``: a sweep submitted to a Ray cluster as a Ray Job.

The job's driver (``glue-sweep run``) runs on the cluster's head node, so Tune's controller and
the result-store writer run there, in one process, as they do locally (Ray Client would split
them; its addresses are refused). What travels with the job (its ``runtime_env``):

* ``working_dir``: a staged copy of the ``orchestrator`` package, the task definitions and the
  sweep file (as ``sweep.yaml``), so no node needs the project installed, only its
  dependencies in the same Python version;
* ``entrypoint``: ``<python> -m orchestrator.cli.job_entry run sweep.yaml --storage ...``, where
  ``<python>`` is ``--python`` (default ``python``: the first on the PATH of the head's Ray); the
  job's log names that interpreter first, and one missing dependency is one line, not a traceback;
* ``env_vars``: ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``, every ``GLUE_SWEEP_*`` setting that
  is not a local path, and ``GLUE_DIR``/``GLUE_HUB`` made absolute (the job's driver reads the
  data; the workers get tokenised features from it, see ``shipping``).

The job is named after the sweep (``submission_id`` ``glue-sweep-<sweep>-<time>``); a second
job of the same sweep and storage is refused while the first is pending or running.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import tempfile
import time
from pathlib import Path

from ..errors import UserError
from ..registry import tasks
from ..spec.sweep import Sweep
from ..store import location as storage
from .address import jobs_address
from .cluster import LOCAL_ONLY

PACKAGE = Path(__file__).resolve().parent.parent
JOB_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "RAY_AUTH_MODE")
ACTIVE = ("PENDING", "RUNNING")

log = logging.getLogger(__name__)


def job_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if v and (k in JOB_ENV or k.startswith("GLUE_SWEEP_"))
           and k not in LOCAL_ONLY}
    for key in ("GLUE_DIR", "GLUE_HUB"):
        v = os.environ.get(key)
        if v:
            env[key] = storage.absolute(v) if key == "GLUE_DIR" or Path(v).expanduser().is_dir() else v
    return env


def stage(sweep_text: str, dst: Path) -> Path:
    """The job's working directory: the package, the task definitions and the sweep file."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(PACKAGE, dst / "orchestrator", ignore=ignore)
    shutil.copytree(tasks.TASKS_DIR, dst / "tasks", ignore=ignore)
    (dst / "sweep.yaml").write_text(sweep_text, encoding="utf-8")
    return dst


def absolute_spec(sweep: Sweep) -> str:
    """The sweep file as the job runs it: the data directory and results made absolute here,
    where relative paths were written."""
    import yaml

    raw = dict(sweep.raw)
    if sweep.glue_dir:
        raw["data"] = {"glue_dir": storage.absolute(sweep.glue_dir)}
    elif sweep.hub:
        raw["data"] = {"hub": storage.absolute(sweep.hub) if Path(sweep.hub).expanduser().is_dir() else sweep.hub}
    raw["results"] = storage.absolute(sweep.results)
    return yaml.safe_dump(raw, sort_keys=False)


def client(address: str | None):
    """Ray's Jobs client for ``address`` (or ``RAY_ADDRESS``), which is checked to answer first:
    one line within seconds, not Ray's minutes of retries."""
    address = jobs_address(address)
    from ray.job_submission import JobSubmissionClient  # Ray: heavy, only this command needs it

    try:
        return JobSubmissionClient(address)
    except Exception as e:
        first = next((l for l in str(e).splitlines() if l.strip()), type(e).__name__)
        where = address or os.environ.get("RAY_ADDRESS") or "the default address"
        raise UserError(f"cannot reach the Ray Jobs API at {where}: {first[:300]}") from None


def submit(sweep: Sweep, address: str | None, storage_uri: str | None, python: str = "python") -> tuple[object, str]:
    """Submit the sweep as a Ray Job; returns (client, submission id). Logs how to follow it."""
    store_root = storage_uri if storage_uri is not None else storage.absolute(sweep.results)
    storage.reachable(store_root)   # an empty --storage, a missing bucket: one line, nothing submitted
    if not storage.is_uri(store_root):
        store_root = storage.absolute(store_root)
    c = client(address)
    for job in c.list_jobs():
        meta = job.metadata or {}
        if meta.get("glue_sweep") == sweep.name and meta.get("storage") == store_root and str(job.status) in ACTIVE:
            raise UserError(f"sweep {sweep.name} is already running as Ray Job {job.submission_id} "
                            f"(storage {store_root}); stop it first: ray job stop {job.submission_id}")
    sid = f"glue-sweep-{sweep.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    # job_entry names the interpreter in the job's log and checks its packages before running the sweep
    entry = f"{shlex.quote(python)} -m orchestrator.cli.job_entry run sweep.yaml --storage {shlex.quote(store_root)}"
    with tempfile.TemporaryDirectory(prefix="glue-sweep-job-") as tmp:
        wd = stage(absolute_spec(sweep), Path(tmp))
        c.submit_job(entrypoint=entry, submission_id=sid,
                     runtime_env={"working_dir": str(wd), "env_vars": job_env()},
                     metadata={"glue_sweep": sweep.name, "storage": store_root})
    url = c.get_address()
    run = storage.at(store_root).join(sweep.name)
    log.info(f"submitted sweep {sweep.name} as Ray Job {sid} to {url}")
    log.info(f"  it runs:    {entry}   (`{python}` as the head's Ray finds it on its PATH; --python names another)")
    log.info(f"  follow it:  ray job logs --address {url} -f {sid}")
    log.info(f"  stop it:    ray job stop --address {url} {sid}")
    log.info(f"  dashboard:  {url}/#/jobs/{sid}")
    log.info(f"  results:    glue-sweep status {run}   (leaderboard and submit read the same location)")
    return c, sid


def wait(c, sid: str, poll: float = 2.0) -> int:
    """Wait for the job to end, log its log; 0 when it succeeded."""
    while True:
        status = str(c.get_job_status(sid))
        if status not in ACTIVE:
            break
        time.sleep(poll)
    text = c.get_job_logs(sid)
    if text:
        log.info(text.rstrip("\n"))
    (log.info if status == "SUCCEEDED" else log.error)(f"Ray Job {sid}: {status}")
    return 0 if status == "SUCCEEDED" else 1



def command(sweep: Sweep, address: str | None, storage_uri: str | None, python: str, wait_for_it: bool) -> int:
    """``glue-sweep submit-job``: submit, and with ``--wait`` wait for the job's end."""
    c, sid = submit(sweep, address, storage_uri, python)
    return wait(c, sid) if wait_for_it else 0
