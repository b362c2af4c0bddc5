"""Runs a sweep's trials as Ray Tune experiments (needs Ray; the runner does not).

driver      run(): lock, resume, cache warm-up, one Tuner per job
jobs        the trials still to run, as Tune configurations (grid, optuna studies)
trainable   the Tune function trainable around the trial runner (in the workers)
recorder    the Tune callback that writes the result store (in the driver)
asha        grouped early stopping: one ASHA per (model, task)
cluster     Ray start or connection, dashboard login, the one-driver lock
hooks       extension points for fault-injection tests
"""

import os

# Before Ray is imported: Tune adds no loggers of its own choosing (the driver names its CSV, JSON
# and TensorBoard loggers: metrics only, no checkpoints), the classic progress output.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
