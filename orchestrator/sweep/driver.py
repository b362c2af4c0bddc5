"""The sweep driver: from a validated ``Sweep`` to finished records.

It checks the data on the driver, takes the sweep's lock, reads the result store (a local
directory, or ``--storage``: any path or URI ``pyarrow.fs`` opens; ``location``), keeps every
finished trial (a re-run only runs what is unfinished or failed, after checking with
``identity`` that the finished ones were run with today's settings and data), tokenises once
and ships the features with the trials (``shipping``), and runs the remaining trials as Tune
experiments (one per job, see ``jobs``) with the store recorder, grouped ASHA (``asha``: a
keeper every trial asks, Tune itself first-in first-out) and no checkpoints. A driver started
anywhere with the same ``--storage`` resumes the same sweep.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import ray
from ray import tune

from ..config import TrialConfig, display_name, make_trial
from ..data.features import cache_dir, check_cache_dir
from ..data.sources import source_from
from ..fileio import check_writable_dir
from ..results import live
from ..spec.resources import gpu_memory_bytes, trial_gpu_share
from ..spec.sweep import Sweep
from ..spec.units import CPU_FUSE_MAX_SIZE
from ..store import location as storage, records as store
from ..store.identity import check_reuse, data_fingerprint, identity_fields, trial_fingerprint
from . import hooks, mps
from .asha import start_keeper
from .address import resolve as resolve_address
from .cluster import RunLock, check_fits, dashboard_info, log_dashboard, start_ray
from .dashboard import named
from .paths import data_paths, lock_dir, run_location, stay_in_job, tune_storage
from .recorder import StopOnWriteError, StoreRecorder
from .shipping import Shipment, pack, ship_soft_labels
from .tune_jobs import Job, grid_jobs, optuna_jobs, plan_grid, trial_of
from .search import search
from .tune_logs import dirname, loggers

EXIT_FAILED = 3   # the sweep ended with failed trials (docs/faults.md: exit codes)
EXIT_STORE = 4    # the result store could not be written mid-sweep: the sweep stopped (not bad input)
log = logging.getLogger(__name__)
TEACHER_KEYS = ("task", "teacher", "directory", "fingerprint", "transfer", "rows", "max_length", "metrics", "score")


def data_fingerprints(sweep: Sweep, source) -> dict[str, str]:
    """Every task's data, checked on the driver before any trial starts (a malformed row is one
    line naming file:line, also when the trials run on another cluster), and its fingerprint.
    A split is parsed once per content: a marker under the cache remembers that it was valid."""
    out = {}
    for task in sweep.tasks:
        fp = data_fingerprint(source, task)
        marker = cache_dir() / "checked" / f"{task.name}-{fp}"
        if not marker.exists():
            for split in ["train"] + [s.name for s in task.eval_splits]:
                source.load(task, split)
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
            except OSError:
                pass   # checked again next time: slower, never wrong
        out[task.name] = fp
    return out


def fingerprints(fps: dict[str, str], soft_keys: dict[str, str]):
    """A trial configuration -> its fingerprint: its task's data, and for a distilled trial the
    key of the teacher's soft labels (``teacher.soft_keys``: the teacher's and transfer data's content)."""
    return lambda cfg: trial_fingerprint(fps[cfg.task], soft_keys[cfg.task] if cfg.distilled else None)


def wanted(sweep: Sweep, records: list[dict], fp_of) -> dict[str, tuple[TrialConfig, str]]:
    """Trial id -> (configuration, fingerprint) today's spec gives each trial of the store:
    the grid's trials, or (optuna) the sampled configurations of its studies."""
    if sweep.mode == "grid":
        return {t.id: (t.config, fp_of(t.config)) for t in sweep.trials()}
    by_label = {display_name(s.name, i): (s, i) for s, i in sweep.models}
    out = {}
    for r in records:
        t, m = r["trial"], by_label.get(r["model"])
        if m is None or t["task"] not in {x.name for x in sweep.tasks} or t["seed"] not in sweep.seeds:
            continue
        cfg = sweep.trial(m[0], m[1], t["task"], t["batch_size"], t["learning_rate"], t["seed"]).config
        out[r["trial_id"]] = (cfg, fp_of(cfg))
    return out


def reusable(sweep: Sweep, loc: storage.Location, records: list[dict], fp_of, retry_failed: bool,
             say: bool = True) -> list[dict]:
    """The records a re-run keeps (refusing, in one line, records run with other settings);
    failed ones are dropped when they are to be retried. ``fp_of``: :func:`fingerprints`.
    ``say``: log its warnings and notes (else only check)."""
    want = wanted(sweep, records, fp_of)
    final = [r for r in records if r["status"] in store.FINAL]
    warnings = check_reuse(loc, final, want)
    others = sum(1 for r in records if r["trial_id"] not in want)
    if say:
        for line in warnings:
            log.warning(line)
        if others and sweep.mode == "grid":
            log.info(f"note: {others} record(s) in {loc} are not trials of this spec; they are kept "
                     f"(and the tables show them)")
    return [r for r in records if not (retry_failed and r["status"] == "failed")]


def check(sweep: Sweep, storage_uri: str | None, retry_failed: bool = True):
    """Every check that can refuse a sweep before anything is written or started (the store, the
    cache, the data, the settings of finished records); returns (location, glue_dir, hub, data
    source, fingerprint function)."""
    loc = storage.reachable(run_location(sweep, storage_uri))   # a missing bucket: here, not after Ray started
    check_writable_dir(lock_dir(loc), "results directory")
    check_cache_dir()   # features, digests, soft labels: a cache that cannot be used is said, not worked around
    glue_dir, hub = data_paths(sweep)
    source = source_from(glue_dir, hub)
    if sweep.distill:   # torch and transformers, only for a distillation sweep (the driver of others starts sooner)
        from ..train import teacher
    fp_of = fingerprints(data_fingerprints(sweep, source), teacher.soft_keys(sweep, source) if sweep.distill else {})
    reusable(sweep, loc, store.read_records(loc)[0], fp_of, retry_failed, say=False)   # refuse early
    return loc, glue_dir, hub, source, fp_of


def run(sweep: Sweep, address: str | None = None, storage_uri: str | None = None, resume: bool = True,
        secure: bool = True, retry_failed: bool = True) -> int:
    """Run (or finish) a sweep. Returns the process exit code. Every check that can refuse
    (address, data, settings of finished records) runs before anything is written."""
    address = resolve_address(address)
    loc, glue_dir, hub, source, fp_of = check(sweep, storage_uri, retry_failed)
    if sweep.distill:
        from ..train import teacher
    soft = (teacher.prepare(sweep, source=source, after_prepare=_teacher_hook) if sweep.distill
            else {})   # soft labels once; a bad teacher refuses here
    with RunLock(lock_dir(loc), str(loc)):
        records, problems = store.read_records(loc)
        for p in problems:
            log.warning(f"warning: ignoring unusable record {p} (its trial runs again)")
        kept = reusable(sweep, loc, records, fp_of, retry_failed)
        retry = sorted(r["trial_id"] for r in records if r["status"] == "failed") if retry_failed else []
        # a grid's units are planned once Ray says what the workers have (_run_jobs)
        jobs, total, finished = grid_jobs(sweep, kept, gpu=None) if sweep.mode == "grid" else optuna_jobs(sweep, kept)
        log.info(f"sweep {sweep.name}: {'optuna, ' if sweep.mode == 'optuna' else ''}{total} trials, {finished} "
                 f"already finished, {total - finished} to run"
                 + (f" ({len(retry)} failed before: retried; --no-retry-failed keeps them)" if retry else "")
                 + f"; results in {loc}/trials/")
        if soft:
            _save_teachers(loc, soft)
        if not jobs:   # the failed trials kept (--no-retry-failed) still fail the run
            return report_failed(sweep, loc, _grid_ids(sweep) if sweep.mode == "grid"
                                 else {r["trial_id"] for r in kept})
        configs = [c for j in jobs for c in j.warm]
        spec_text = Path(sweep.path).read_text(encoding="utf-8") if Path(sweep.path).is_file() else None

        def shipped() -> Shipment:
            from . import trainable  # noqa: F401 (torch, transformers: loaded here, beside Ray's start)

            shipment = pack(configs, glue_dir, hub)
            shipment.spec_text = spec_text
            return ship_soft_labels(shipment, soft)

        identity = (lambda cfg: identity_fields(cfg, fp_of(cfg)))
        return _run_jobs(sweep, jobs, loc, kept, address, shipped, secure, identity, total)


def store_lost(error: str) -> int:
    """The exit code of a sweep whose result store stopped taking records (a full disk, an object
    store gone away) after it had started: one line, EXIT_STORE. Every record written is whole."""
    log.error(f"glue-sweep: error: {error}; the sweep stopped. Records already written are kept: make the store "
              f"writable again (free space, reach it) and run the same command again")
    return EXIT_STORE


def _teacher_hook(p) -> None:
    """A teacher re-trained in the driver is a trial too: the hooks' ``after_prepare`` sees it."""
    hooks.call("after_prepare", make_trial(p.config, p.config.model), p)


def _save_teachers(loc: storage.Location, soft: dict) -> None:
    """The teachers' own dev scores (and where their soft labels are), for the leaderboard's reference row."""
    rows = [{k: meta[k] for k in TEACHER_KEYS if k in meta} | {"soft_labels": str(p)} for p, meta in soft.values()]
    loc.join("teachers.json").write_text(json.dumps(rows, indent=2) + "\n")


def _save_spec(sweep: Sweep, loc: storage.Location, shipment: Shipment) -> None:
    """The spec the results were run with and the data it read, next to them (once every
    check has passed)."""
    if shipment.spec_text is not None:
        loc.join("sweep.yaml").write_text(shipment.spec_text)
    store.write_data_source(loc, shipment.glue_dir, shipment.hub)


def _grid_ids(sweep: Sweep) -> set[str]:
    return {t.id for t in sweep.trials()}


def report_failed(sweep: Sweep, loc: storage.Location, ids: set[str]) -> int:
    """The exit code of a sweep that ran to its end: EXIT_FAILED, naming each failed trial (of
    ``ids``: the grid's trials, or the optuna samples of this run) with its first error line."""
    failed = [r for r in store.read_records(loc)[0] if r["status"] == "failed" and r["trial_id"] in ids]
    if not failed:
        return 0
    log.error(f"{len(failed)} trial(s) failed (run the same command again to retry them):")
    for r in failed:
        first = next((l for l in str(r.get("error") or "").splitlines() if l.strip()), "no error recorded")
        log.error(f"  {r['trial_id']}: {first[:300]}")
    return EXIT_FAILED


def _trial_cpus(sweep: Sweep, has_gpu: bool) -> float:
    return sweep.cpus_per_trial if not has_gpu else max(1.0, min(sweep.cpus_per_trial, 2.0))


class GpuWatch:
    """Whether the cluster has GPUs, re-read (at most every ``every`` seconds) as trials are
    created, so that GPU nodes joining an autoscaling cluster get GPU trials."""

    def __init__(self, every: float = 10.0):
        self.every, self.at, self.has = every, -1e9, False

    def __call__(self) -> bool:
        if time.monotonic() - self.at > self.every:
            self.has, self.at = ray.cluster_resources().get("GPU", 0) > 0, time.monotonic()
        return self.has


def _gpu_trials(sweep: Sweep, has_gpu) -> bool:
    """Whether trials get GPUs: the spec declares a share, or (``auto``) the cluster has GPUs now."""
    return float(sweep.gpus_per_trial) > 0 if sweep.gpus_per_trial != "auto" else has_gpu()


def _units_line(jobs: list[Job]) -> str:
    units = [t for j in jobs for t in j.trials or [] if t.get("members")]
    solo = sum(1 for j in jobs for t in j.trials or [] if not t.get("members"))
    return f"{len(units)} fused unit(s), {solo} solo trial(s)"


def _resources(sweep: Sweep, has_gpu):
    """Ray resources of a trial: CPUs, and a share of a GPU when the spec declares one
    (``gpus_per_trial`` a number) or, with ``auto``, when the cluster has GPUs now."""
    gpu_mem = []

    def resources(config):
        declared = sweep.gpus_per_trial != "auto"
        if not _gpu_trials(sweep, has_gpu):
            return {"cpu": _trial_cpus(sweep, False)}
        if declared:
            return {"cpu": _trial_cpus(sweep, True), "gpu": float(sweep.gpus_per_trial)}
        cfg = trial_of(config).config
        if sweep.mode == "optuna":   # sized for the largest batch the study may draw
            cfg = cfg.replace(batch_size=max(sweep.batch_sizes))
        gpu_mem[:] = gpu_mem or [gpu_memory_bytes()]
        members = len(config["trial"].get("members") or [None])   # a fused unit: all its members
        return {"cpu": _trial_cpus(sweep, True), "gpu": trial_gpu_share(cfg, gpu_mem[0], members)}

    return resources


def _tuner(sweep: Sweep, job: Job, k: int, resources, shipment: Shipment, recorder: StoreRecorder,
           storage_path: str, keeper: str | None = None) -> tune.Tuner:
    from .trainable import trainable   # torch and the runner: imported here, after Ray has started (see _run_jobs)

    space, search_alg, samples = search(sweep, job, Path(storage_path).parent)
    return tune.Tuner(
        # resources on the function, then the class: the dashboard's Class column reads GlueTrial
        named(tune.with_resources(tune.with_parameters(trainable, shipment=shipment, keeper=keeper), resources)),
        param_space=space,
        tune_config=tune.TuneConfig(metric="score", mode="max", search_alg=search_alg, num_samples=samples,
                                    max_concurrent_trials=sweep.max_concurrent,
                                    # a worker runs trial after trial: imports, CUDA context, tokenizer and
                                    # features stay warm (trials of equal resource requests share workers)
                                    reuse_actors=True,
                                    trial_name_creator=lambda t: trial_of(t.config).id,
                                    trial_dirname_creator=dirname),
        run_config=tune.RunConfig(name=f"attempt-{time.strftime('%Y%m%d-%H%M%S')}-{k}", storage_path=storage_path,
                                  failure_config=tune.FailureConfig(max_failures=sweep.retries),
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
                                  callbacks=[recorder, *loggers()], stop=StopOnWriteError(recorder),
                                  verbose=0),
    )


def _run_jobs(sweep: Sweep, jobs: list[Job], loc: storage.Location, records: list[dict], address,
              shipped: Callable[[], Shipment], secure, identity, total: int) -> int:
    # The features are packed (tokenizer, its imports, the cache) while Ray starts.
    packing = ThreadPoolExecutor(1, thread_name_prefix="pack")
    shipment_f = packing.submit(shipped)
    packing.shutdown(wait=False)
    try:
        ctx, url = start_ray(address, None, secure)
    except BaseException:
        shipment_f.exception()   # a packing error after a start error is the start error's business
        raise
    view = None
    try:
        shipment = shipment_f.result()
        has_gpu = GpuWatch()
        resources = _resources(sweep, has_gpu)
        check_fits(sweep.path, _trial_cpus(sweep, has_gpu()), sweep.gpus_per_trial if has_gpu() else 0)
        if has_gpu():
            log.info(mps.describe())
        if sweep.mode == "grid":
            gpu = _gpu_trials(sweep, has_gpu)
            jobs = [plan_grid(j, sweep, gpu) for j in jobs]   # CPU workers: only the units that pay there
            if sweep.fuse == "auto" and not gpu:
                log.info(f"fuse auto on CPU workers: {_units_line(jobs)} (models of at most {CPU_FUSE_MAX_SIZE} "
                         f"layers x hidden stacked; fuse: on stacks every BERT model)")
        session = ctx.address_info.get("session_dir")
        info = dashboard_info(url, secure, session if session and Path(session).is_dir() else None) | {"trials": total}
        try:
            _save_spec(sweep, loc, shipment)
            loc.join("dashboard.json").write_text(json.dumps(info, indent=2) + "\n")
        except OSError as e:
            return store_lost(f"cannot write to {loc}: {e.strerror or e}")
        log_dashboard(info)
        attempts = {r["trial_id"]: r.get("attempts", 0) for r in records}
        finished = {r["trial_id"] for r in records if r["status"] in store.FINAL}
        view = live.Screen(sweep.name, records, total, sys.stderr) if sys.stderr.isatty() else None
        recorder = StoreRecorder(sweep.name, loc, attempts, finished, identity=identity, view=view,
                                 to_run=total - len(finished))
        stay_in_job()   # after the spec is saved: a job's spec path is relative to its working directory
        keeper = start_keeper(sweep, records)   # grouped ASHA: every trial and fused member asks it
        interrupted = False
        for k, job in enumerate(jobs):
            _tuner(sweep, job, k, resources, shipment, recorder, tune_storage(loc),
                   keeper.name if keeper else None).fit()
            if recorder.write_error:
                return store_lost(recorder.write_error)
            try:
                records = store.read_records(loc)[0]
            except OSError as e:
                return store_lost(f"cannot read {loc}: {e.strerror or e}")
            final = {r["trial_id"] for r in records if r["status"] in store.FINAL}
            if any(r["status"] == "running" for r in records) or not job.expected <= final:
                interrupted = True
                break
        if view:
            view.stop(list(recorder.records.values()))
            view = None
        return _finish(sweep, loc, recorder, interrupted)
    finally:
        if view:
            view.stop()
        ray.shutdown()


def best_summary(loc) -> str:
    """Each (model, task)'s best configuration, chosen as the leaderboard chooses it."""
    from ..results.load import load_run
    from ..results.values import fmt_lr

    res = load_run(loc).results
    return "\n".join(f"  {r.model} / {r.task}: best dev score {r.score:.2f} (bs {int(r.batch_size)}, "
                     f"lr {fmt_lr(r.learning_rate)}, epoch {r.epoch:g}, seed(s) {r.seeds})"
                     for r in res.itertuples() if r.score == r.score)


def _finish(sweep: Sweep, loc: storage.Location, recorder: StoreRecorder, interrupted: bool) -> int:
    log.info(f"sweep {sweep.name} {'stopped' if interrupted else 'finished'}: "
             + (", ".join(f"{v} {k}" for k, v in recorder.counts.items() if v) or "no trial finished"))
    if recorder.best:
        log.info(best_summary(loc))
    if interrupted:
        log.warning("the sweep is unfinished (interrupted): run the same command again to finish it")
        return 130
    ids = _grid_ids(sweep) if sweep.mode == "grid" else {r["trial_id"] for r in recorder.records.values()}
    return report_failed(sweep, loc, ids)
