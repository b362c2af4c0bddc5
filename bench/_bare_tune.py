"""The baseline of ``bench.engine``: a bare Ray Tune function trainable calling the same runner
in-process (``runner.run_trial``), with Tune's defaults (a new actor per trial) or ``--reuse``
(``reuse_actors=True``), the same trials and the same CPUs as the glue-sweep run. Started by ``bench.engine`` in its own process."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

T0 = time.time()

import ray  # noqa: E402
from ray import tune  # noqa: E402

from bench._events import event  # noqa: E402
from orchestrator.config import TrialConfig  # noqa: E402
from orchestrator.data.sources import source_from  # noqa: E402
from orchestrator.train.runner import run_trial  # noqa: E402


def trainable(config: dict) -> None:
    cfg = TrialConfig.from_dict(config["trial"])
    tid = f"{cfg.seed}-{cfg.batch_size}-{cfg.learning_rate:g}"
    event("start", tid)
    res = run_trial(cfg, source_from(config["glue_dir"]),
                    on_eval=lambda ev: tune.report({"score": ev.score, "epoch": ev.epoch}))
    event("end", tid, startup_s=res.startup_s, train_s=res.train_s, eval_s=res.eval_s)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", required=True, help="a JSON file: the TrialConfig dicts to run")
    ap.add_argument("--glue-dir", required=True)
    ap.add_argument("--cpus", type=int, required=True)
    ap.add_argument("--reuse", action="store_true", help="reuse_actors=True (Tune's default: False)")
    a = ap.parse_args()
    trials = json.loads(open(a.trials).read())
    ray.init(address="local", num_cpus=a.cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith(("GLUE_SWEEP_", "HF_"))}})
    with tempfile.TemporaryDirectory() as d:
        tune.Tuner(tune.with_resources(trainable, {"cpu": 1}),
                   param_space={"trial": tune.grid_search(trials), "glue_dir": a.glue_dir},
                   tune_config=tune.TuneConfig(reuse_actors=a.reuse),
                   run_config=tune.RunConfig(storage_path=d, verbose=0)).fit()
    ray.shutdown()


if __name__ == "__main__":
    main()
