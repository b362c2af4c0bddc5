"""Tune's own per-trial logs beside its experiment state: ``progress.csv``, ``result.json`` and
TensorBoard event files (metrics only; no checkpoints), one directory per trial named by its
trial id, so ``tensorboard --logdir results/<name>/ray`` draws one curve per trial.

A fused unit is one Tune trial that reports for all its members (each report tagged with its
``member``). Tune's loggers would write them all into the unit's directory, interleaved; here
each member is logged as a trial of its own: a directory beside the unit's named by the
member's trial id, its reports counted as its own iterations. The unit's directory
(``unit-<first member's id>``) keeps Tune's parameters only. The report that carries a trial's
test outputs (after its last evaluation) is not logged: it has no new score.
"""

from __future__ import annotations

from pathlib import Path

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

from .tune_jobs import members, trial_of

UNIT_PREFIX = "unit-"


def dirname(tune_trial) -> str:
    """A Tune trial's directory: its trial id, or ``unit-<first member's id>`` for a fused unit."""
    first = trial_of(tune_trial.config).id
    fused = len(members(tune_trial.config["trial"])) > 1
    return (UNIT_PREFIX + first if fused else first)[:120]


class Member:
    """One member of a fused unit as Tune's loggers see a trial: a directory of its own beside
    the unit's, its own parameters."""

    def __init__(self, unit, index: int):
        cfg = unit.config
        self.trial = trial_of({**cfg, "trial": members(cfg["trial"])[index]})
        unit.init_local_path()
        self.local_path = str(Path(unit.local_path).parent / self.trial.id[:120])
        c = self.trial.config
        self.evaluated_params = {"batch_size": c.batch_size, "learning_rate": c.learning_rate, "seed": c.seed}
        self.config = {"trial": self.trial.id, **self.evaluated_params}
        self.checkpoint = None   # nothing to restore from storage: logs start with the member
        self.trial_id = self.trial.id
        self.iterations = 0
        self.init_local_path()

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(parents=True, exist_ok=True)


def _per_member(base):
    class PerMember(base):
        """Tune's logger, writing each member of a fused unit as a trial of its own."""

        def __init__(self):
            super().__init__()
            self._members: dict[tuple, Member] = {}

        def _member(self, trial, index: int) -> Member:
            key = (trial.trial_id, index)
            if key not in self._members:
                self._members[key] = Member(trial, index)
                super().log_trial_start(self._members[key])
            return self._members[key]

        def log_trial_start(self, trial):
            if len(members(trial.config["trial"])) == 1:
                super().log_trial_start(trial)
            elif base is JsonLoggerCallback:   # the unit's parameters (params.json), no results
                super().log_trial_start(trial)

        def log_trial_result(self, iteration, trial, result):
            if result.get("trial_status") == "test":   # the test outputs' report: no new score
                return None
            if "member" not in result:
                return super().log_trial_result(iteration, trial, result)
            m = self._member(trial, int(result["member"]))
            m.iterations += 1
            super().log_trial_result(m.iterations, m, {**result, "training_iteration": m.iterations,
                                                         "trial_id": m.trial_id})

        def log_trial_end(self, trial, failed: bool = False):
            for key in [k for k in self._members if k[0] == trial.trial_id]:
                super().log_trial_end(self._members.pop(key), failed)
            super().log_trial_end(trial, failed)

    PerMember.__name__ = PerMember.__qualname__ = f"PerMember{base.__name__}"
    return PerMember


def loggers() -> list:
    """Tune's CSV, JSON and TensorBoard loggers, a fused unit's members each in their own directory."""
    return [_per_member(cls)() for cls in (CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback)]
