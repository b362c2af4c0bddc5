"""Grouped early stopping in a sweep: one ASHA per (model, task, kind of training) group, decided
per trial, whether the trial trains alone or as a member of a fused unit.

The driver starts one keeper (a named Ray actor, no CPU) holding every group's rungs
(``rungs.Groups``), seeded with the evaluations of the trials a resumed sweep keeps. After each
evaluation a solo trial, or a fused unit for each of its members, asks the keeper whether to go
on (``Judge``); a stopped trial ends, a stopped member leaves its unit's stack and the others go
on. So one group's rungs see every trial and every member, in the order their evaluations
arrive, and Tune itself schedules first-in first-out.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..store import records as store
from .rungs import Groups

NAMESPACE = "glue-sweep"   # the keeper's Ray namespace (trial workers may run in another)
STATUS = {True: "running", False: "stopped"}   # an evaluation's trial_status, by the keeper's answer


@ray.remote(num_cpus=0)
class Keeper:
    """The actor around ``rungs.Groups`` (one call at a time: decisions keep their order)."""

    def __init__(self, grace_period: float, max_t: float, reduction_factor: float):
        self.groups = Groups(grace_period, max_t, reduction_factor)

    def ask(self, group: str, key: str, t: float, score: float) -> bool:
        return self.groups.ask(group, key, t, score)

    def seed(self, finished: list[tuple[str, str, list[tuple[float, float]]]]) -> None:
        for group, key, evals in finished:
            self.groups.seed(group, key, evals)

    def stopped(self, keys: list[str]) -> list[bool]:
        return [self.groups.is_stopped(k) for k in keys]


def finished_evals(records: list[dict]) -> list[tuple[str, str, list[tuple[float, float]]]]:
    """(group, key, [(epoch, score)]) of each finished record whose evaluations count."""
    return [(r["group"], f"record:{r['trial_id']}", [(float(e["epoch"]), float(e["score"])) for e in r["evals"]])
            for r in records if r["status"] in store.FINAL and r["status"] in store.VALID and r.get("evals")]


@dataclass
class Started:
    """A running keeper: its name (the trainables look it up) and the driver's handle, which
    keeps it alive (Ray ends an actor once no handle refers to it)."""
    name: str
    handle: object


def start_keeper(sweep, records: list[dict]) -> Started | None:
    """The keeper of this sweep run (None without a scheduler), seeded with ``records``."""
    if sweep.scheduler != "asha":
        return None
    name = f"glue-sweep-asha-{sweep.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)   # the driver's node
    keeper = Keeper.options(name=name, namespace=NAMESPACE, scheduling_strategy=here).remote(
        sweep.grace_period, sweep.epochs, sweep.reduction_factor)
    ray.get(keeper.seed.remote(finished_evals(records)))
    return Started(name, keeper)


class Judge:
    """In a worker: a trial's (or a unit's) questions to the keeper. Without a keeper every
    trial goes on. Keys are Tune's trial id and the member's index, so a retried trial keeps its
    rungs and an optuna sample drawn twice is two trials, as under Tune's own scheduler."""

    def __init__(self, keeper: str | None, tune_trial_id: str):
        self.keeper = ray.get_actor(keeper, namespace=NAMESPACE) if keeper else None
        self.trial = tune_trial_id

    def key(self, member: int) -> str:
        return f"{self.trial}/{member}"

    def goes_on(self, group: str, member: int, epoch: float, score: float) -> bool:
        if self.keeper is None:
            return True
        return ray.get(self.keeper.ask.remote(group, self.key(member), float(epoch), float(score)))

    def stopped(self, n: int) -> list[bool]:
        """Which of ``n`` members were stopped before (a retried unit leaves them out)."""
        if self.keeper is None:
            return [False] * n
        return ray.get(self.keeper.stopped.remote([self.key(i) for i in range(n)]))
