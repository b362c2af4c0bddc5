"""The sweep driver: from a validated ``Sweep`` to finished records.

It checks the data on the driver, takes the sweep's lock, reads the result store, keeps every
finished trial (a re-run only runs what is unfinished or failed, after checking with
``identity`` that the finished ones were run with today's settings and data), warms the
feature cache once, and runs the remaining trials as Tune experiments
(one per job, see ``jobs``) with the store recorder, grouped ASHA and no checkpoints.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from .. import store, teacher
from ..config import TrialConfig, display_name
from ..data import source_from
from ..errors import UserError
from ..features import cache_dir, features
from ..fileio import atomic_write_json, atomic_write_text, check_writable_dir
from ..identity import check_reuse, data_fingerprint, identity_fields
from ..models import load_tokenizer, resolve
from ..resources import gpu_memory_bytes, trial_gpu_share
from ..spec import Sweep
from ..tasks import get_task
from .asha import grouped_asha
from .cluster import RunLock, check_address, check_fits, dashboard_info, print_dashboard, start_ray
from .jobs import Job, grid_jobs, optuna_jobs, trial_of
from .recorder import StopOnWriteError, StoreRecorder
from .trainable import trainable

EXIT_FAILED = 3   # the sweep ended with failed trials (README: exit codes)
TEACHER_KEYS = ("task", "teacher", "directory", "transfer", "rows", "max_length", "metrics", "score")


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


def wanted(sweep: Sweep, records: list[dict], fps: dict[str, str]) -> dict[str, tuple[TrialConfig, str]]:
    """Trial id -> (configuration, data fingerprint) today's spec gives each trial of the store:
    the grid's trials, or (optuna) the sampled configurations of its studies."""
    if sweep.mode == "grid":
        return {t.id: (t.config, fps[t.config.task]) for t in sweep.trials()}
    by_label = {display_name(s.name, i): (s, i) for s, i in sweep.models}
    out = {}
    for r in records:
        t, m = r["trial"], by_label.get(r["model"])
        if m is None or t["task"] not in fps or t["seed"] not in sweep.seeds:
            continue
        cfg = sweep.trial(m[0], m[1], t["task"], t["batch_size"], t["learning_rate"], t["seed"]).config
        out[r["trial_id"]] = (cfg, fps[t["task"]])
    return out


def reusable(sweep: Sweep, records: list[dict], fps: dict[str, str], retry_failed: bool, out) -> list[dict]:
    """The records a re-run keeps (refusing, in one line, records run with other settings);
    failed ones are dropped when they are to be retried."""
    want = wanted(sweep, records, fps)
    final = [r for r in records if r["status"] in store.FINAL]
    for line in check_reuse(sweep.run_dir, final, want):
        print(line, file=out)
    others = sum(1 for r in records if r["trial_id"] not in want)
    if others and sweep.mode == "grid":
        print(f"note: {others} record(s) in {sweep.run_dir} are not trials of this spec; they are kept "
              f"(and the tables show them)", file=out)
    return [r for r in records if not (retry_failed and r["status"] == "failed")]


def warm_cache(sweep: Sweep, configs: list[TrialConfig], out=sys.stderr) -> None:
    """Tokenise every (task, vocabulary) the sweep needs once, before any trial starts."""
    source = source_from(sweep.glue_dir, sweep.hub)
    done, stats, t0 = set(), {}, time.perf_counter()
    for cfg in configs:
        key = (cfg.model, cfg.init, cfg.task)
        if key in done:
            continue
        done.add(key)
        task = get_task(cfg.task)
        tok = load_tokenizer(resolve(cfg.model), cfg.init, cfg.trust_remote_code)
        for split in ["train"] + [s.name for s in task.eval_splits]:
            features(task, split, source, tok, cfg.max_length, stats=stats)
    print(f"features ready in {time.perf_counter() - t0:.1f}s ({stats.get('misses', 0)} tokenised, "
          f"{stats.get('hits', 0)} from cache)", file=out)


def run(sweep: Sweep, address: str | None = None, storage: str | None = None, resume: bool = True,
        secure: bool = True, retry_failed: bool = True, out=sys.stderr) -> int:
    """Run (or finish) a sweep. Returns the process exit code. Every check that can refuse
    (address, data, settings of finished records) runs before anything is written."""
    if address:
        check_address(address)
    check_writable_dir(sweep.run_dir, "results directory")
    source = source_from(sweep.glue_dir, sweep.hub)
    fps = data_fingerprints(sweep, source)
    reusable(sweep, store.read_records(sweep.run_dir)[0], fps, retry_failed, io.StringIO())   # refuse early
    soft = teacher.prepare(sweep, out=out) if sweep.distill else {}   # soft labels once; a bad teacher refuses here
    run_dir = sweep.run_dir
    with RunLock(run_dir):
        records, problems = store.read_records(run_dir)
        for p in problems:
            print(f"warning: ignoring unusable record {p} (its trial runs again)", file=out)
        kept = reusable(sweep, records, fps, retry_failed, out)
        retry = sorted(r["trial_id"] for r in records if r["status"] == "failed") if retry_failed else []
        jobs, total, finished = (grid_jobs if sweep.mode == "grid" else optuna_jobs)(sweep, kept)
        print(f"sweep {sweep.name}: {'optuna, ' if sweep.mode == 'optuna' else ''}{total} trials, {finished} already "
              f"finished, {total - finished} to run"
              + (f" ({len(retry)} failed before: retried; --no-retry-failed keeps them)" if retry else "")
              + f"; results in {run_dir}/trials/", file=out)
        if soft:
            _save_teachers(run_dir, soft)
        if not jobs:
            return report_failed(sweep, out, _grid_ids(sweep) if sweep.mode == "grid" else set())
        if not address:
            warm_cache(sweep, [c for j in jobs for c in j.warm], out)
        identity = (lambda cfg: identity_fields(cfg, fps[cfg.task]))
        return _run_jobs(sweep, jobs, run_dir, kept, address, storage, secure, identity, out,
                         {task: str(p) for task, (p, _) in soft.items()})


def _save_teachers(run_dir: Path, soft: dict) -> None:
    """The teachers' own dev scores (and where their soft labels are), for the leaderboard's reference row."""
    rows = [{k: meta[k] for k in TEACHER_KEYS if k in meta} | {"soft_labels": str(p)} for p, meta in soft.values()]
    atomic_write_json(run_dir / "teachers.json", rows)


def _save_spec(sweep: Sweep, run_dir: Path) -> None:
    """The spec the results were run with, next to them (once every check has passed)."""
    if Path(sweep.path).is_file():
        atomic_write_text(run_dir / "sweep.yaml", Path(sweep.path).read_text(encoding="utf-8"))


def _grid_ids(sweep: Sweep) -> set[str]:
    return {t.id for t in sweep.trials()}


def report_failed(sweep: Sweep, out, ids: set[str]) -> int:
    """The exit code of a sweep that ran to its end: EXIT_FAILED, naming each failed trial (of
    ``ids``: the grid's trials, or the optuna samples of this run) with its first error line."""
    failed = [r for r in store.read_records(sweep.run_dir)[0] if r["status"] == "failed" and r["trial_id"] in ids]
    if not failed:
        return 0
    print(f"{len(failed)} trial(s) failed (run the same command again to retry them):", file=out)
    for r in failed:
        first = next((l for l in str(r.get("error") or "").splitlines() if l.strip()), "no error recorded")
        print(f"  {r['trial_id']}: {first[:300]}", file=out)
    return EXIT_FAILED


def _trial_cpus(sweep: Sweep, has_gpu: bool) -> float:
    return sweep.cpus_per_trial if not has_gpu else max(1.0, min(sweep.cpus_per_trial, 2.0))


def _resources(sweep: Sweep, has_gpu: bool):
    """Ray resources of a trial: CPUs, and (when the cluster has GPUs) a share of one."""
    cpus = _trial_cpus(sweep, has_gpu)
    gpu_mem = gpu_memory_bytes() if has_gpu else None

    def resources(config):
        if not has_gpu:
            return {"cpu": cpus}
        if sweep.gpus_per_trial != "auto":
            return {"cpu": cpus, "gpu": float(sweep.gpus_per_trial)}
        cfg = trial_of(config).config
        if sweep.mode == "optuna":   # sized for the largest batch the study may draw
            cfg = cfg.replace(batch_size=max(sweep.batch_sizes))
        return {"cpu": cpus, "gpu": trial_gpu_share(cfg, gpu_mem)}

    return resources, max(1, int(cpus))


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


def _tuner(sweep: Sweep, job: Job, k: int, resources, runtime: dict, recorder: StoreRecorder, storage_path: str,
           out) -> tune.Tuner:
    space, search_alg, samples = _search(sweep, job, out)
    return tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space={**space, "runtime": runtime},
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


def _run_jobs(sweep: Sweep, jobs: list[Job], run_dir: Path, records: list[dict], address, storage, secure,
              identity, out, soft: dict[str, str]) -> int:
    _, url = start_ray(address, None, secure)
    try:
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        resources, threads = _resources(sweep, has_gpu)
        check_fits(sweep.path, _trial_cpus(sweep, has_gpu), sweep.gpus_per_trial if has_gpu else 0)
        _save_spec(sweep, run_dir)
        info = dashboard_info(url, secure)
        atomic_write_json(run_dir / "dashboard.json", info)
        print_dashboard(info, out)
        runtime = {"glue_dir": sweep.glue_dir, "hub": sweep.hub, "threads": threads, "soft_labels": soft}
        attempts = {r["trial_id"]: r.get("attempts", 0) for r in records}
        finished = {r["trial_id"] for r in records if r["status"] in store.FINAL}
        recorder = StoreRecorder(sweep.name, run_dir, attempts, finished, out, identity=identity)
        storage_path = storage or str((run_dir / "ray").resolve())
        interrupted = False
        for k, job in enumerate(jobs):
            _tuner(sweep, job, k, resources, runtime, recorder, storage_path, out).fit()
            if recorder.write_error:
                raise UserError(f"{recorder.write_error}; the sweep stopped. Finished records are kept: "
                                f"free space and run the same command again")
            records = store.read_records(run_dir)[0]
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
    ids = _grid_ids(sweep) if sweep.mode == "grid" else {r["trial_id"] for r in recorder.records.values()}
    return report_failed(sweep, out, ids)
