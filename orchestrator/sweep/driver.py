"""The sweep driver: from a validated ``Sweep`` to finished records.

It takes the sweep's lock, reads the result store, keeps every finished trial (a re-run only
runs what is unfinished, after checking that the finished ones were run with today's
settings), warms the feature cache once, and runs the remaining trials as Tune experiments
(one per job, see ``jobs``) with the store recorder, grouped ASHA and no checkpoints.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback
from ray.tune.search.optuna import OptunaSearch

from .. import live, store
from ..config import TrialConfig
from ..data import source_from
from ..errors import UserError
from ..features import features
from ..fileio import atomic_write_json
from ..models import load_tokenizer, resolve
from ..resources import gpu_memory_bytes, trial_gpu_share
from ..spec import Sweep
from ..tasks import get_task
from .asha import grouped_asha
from .cluster import RunLock, check_address, dashboard_info, print_dashboard, start_ray
from .jobs import Job, grid_jobs, optuna_jobs, trial_of
from .recorder import StopOnWriteError, StoreRecorder
from .trainable import NamedTrainable

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
        secure: bool = True, out=sys.stderr) -> int:
    """Run (or finish) a sweep. Returns the process exit code."""
    if address:
        check_address(address)   # before anything is written
    run_dir = sweep.run_dir
    with RunLock(run_dir):
        records, problems = store.read_records(run_dir)
        for p in problems:
            print(f"warning: ignoring unreadable record {p}", file=out)
        if Path(sweep.path).is_file():
            (run_dir / "sweep.yaml").write_text(Path(sweep.path).read_text())
        if sweep.mode == "grid":
            check_compatible(sweep, records)
            jobs, total, finished = grid_jobs(sweep, records)
        else:
            jobs, total, finished = optuna_jobs(sweep, records)
        print(f"sweep {sweep.name}: {'optuna, ' if sweep.mode == 'optuna' else ''}{total} trials, {finished} already "
              f"finished, {total - finished} to run; results in {run_dir}/trials/", file=out)
        if not jobs:
            return 0
        if not address:
            warm_cache(sweep, [c for j in jobs for c in j.warm], out)
        return _run_jobs(sweep, jobs, run_dir, records, address, storage, secure, out, total)


def _resources(sweep: Sweep, has_gpu: bool):
    """Ray resources of a trial: CPUs, and (when the cluster has GPUs) a share of one."""
    cpus = sweep.cpus_per_trial if not has_gpu else max(1.0, min(sweep.cpus_per_trial, 2.0))
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
    storage, name = study_storage(sweep.run_dir, job)
    # a resumed study is seeded anew, so that it does not re-draw the first run's samples
    search_alg = OptunaSearch(metric="score", mode="max", seed=1000 * seed + len(job.seen),
                              storage=storage, study_name=name,
                              points_to_evaluate=[c for c, _ in job.seen] or None,
                              evaluated_rewards=[r for _, r in job.seen] or None)
    print(f"optuna study {job.study['group'].replace('|', ' / ')} seed {seed}: {job.samples} trial(s), "
          f"{len(job.seen)} known", file=out)
    space = {"trial": job.study, "batch_size": tune.choice(sweep.batch_sizes),
             "learning_rate": tune.loguniform(sweep.learning_rates[0], sweep.learning_rates[1])}
    return space, search_alg, job.samples


def study_storage(run_dir: Path, job: Job) -> tuple[optuna.storages.BaseStorage, str]:
    """The study's SQLite storage in the run (``optuna.db``, for optuna-dashboard) and its name,
    ``<model> / <task> / seed <n>``. A resumed study starts afresh there: the trials it already
    knows are given to it again as evaluated points."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{(run_dir / 'optuna.db').resolve()}")
    name = f"{job.study['group'].replace('|', ' / ')} / seed {job.study['config']['seed']}"
    try:
        optuna.delete_study(study_name=name, storage=storage)
    except KeyError:
        pass
    return storage, name


def loggers() -> list:
    """Tune's own per-trial logs beside its experiment state: progress.csv, result.json and
    TensorBoard event files (metrics only; no checkpoints)."""
    return [CSVLoggerCallback(), JsonLoggerCallback(), TBXLoggerCallback()]


def _tuner(sweep: Sweep, job: Job, k: int, resources, runtime: dict, recorder: StoreRecorder, storage_path: str,
           out) -> tune.Tuner:
    space, search_alg, samples = _search(sweep, job, out)
    return tune.Tuner(
        tune.with_resources(NamedTrainable, resources),
        param_space={**space, "runtime": runtime},
        tune_config=tune.TuneConfig(metric="score", mode="max", search_alg=search_alg, num_samples=samples,
                                    scheduler=grouped_asha(sweep) if sweep.scheduler == "asha" else None,
                                    max_concurrent_trials=sweep.max_concurrent,
                                    reuse_actors=False,   # an actor's dashboard name is its first trial's
                                    trial_name_creator=lambda t: trial_of(t.config).id,
                                    trial_dirname_creator=lambda t: trial_of(t.config).id[:120]),
        run_config=tune.RunConfig(name=f"attempt-{time.strftime('%Y%m%d-%H%M%S')}-{k}", storage_path=storage_path,
                                  failure_config=tune.FailureConfig(max_failures=sweep.retries),
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
                                  callbacks=[recorder, *loggers()], stop=StopOnWriteError(recorder),
                                  verbose=0),
    )


def _run_jobs(sweep: Sweep, jobs: list[Job], run_dir: Path, records: list[dict], address, storage, secure,
              out, total: int) -> int:
    _, url = start_ray(address, None, secure)
    info = dashboard_info(url, secure)
    atomic_write_json(run_dir / "dashboard.json", info)
    print_dashboard(info, out)
    view = None
    try:
        resources, threads = _resources(sweep, ray.cluster_resources().get("GPU", 0) > 0)
        runtime = {"glue_dir": sweep.glue_dir, "hub": sweep.hub, "threads": threads}
        attempts = {r["trial_id"]: r.get("attempts", 0) for r in records}
        finished = {r["trial_id"] for r in records if r["status"] in store.FINAL}
        view = live.Screen(sweep.name, records, total, out) if out.isatty() else None
        recorder = StoreRecorder(sweep.name, run_dir, attempts, finished, out, view)
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
        if view:
            view.stop(list(recorder.records.values()))
            view = None
        return _finish(sweep, recorder, interrupted, out)
    finally:
        if view:
            view.stop()
        ray.shutdown()


def best_summary(run_dir: Path) -> str:
    """Each (model, task)'s best configuration, chosen as the leaderboard chooses it."""
    from ..results.load import load_run   # pandas: only at the end
    from ..results.values import fmt_lr

    res = load_run(run_dir).results
    return "\n".join(f"  {r.model} / {r.task}: best dev score {r.score:.2f} (bs {int(r.batch_size)}, "
                     f"lr {fmt_lr(r.learning_rate)}, epoch {r.epoch:g}, seed(s) {r.seeds})"
                     for r in res.itertuples() if r.score == r.score)


def _finish(sweep: Sweep, recorder: StoreRecorder, interrupted: bool, out) -> int:
    print(f"sweep {sweep.name} {'stopped' if interrupted else 'finished'}: "
          + (", ".join(f"{v} {k}" for k, v in recorder.counts.items() if v) or "no trial finished"), file=out)
    if recorder.best:
        print(best_summary(sweep.run_dir), file=out)
    if interrupted:
        print("the sweep is unfinished (interrupted): run the same command again to finish it", file=out)
        return 130
    return 0
