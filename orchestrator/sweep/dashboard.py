"""What a running trial shows in the Ray dashboard. A worker (actor) runs trial after trial; it is
named after its first trial (model / task / batch size / learning rate / seed, in the actor list
and on its page), and announces every trial it starts with Ray's ``:actor_name:`` log line, so the
log lines that follow carry that trial's name (in the driver's and the dashboard's log views).
Each dev evaluation is a line of the worker's log (stderr: the Logs tab the dashboard opens first),
and the scores are ``ray.util.metrics`` gauges (``glue_sweep_dev_score``, ``glue_sweep_epoch``)
for a Prometheus that scrapes the cluster."""

from __future__ import annotations

import sys

from ray.tune.trainable.function_trainable import wrap_function
from ray.util import metrics

from ..config import Trial, fmt_lr
from .tune_jobs import trial_of

TAGS = ("trial", "model", "task")
_gauges: dict[str, metrics.Gauge] = {}


def trial_title(trial: Trial) -> str:
    """``BERT-Tiny (random init) / SST-2 / bs 32 / lr 1e-4 / seed 0``."""
    c = trial.config
    return f"{trial.label} / {c.task} / bs {c.batch_size} / lr {fmt_lr(c.learning_rate)} / seed {c.seed}"


def named(fn):
    """``fn`` as a Tune trainable class whose actors are named after their first trial (Ray takes
    the name, ``repr``, once, when the actor is created; :func:`announce` names the later ones)."""
    base = wrap_function(fn)

    class GlueTrial(base):
        def __repr__(self):
            try:
                return trial_title(trial_of(self.config))
            except (KeyError, TypeError, AttributeError):
                return "glue-sweep trial"

    GlueTrial.__name__ = GlueTrial.__qualname__ = "GlueTrial"
    return GlueTrial


def _gauge(name: str, description: str) -> metrics.Gauge:
    if name not in _gauges:
        _gauges[name] = metrics.Gauge(name, description=description, tag_keys=TAGS)
    return _gauges[name]


def announce(trial: Trial) -> None:
    """The trial a reused worker starts now: Ray's log monitor takes a ``:actor_name:`` line as the
    actor's name for the lines after it, in both of the worker's logs."""
    line = f":actor_name:{trial_title(trial)}"
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
