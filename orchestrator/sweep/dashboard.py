"""What a running trial shows in the Ray dashboard. A worker (actor) runs trial after trial; it is
named after its first trial or fused unit (model / task / batch size / learning rate / seed; a
unit's label names every member's learning rate, ``lr 1e-4/5e-5/3e-5``), in the actor list's
Repr and on its page, and announces every trial or unit it starts with Ray's ``:actor_name:``
log line, so the log lines that follow carry that label (in the driver's and the dashboard's log
views). Tune creates the actors and calls their methods itself, so Ray's actor name (the list's
Name column) and task names (``GlueTrial.train``) cannot carry it. Each dev evaluation is a line
of the worker's log headed by its trial's label (stderr: the Logs tab the dashboard opens
first), and the scores are ``ray.util.metrics`` gauges, ``glue_sweep_dev_score`` and
``glue_sweep_epoch``, which Ray exports to Prometheus with its ``ray_`` prefix
(``ray_glue_sweep_dev_score``)."""

from __future__ import annotations

import sys

from ray.tune.trainable.function_trainable import wrap_function
from ray.util import metrics

from ..config import Trial, fmt_lr
from .tune_jobs import members, trial_of

TAGS = ("trial", "model", "task")
_gauges: dict[str, metrics.Gauge] = {}


def title(trials: list[Trial]) -> str:
    """The label of a trial, ``BERT-Tiny (random init) / SST-2 / bs 32 / lr 1e-4 / seed 0``, or of
    a fused unit, naming every member: ``... / lr 1e-4/5e-5/3e-5 / seed 0``."""
    def each(values) -> str:
        return "/".join(dict.fromkeys(values))   # distinct, in member order
    cs = [t.config for t in trials]
    return (f"{each(t.label for t in trials)} / {each(c.task for c in cs)} / bs {each(str(c.batch_size) for c in cs)}"
            f" / lr {each(fmt_lr(c.learning_rate) for c in cs)} / seed {each(str(c.seed) for c in cs)}")


def trial_title(trial: Trial) -> str:
    """``BERT-Tiny (random init) / SST-2 / bs 32 / lr 1e-4 / seed 0``."""
    return title([trial])


def title_of(tune_config: dict) -> str:
    """The label of what a Tune configuration runs: its trial, or its fused unit's members."""
    return title([trial_of({**tune_config, "trial": m}) for m in members(tune_config["trial"])])


def named(fn):
    """``fn`` as a Tune trainable class whose actors are named after their first trial or unit (Ray
    takes the name, ``repr``, once, when the actor is created; :func:`announce` names the later
    ones)."""
    base = wrap_function(fn)

    class GlueTrial(base):
        def __repr__(self):
            try:
                return title_of(self.config)
            except (KeyError, TypeError, AttributeError):
                return "glue-sweep trial"

    GlueTrial.__name__ = GlueTrial.__qualname__ = "GlueTrial"
    return GlueTrial


def _gauge(name: str, description: str) -> metrics.Gauge:
    if name not in _gauges:
        _gauges[name] = metrics.Gauge(name, description=description, tag_keys=TAGS)
    return _gauges[name]


def announce(trials: list[Trial]) -> None:
    """The trial (or the fused unit's members) a reused worker starts now: Ray's log monitor takes a
    ``:actor_name:`` line as the actor's name for the lines after it, in both of the worker's logs."""
    line = f":actor_name:{title(trials)}"
    print(line, flush=True)
    print(line, file=sys.stderr, flush=True)


def log_evaluation(trial: Trial, ev) -> None:
    """One line per dev evaluation in the worker's log, and the trial's gauges."""
    metric_text = "  ".join(f"{k} {v:.2f}" for k, v in ev.metrics.items())
    print(f"[{trial_title(trial)}] epoch {ev.epoch:g} step {ev.step}: {metric_text}  score {ev.score:.2f}  "
          f"train loss {ev.train_loss:.4f}", file=sys.stderr, flush=True)   # stderr: the Logs tab's first
    tags = {"trial": trial.id, "model": trial.label, "task": trial.config.task}
    _gauge("glue_sweep_dev_score", "headline dev score of a trial's latest evaluation").set(ev.score, tags=tags)
    _gauge("glue_sweep_epoch", "epoch of a trial's latest evaluation").set(ev.epoch, tags=tags)
