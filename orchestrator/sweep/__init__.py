"""Runs a sweep's trials as Ray Tune experiments (needs Ray; the trial runner does not).

driver      check() and run(): checks, lock, resume (reuse, failed retried), cache warm-up, one Tuner per job
local_job   a local ``run`` as a Ray Job of a head started for it: log followed, live view, Ctrl-C, exit code
tune_jobs   the trials still to run, as Tune configurations (grid, optuna studies)
search      an optuna job's search algorithm and its study's storage (optuna.db)
trainable   the Tune trainable (in the workers): a solo trial or a fused unit, one reporter
recorder    the Tune callback that writes the result store (in the driver), progress lines
tune_logs   Tune's CSV, JSON and TensorBoard logs per trial, a fused unit's members each their own
rungs       grouped ASHA's decisions, pure: rungs per (model, task), Ray's ASHA rules
asha        grouped ASHA in a sweep: the keeper actor every trial asks after each evaluation
address     cluster addresses checked before anything starts (a Ray GCS, a dashboard; loopback kept), no Ray
cluster     Ray start (its ports free) or connection, resources that fit a node, dashboard login, lock
paths       where a sweep's store, lock and Tune state live; its data paths made absolute
shipping    what travels with the trials: encoded features, data fingerprints, vocabulary
ray_job     ``submit-job``: the sweep as a Ray Job (staged working_dir, env, submission id)
dashboard   what a trial shows in the Ray dashboard: actor name, log lines, gauges
prometheus  Prometheus on loopback with Ray's scrape configuration, graphing the gauges (no Ray)
mps         NVIDIA MPS: whether its daemon runs, a packed worker's share of the GPU's threads
hooks       ``GLUE_SWEEP_HOOKS`` extension points (fault-injection tests)

Importing this package imports nothing else (a worker pays only for what it uses).
"""

import os

# Before Ray is imported: Tune adds no loggers of its own choosing (the driver names its CSV, JSON
# and TensorBoard loggers: metrics only, no checkpoints), the classic progress output.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
