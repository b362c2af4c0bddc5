"""How an optuna job searches: its parameter space, its ``OptunaSearch`` (seeded anew on a resume,
with the trials it already knows as evaluated points) and its study's SQLite storage beside the
run (``optuna.db``, for optuna-dashboard). A grid job's space is ``tune.grid_search`` over its trials."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from ..spec.sweep import Sweep
from .tune_jobs import Job

log = logging.getLogger(__name__)


def search(sweep: Sweep, job: Job, db_dir: Path) -> tuple[dict, object, int]:
    """(the job's parameter space without the runtime, its search algorithm, samples)."""
    if job.trials is not None:
        return {"trial": tune.grid_search(job.trials)}, None, 1
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = job.study["config"]["seed"]
    # a resumed study is seeded anew, so that it does not re-draw the first run's samples
    db, name = study_storage(db_dir, job)
    search_alg = OptunaSearch(metric="score", mode="max", seed=1000 * seed + len(job.seen), storage=db, study_name=name,
                              points_to_evaluate=[c for c, _ in job.seen] or None,
                              evaluated_rewards=[r for _, r in job.seen] or None)
    log.info(f"optuna study {job.study['group'].replace('|', ' / ')} seed {seed}: {job.samples} trial(s), "
             f"{len(job.seen)} known")
    space = {"trial": job.study, "batch_size": tune.choice(sweep.batch_sizes),
             "learning_rate": tune.loguniform(sweep.learning_rates[0], sweep.learning_rates[1])}
    return space, search_alg, job.samples


def study_storage(db_dir: Path, job: Job) -> tuple[optuna.storages.BaseStorage, str]:
    """The study's SQLite storage beside the run (``optuna.db``, for optuna-dashboard) and its
    name, ``<model> / <task> / seed <n>``. A resumed study starts afresh there: the trials it
    already knows are given to it again as evaluated points."""
    db_dir.mkdir(parents=True, exist_ok=True)
    db = optuna.storages.RDBStorage(f"sqlite:///{(db_dir / 'optuna.db').resolve()}")
    name = f"{job.study['group'].replace('|', ' / ')} / seed {job.study['config']['seed']}"
    try:
        optuna.delete_study(study_name=name, storage=db)
    except KeyError:
        pass
    return db, name
