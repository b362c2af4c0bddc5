"""A sweep hook module (``GLUE_SWEEP_HOOKS``) for ``bench.engine``: each trial's start and end
in its worker, appended as a JSON line (wall-clock time, worker pid, the runner's start-up,
training and evaluation seconds) to the file ``GLUE_SWEEP_BENCH_EVENTS`` names. The bare Tune
variant writes the same lines through :func:`event`."""

from __future__ import annotations

import json
import os
import time


def event(kind: str, trial_id: str, **extra) -> None:
    line = json.dumps({"e": kind, "id": trial_id, "pid": os.getpid(), "t": time.time(), **extra})
    with open(os.environ["GLUE_SWEEP_BENCH_EVENTS"], "a") as f:   # one short line: appends do not interleave
        f.write(line + "\n")


def trial_start(trial) -> None:
    event("start", trial.id)


def trial_end(trial, result) -> None:
    event("end", trial.id, startup_s=result.startup_s, train_s=result.train_s, eval_s=result.eval_s)
