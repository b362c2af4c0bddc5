"""``submit`` from the test outputs a sweep stored (orchestrator/submit/predict.py): no training,
the files of the very trials and epochs the leaderboard chose, valid; ``--retrain`` trains them
again and predicts the same."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from orchestrator.store import outputs, records as store

REPO = Path(__file__).resolve().parents[2]
MODEL = "BERT-Tiny (random init)"


def cli(*args, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "token",
           "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run(tmp_path_factory, real_glue_dir) -> Path:
    """A real sweep: BERT-Tiny from scratch on SST-2 and STS-B, two learning rates fused, 2 epochs."""
    tmp = tmp_path_factory.mktemp("stored")
    spec = tmp / "st.yaml"
    spec.write_text(f"name: st\nmodels: [{{name: BERT-Tiny, init: random}}]\ntasks: [SST-2, STS-B]\n"
                    f"search: {{batch_size: [32], learning_rate: [1e-3, 1e-4]}}\nepochs: 2\nmax_train_examples: 96\n"
                    f"max_length: 64\nfuse: auto\nresults: {tmp / 'results'}\ndata: {{glue_dir: {real_glue_dir}}}\n")
    r = cli("run", spec)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "results" / "st"


def _files(path: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n).decode().splitlines() for n in z.namelist()}


def test_every_trial_stores_its_selected_weights_test_outputs(run):
    for rec in store.read_records(run)[0]:
        task = rec["trial"]["task"]
        stored = outputs.read(run, rec["trial_id"])
        best = max(rec["evals"], key=lambda e: e["score"])   # the first of equal scores
        assert f"{best['epoch']:g}" in rec["test_outputs"], rec["trial_id"]
        assert f"{rec['evals'][-1]['epoch']:g}" in rec["test_outputs"]   # and the last one's (final-epoch selection)
        for e in rec["test_outputs"]:
            assert list(stored[f"test@{e}"]) == [f"{task}/test"]


def test_submit_writes_the_zip_from_the_stored_outputs_without_training(run, tmp_path):
    t0 = time.perf_counter()
    r = cli("submit", run, "--model", MODEL, "--out", tmp_path / "sub.zip")
    took = time.perf_counter() - t0
    assert r.returncode == 1, r.stderr[-3000:]   # valid but incomplete: only two tasks were run
    assert "re-training" not in r.stderr.replace("no re-training", "")
    for task in ("SST-2", "STS-B"):
        assert f"{task}: the stored test outputs of" in r.stderr and "(dev score" in r.stderr
    assert took < 60, took   # seconds, not a training run per task
    zipped = _files(tmp_path / "sub_INCOMPLETE.zip")
    assert set(zipped) == {"SST-2.tsv", "STS-B.tsv"}

    # the same configurations trained again predict the same files (CPU: the same weights, up to the
    # fused member's float rounding against its solo trial)
    r2 = cli("submit", run, "--model", MODEL, "--out", tmp_path / "again.zip", "--retrain", "--threads", "1")
    assert r2.returncode == 1 and "re-training" in r2.stderr, r2.stderr[-3000:]
    again = _files(tmp_path / "again_INCOMPLETE.zip")
    sst, sst2 = zipped["SST-2.tsv"], again["SST-2.tsv"]
    assert len(sst) == len(sst2) == 1822 and sum(a == b for a, b in zip(sst, sst2)) >= 0.99 * len(sst)
    sts, sts2 = zipped["STS-B.tsv"][1:], again["STS-B.tsv"][1:]
    assert len(sts) == len(sts2) == 1379
    assert max(abs(float(a.split("\t")[1]) - float(b.split("\t")[1])) for a, b in zip(sts, sts2)) < 0.01
