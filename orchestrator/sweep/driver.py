"""The sweep driver: from a validated ``Sweep`` to finished records.

It takes the sweep's lock, reads the result store (a local directory, or ``--storage``: any
path or URI ``pyarrow.fs`` opens), keeps every finished trial (a re-run only runs what is
unfinished, after checking that the finished ones were run with today's settings), tokenises
once and ships the features with the trials (``shipping``), and runs the remaining trials as
Tune experiments (one per job, see ``jobs``) with the store recorder, grouped ASHA and no
checkpoints. A driver started anywhere with the same ``--storage`` resumes the same sweep.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from .. import storage, store
from ..errors import UserError
from ..resources import gpu_memory_bytes, trial_gpu_share
from ..spec import Sweep
from .asha import grouped_asha
from .cluster import RunLock, check_address, dashboard_info, print_dashboard, start_ray
from .jobs import Job, grid_jobs, optuna_jobs, trial_of
from .recorder import StopOnWriteError, StoreRecorder
from .shipping import Shipment, pack
from .trainable import trainable

COMPARED = ("model", "init", "epochs", "max_train_examples", "max_length")   # settings a finished record must share


def check_compatible(sweep: Sweep, records: list[dict]) -> None:
    """A finished record is only reused if it was run with the settings the spec asks for now."""
    want = {t.id: t.config for t in sweep.trials()}
    for r in records:
        cfg = want.get(r["trial_id"])
        if cfg is None or r["status"] not in store.FINAL:
            continue
        for key in COMPARED:
            had, now = r["trial"].get(key), getattr(cfg, key)
            if had != now and not (key == "epochs" and float(had) == float(now)):
                raise UserError(f"{sweep.run_dir}: trial {r['trial_id']} was run with {key}={had!r}, the spec now "
                                f"says {now!r}; give the sweep a new name (or move the old results)")


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


def lock_dir(loc: storage.Location) -> Path:
    """Where the one-driver lock of a store lives: beside it on a local or shared disk; for an
    object store (no locks there) in this machine's temporary directory, keyed by the URI."""
    if loc.local:
        return Path(loc.path)
    key = hashlib.sha256(str(loc).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "glue-sweep-locks" / f"{loc.name}-{key}"


def run(sweep: Sweep, address: str | None = None, storage_uri: str | None = None, resume: bool = True,
        secure: bool = True, out=sys.stderr) -> int:
    """Run (or finish) a sweep. Returns the process exit code."""
    if address:
        check_address(address)   # before anything is written
    loc = run_location(sweep, storage_uri)
    glue_dir, hub = data_paths(sweep)
    with RunLock(lock_dir(loc), str(loc)):
        records, problems = store.read_records(loc)
        for p in problems:
            print(f"warning: ignoring unreadable record {p}", file=out)
        if Path(sweep.path).is_file():
            loc.join("sweep.yaml").write_text(Path(sweep.path).read_text())
        store.write_data_source(loc, glue_dir, hub)
        if sweep.mode == "grid":
            check_compatible(sweep, records)
            jobs, total, finished = grid_jobs(sweep, records)
        else:
            jobs, total, finished = optuna_jobs(sweep, records)
        print(f"sweep {sweep.name}: {'optuna, ' if sweep.mode == 'optuna' else ''}{total} trials, {finished} already "
              f"finished, {total - finished} to run; results in {loc}/trials/", file=out)
        if not jobs:
            return 0
        shipment = pack([c for j in jobs for c in j.warm], glue_dir, hub, out)
        return _run_jobs(sweep, jobs, loc, records, address, shipment, secure, out)


class GpuWatch:
    """Whether the cluster has GPUs, re-read (at most every ``every`` seconds) as trials are
    created, so that GPU nodes joining an autoscaling cluster get GPU trials."""

    def __init__(self, every: float = 10.0):
        self.every, self.at, self.has = every, -1e9, False

    def __call__(self) -> bool:
        if time.monotonic() - self.at > self.every:
            self.has, self.at = ray.cluster_resources().get("GPU", 0) > 0, time.monotonic()
        return self.has


def _resources(sweep: Sweep, has_gpu):
    """Ray resources of a trial: CPUs, and a share of a GPU when the spec declares one
    (``gpus_per_trial`` a number) or, with ``auto``, when the cluster has GPUs now."""
    gpu_mem = []

    def resources(config):
        declared = sweep.gpus_per_trial != "auto"
        gpu = (float(sweep.gpus_per_trial) > 0) if declared else has_gpu()
        if not gpu:
            return {"cpu": sweep.cpus_per_trial}
        cpus = max(1.0, min(sweep.cpus_per_trial, 2.0))
        if declared:
            return {"cpu": cpus, "gpu": float(sweep.gpus_per_trial)}
        cfg = trial_of(config).config
        if sweep.mode == "optuna":   # sized for the largest batch the study may draw
            cfg = cfg.replace(batch_size=max(sweep.batch_sizes))
        gpu_mem[:] = gpu_mem or [gpu_memory_bytes()]
        return {"cpu": cpus, "gpu": trial_gpu_share(cfg, gpu_mem[0])}

    return resources


def _search(sweep: Sweep, job: Job, out) -> tuple[dict, object, int]:
    """(the job's parameter space without the runtime, its search algorithm, samples)."""
    if job.trials is not None:
        return {"trial": tune.grid_search(job.trials)}, None, 1
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = job.study["config"]["seed"]
    # a resumed study is seeded anew, so that it does not re-draw the first run's samples
    search_alg = OptunaSearch(metric="score", mode="max", seed=1000 * seed + len(job.seen),
                              points_to_evaluate=[c for c, _ in job.seen] or None,
                              evaluated_rewards=[r for _, r in job.seen] or None)
    print(f"optuna study {job.study['group'].replace('|', ' / ')} seed {seed}: {job.samples} trial(s), "
          f"{len(job.seen)} known", file=out)
    space = {"trial": job.study, "batch_size": tune.choice(sweep.batch_sizes),
             "learning_rate": tune.loguniform(sweep.learning_rates[0], sweep.learning_rates[1])}
    return space, search_alg, job.samples


def _tuner(sweep: Sweep, job: Job, k: int, resources, shipment: Shipment, recorder: StoreRecorder,
           storage_path: str, out) -> tune.Tuner:
    space, search_alg, samples = _search(sweep, job, out)
    return tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, shipment=shipment), resources),
        param_space=space,
        tune_config=tune.TuneConfig(metric="score", mode="max", search_alg=search_alg, num_samples=samples,
                                    scheduler=grouped_asha(sweep) if sweep.scheduler == "asha" else None,
                                    max_concurrent_trials=sweep.max_concurrent, reuse_actors=True,
                                    trial_name_creator=lambda t: trial_of(t.config).id,
                                    trial_dirname_creator=lambda t: trial_of(t.config).id[:120]),
        run_config=tune.RunConfig(name=f"attempt-{time.strftime('%Y%m%d-%H%M%S')}-{k}", storage_path=storage_path,
                                  failure_config=tune.FailureConfig(max_failures=sweep.retries),
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
                                  callbacks=[recorder], stop=StopOnWriteError(recorder), verbose=0),
    )


def tune_storage(loc: storage.Location) -> str:
    """Ray Tune's own experiment state (metrics only; resuming reads the result store, not it):
    beside the store on a local or shared disk, else on the driver's local disk."""
    if loc.local:
        return str(Path(loc.path) / "ray")
    return str(lock_dir(loc) / "ray")


def _run_jobs(sweep: Sweep, jobs: list[Job], loc: storage.Location, records: list[dict], address,
              shipment: Shipment, secure, out) -> int:
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
        # A Ray Job's driver: Ray may delete the job's working directory once no worker uses it,
        # and Tune needs a current directory to the end. Everything is imported and absolute now.
        Path(tune_storage(loc)).mkdir(parents=True, exist_ok=True)
        os.chdir(tune_storage(loc))
    _, url = start_ray(address, None, secure)
    info = dashboard_info(url, secure)
    loc.join("dashboard.json").write_text(json.dumps(info, indent=2) + "\n")
    print_dashboard(info, out)
    try:
        resources = _resources(sweep, GpuWatch())
        attempts = {r["trial_id"]: r.get("attempts", 0) for r in records}
        finished = {r["trial_id"] for r in records if r["status"] in store.FINAL}
        recorder = StoreRecorder(sweep.name, loc, attempts, finished, out)
        interrupted = False
        for k, job in enumerate(jobs):
            _tuner(sweep, job, k, resources, shipment, recorder, tune_storage(loc), out).fit()
            if recorder.write_error:
                raise UserError(f"{recorder.write_error}; the sweep stopped. Finished records are kept: "
                                f"free space and run the same command again")
            records = store.read_records(loc)[0]
            final = {r["trial_id"] for r in records if r["status"] in store.FINAL}
            if any(r["status"] == "running" for r in records) or not job.expected <= final:
                interrupted = True
                break
        return _finish(sweep, recorder, interrupted, out)
    finally:
        ray.shutdown()


def _finish(sweep: Sweep, recorder: StoreRecorder, interrupted: bool, out) -> int:
    print(f"sweep {sweep.name} {'stopped' if interrupted else 'finished'}: "
          + (", ".join(f"{v} {k}" for k, v in recorder.counts.items() if v) or "no trial finished"), file=out)
    if recorder.best:
        print(recorder.summary(), file=out)
    if interrupted:
        print("the sweep is unfinished (interrupted): run the same command again to finish it", file=out)
        return 130
    return 0
