"""What each Tuner run is given: the trials still to run, as Tune configurations.

A grid sweep is one job (a ``tune.grid_search`` over its unfinished trials); an optuna sweep is
one job per (model, task, seed) study, whose finished trials are handed to the study as
evaluated points instead of being re-run. A Tune configuration carries a trial as
``{"group", "model_name", "config": TrialConfig.to_dict()}``; optuna adds the sampled
``batch_size`` and ``learning_rate``; ``trial_of`` turns either back into the ``Trial``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Trial, TrialConfig, display_name, make_trial
from ..spec.units import plan_units
from ..spec.sweep import Sweep
from ..store import records as store


@dataclass
class Job:
    """One Tuner run: a fixed list of trials (grid), or an optuna study over one group."""
    trials: list[dict] | None = None           # grid: the Tune configurations of its trials (``plan_grid``)
    todo: list[Trial] = field(default_factory=list)   # grid: the trials it runs, before they are planned as units
    study: dict | None = None                  # optuna: the configuration sampled values complete
    samples: int = 0                           # optuna: how many trials to draw
    seen: list[tuple[dict, float]] = field(default_factory=list)   # optuna: finished (params, score)
    warm: list[TrialConfig] = field(default_factory=list)          # what the feature cache must hold

    @property
    def expected(self) -> set[str]:
        return {t.id for t in self.todo} or {trial_of({"trial": m}).id for t in self.trials or [] for m in members(t)}


def as_tune(trial: Trial, model_name: str) -> dict:
    return {"group": trial.group, "model_name": model_name, "config": trial.config.to_dict()}


def members(tune_trial: dict) -> list[dict]:
    """The trials a Tune configuration's ``"trial"`` runs: a fused unit's members, or itself."""
    return tune_trial.get("members") or [tune_trial]


def trial_of(tune_config: dict) -> Trial:
    """The trial a Tune configuration stands for (optuna's sampled values applied)."""
    t = tune_config["trial"]
    cfg = TrialConfig.from_dict(t["config"])
    if "batch_size" in tune_config:
        cfg = cfg.replace(batch_size=int(tune_config["batch_size"]), learning_rate=float(tune_config["learning_rate"]))
    return make_trial(cfg, t["model_name"])


def grid_jobs(sweep: Sweep, records: list[dict], gpu: bool | None = True) -> tuple[list[Job], int, int]:
    """(jobs, trials in all, trials finished); ``gpu``: whether the workers have GPUs (which
    trials fuse, ``spec.units``), None when not known yet: the job's units are planned later
    (``plan_grid``), once."""
    trials = sweep.trials()
    finished = {r["trial_id"] for r in records if r["status"] in store.FINAL}
    todo = [t for t in trials if t.id not in finished]
    if not todo:
        return [], len(trials), len(trials)
    job = Job(todo=todo, warm=[t.config for t in todo])
    return [job if gpu is None else plan_grid(job, sweep, gpu)], len(trials), len(trials) - len(todo)


def plan_grid(job: Job, sweep: Sweep, gpu: bool) -> Job:
    """The grid job with its trials planned as fused units and solo trials for GPU (``gpu``) or
    CPU-only workers, as Tune configurations."""
    names = {spec.ref: spec.name for spec, _ in sweep.models}
    tune_units = []
    for unit in plan_units(job.todo, sweep.fuse, gpu=gpu):
        first = as_tune(unit[0], names[unit[0].config.model])
        if len(unit) > 1:   # a fused unit: one Tune trial that reports for each member
            first["members"] = [as_tune(t, names[t.config.model]) for t in unit]
        tune_units.append(first)
    job.trials = tune_units
    return job


def optuna_jobs(sweep: Sweep, records: list[dict]) -> tuple[list[Job], int, int]:
    """(jobs, trials in all, trials finished): one study per (model, task, seed)."""
    jobs, total, done_n = [], 0, 0
    for (spec, init) in sweep.models:
        for task in sweep.tasks:
            for seed in sweep.seeds:
                label = display_name(spec.name, init)
                done = [r for r in records if r["model"] == label and r["trial"]["task"] == task.name
                        and r["trial"]["seed"] == seed and r["status"] in store.FINAL]
                total += sweep.optuna_trials
                done_n += min(len(done), sweep.optuna_trials)
                n = max(0, sweep.optuna_trials - len(done))
                if not n:
                    continue
                base = sweep.trial(spec, init, task.name, min(sweep.batch_sizes), sweep.learning_rates[0], seed)
                seen = [({"batch_size": r["trial"]["batch_size"], "learning_rate": r["trial"]["learning_rate"]},
                         max(e["score"] for e in r["evals"])) for r in done if r["evals"] and r["status"] in store.VALID]
                jobs.append(Job(study=as_tune(base, spec.name), samples=n, seen=seen, warm=[base.config]))
    return jobs, total, done_n
