"""Grouped ASHA's decisions as plain data and functions (no Ray, no torch).

Asynchronous successive halving with one bracket, as Ray Tune's ``ASHAScheduler`` decides it
with ``stop_last_trials=False``: rungs at ``grace_period * reduction_factor**k`` epochs up to
``max_t``; an evaluation at ``t`` epochs is recorded at the highest rung ``<= t`` the trial has
not reached yet, and it stops the trial when its score is below the ``1 - 1/reduction_factor``
quantile of the scores recorded there before it (the first at a rung always goes on). A group
(model, task, kind of training) has its own rungs, so trials only compete within their group.

Solo trials and the members of fused units are judged by the same ``Groups.ask``, keyed by
anything that names one trial: a decision depends only on the order in which the group's
evaluations arrive, not on which process trained them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def milestones(grace_period: float, max_t: float, reduction_factor: float) -> tuple[float, ...]:
    """The rungs' epochs, lowest first (Ray's formula, so that both agree to the last bit)."""
    n = int(np.log(max_t / grace_period) / np.log(reduction_factor) + 1)
    return tuple(grace_period * reduction_factor ** k for k in range(n))


def cutoff(scores: list[float], reduction_factor: float) -> float | None:
    """The score a new arrival at a rung must reach: the ``1 - 1/rf`` quantile (linear
    interpolation, NaN ignored) of the scores already there; None at an empty rung."""
    if not scores:
        return None
    return float(np.nanpercentile(scores, (1 - 1 / reduction_factor) * 100))


@dataclass
class Rungs:
    """One group's rungs: at each milestone, the (signed) score each trial had on reaching it."""
    milestones: tuple[float, ...]
    reduction_factor: float
    sign: float = 1.0                                   # mode max: 1, min: -1
    recorded: dict[float, dict[str, float]] = field(default_factory=dict)


def decide(rungs: Rungs, key: str, t: float, score: float) -> tuple[bool, float | None]:
    """(whether trial ``key`` goes on after scoring ``score`` at ``t`` epochs, the milestone its
    score is to be recorded at, or None). Pure: ``rungs`` is left as it is."""
    value = rungs.sign * score
    for m in reversed(rungs.milestones):
        seen = rungs.recorded.get(m, {})
        if t >= m and key in seen:
            break   # this rung is behind the trial already: nothing lower is judged again
        if t < m:
            continue
        cut = cutoff(list(seen.values()), rungs.reduction_factor)
        return not (cut is not None and value < cut), m
    return True, None


def record(rungs: Rungs, key: str, t: float, score: float) -> bool:
    """``decide``, then the score recorded at its rung; whether the trial goes on (Ray's action,
    also at ``max_t`` where a trial ends either way)."""
    go, m = decide(rungs, key, t, score)
    if m is not None:
        rungs.recorded.setdefault(m, {})[key] = rungs.sign * score
    return go


@dataclass
class Groups:
    """Every group's rungs, and the trials stopped early (a stopped trial that asks again, as
    a retried fused unit would, is stopped again)."""
    grace_period: float
    max_t: float
    reduction_factor: float
    mode: str = "max"
    rungs: dict[str, Rungs] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)

    def of(self, group: str) -> Rungs:
        if group not in self.rungs:
            self.rungs[group] = Rungs(milestones(self.grace_period, self.max_t, self.reduction_factor),
                                      self.reduction_factor, 1.0 if self.mode == "max" else -1.0)
        return self.rungs[group]

    def ask(self, group: str, key: str, t: float, score: float) -> bool:
        """Whether trial ``key`` of ``group`` goes on after this evaluation. A trial at
        ``max_t`` epochs has ended: its score is recorded and it is never said to stop."""
        if key in self.stopped:
            return False
        go = record(self.of(group), key, t, score)
        if not go and t < self.max_t:
            self.stopped.add(key)
            return False
        return True

    def seed(self, group: str, key: str, evals: list[tuple[float, float]]) -> None:
        """A finished trial's (epoch, score) evaluations, recorded as they arrived (a resumed
        sweep's rungs start with what its finished trials reached). Its decisions are moot."""
        for t, score in evals:
            record(self.of(group), key, t, score)

    def is_stopped(self, key: str) -> bool:
        return key in self.stopped
