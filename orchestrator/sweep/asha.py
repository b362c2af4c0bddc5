"""Grouped early stopping: one ASHA per (model, task) group, so that trials only ever compete
within their group (a CoLA score is never compared with an SST-2 score)."""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler


class GroupedScheduler(FIFOScheduler):
    """One ASHA per group (``config["trial"]["group"]``); a diverged trial is stopped at once."""

    def __init__(self, max_t: float, grace_period: float, reduction_factor: float):
        super().__init__()
        self.asha = dict(time_attr="epoch", max_t=max_t, grace_period=grace_period,
                         reduction_factor=reduction_factor, stop_last_trials=False)
        self.groups: dict[str, ASHAScheduler] = {}

    def _of(self, trial) -> ASHAScheduler:
        g = trial.config["trial"]["group"]
        if g not in self.groups:
            s = ASHAScheduler(**self.asha)
            s.set_search_properties("score", "max")
            self.groups[g] = s
        return self.groups[g]

    def set_search_properties(self, metric, mode, **spec):
        return True

    def on_trial_add(self, tc, trial):
        self._of(trial).on_trial_add(tc, trial)

    def on_trial_result(self, tc, trial, result):
        if result.get("trial_status") == "diverged":
            return self.STOP
        return self._of(trial).on_trial_result(tc, trial, result)

    def on_trial_complete(self, tc, trial, result):
        self._of(trial).on_trial_complete(tc, trial, result)

    def on_trial_remove(self, tc, trial):
        self._of(trial).on_trial_remove(tc, trial)

    def on_trial_error(self, tc, trial):
        self._of(trial).on_trial_error(tc, trial)

    def debug_string(self):
        return f"GroupedScheduler: {len(self.groups)} groups of ASHA"


def grouped_asha(sweep) -> GroupedScheduler:
    return GroupedScheduler(sweep.epochs, sweep.grace_period, sweep.reduction_factor)
