"""Synthetic result stores: trial records in the store's current schema, written with
``store.write_record``, for the leaderboard, export and submit tests."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.config import TrialConfig, display_name, trial_id
from orchestrator.registry.tasks import get_task
from orchestrator.results.load import build
from orchestrator.store import records as store


def metrics_for(task: str, score: float) -> dict[str, float]:
    """Metrics whose mean (the headline) is ``score``: pairs straddle it by 1."""
    keys = get_task(task).metric_keys()
    if len(keys) == 1:
        return {keys[0]: score}
    return {k: score + (1.0 if i % 2 == 0 else -1.0) for i, k in enumerate(keys)}


def make_record(model: str, task: str, bs: int, lr: float, scores, seed: int = 0, status: str = "completed",
                n_params: int | None = None, init: str = "pretrained", epochs=None) -> dict:
    """One trial's record: ``scores`` are its evaluations, at epochs 1, 2, ... unless ``epochs``
    says otherwise; the trial's model reference is the model's name."""
    epochs = list(epochs) if epochs is not None else [float(i + 1) for i in range(len(scores))]
    tid = trial_id(model, init, task, bs, lr, seed)   # the id of its configuration, as the sweep names it
    trial = TrialConfig(model=model, task=task, batch_size=bs, learning_rate=lr, epochs=4, seed=seed, init=init)
    return {"schema": store.SCHEMA, "trial_id": tid, "sweep": "synthetic", "group": f"{display_name(model, init)}|{task}",
            "model": model, "trial": trial.to_dict(), "status": status, "attempts": 1,
            "error": None if status != "failed" else "boom",
            "evals": [{"epoch": e, "step": 100 * (i + 1), "metrics": metrics_for(task, s), "score": s,
                       "train_loss": 0.5, "elapsed_s": 1.0} for i, (e, s) in enumerate(zip(epochs, scores))],
            "n_params": n_params, "examples_per_s": 100.0}


def write_run(run_dir: Path, records: list[dict]) -> Path:
    for r in records:
        store.write_record(run_dir, r)
    return run_dir


def lb_of(tmp_path: Path, records: list[dict], final_epoch: bool = False):
    """The leaderboard of ``records`` written to and read back from ``tmp_path/run``."""
    write_run(tmp_path / "run", records)
    recs, problems = store.read_records(tmp_path / "run")
    return build(recs, problems, final_epoch=final_epoch)


def unpadded(markdown: str) -> str:
    """A Markdown table's text with the cells' padding removed: ``| a | b |``."""
    return re.sub(r" {2,}", " ", markdown)
