"""Where a sweep's things live, decided on the driver before anything travels: the result store
(``--storage`` or the spec's results directory, as a ``storage.Location``), the data source with
every local path absolute, the one-driver lock and Ray Tune's own state."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..spec.sweep import Sweep
from ..store import location as storage

JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"   # set by Ray for the driver of a Ray Job


def run_location(sweep: Sweep, storage_uri: str | None) -> storage.Location:
    """The result store: ``<storage>/<sweep>`` when ``--storage`` is given, else the spec's
    results directory, made absolute (or a URI) before anything is read or written."""
    return storage.at(storage_uri).join(sweep.name) if storage_uri else storage.at(sweep.run_dir)


def data_paths(sweep: Sweep) -> tuple[str | None, str | None]:
    """The sweep's data source with every local path absolute, as it travels to the workers:
    (glue_dir, hub). ``GLUE_DIR`` is read here, on the driver, never on a worker."""
    glue_dir = sweep.glue_dir or (None if sweep.hub else os.environ.get("GLUE_DIR") or None)
    hub = sweep.hub or (None if glue_dir else os.environ.get("GLUE_HUB") or None)
    if hub and Path(hub).expanduser().is_dir():
        hub = storage.absolute(hub)
    return storage.absolute(glue_dir), hub


lock_dir = storage.lock_dir   # where the one-driver lock of a store lives


def tune_storage(loc: storage.Location) -> str:
    """Ray Tune's own experiment state (metrics only; resuming reads the result store, not it):
    beside the store on a local or shared disk, else on the driver's local disk."""
    return str(lock_dir(loc) / "ray")


def in_job() -> bool:
    return JOB_ENV in os.environ


def stay_in_job() -> None:
    """A Ray Job's driver: Ray may delete the job's working directory once no worker uses it,
    and Tune needs a current directory to the end; move to one that stays (everything is
    imported and every path absolute by then)."""
    if in_job():
        d = Path(tempfile.gettempdir()) / "glue-sweep-job"
        d.mkdir(parents=True, exist_ok=True)
        os.chdir(d)
