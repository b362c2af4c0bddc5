"""The start-up benchmark (bench/startup.py) on BERT-Tiny and WNLI, and the property it
checks: from a trial's start to its first training step, a warm feature cache means no
tokenisation and no reading of the raw data files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:   # bench/ is not an installed package
    sys.path.insert(0, str(REPO))

from bench import startup as B  # noqa: E402
from orchestrator.config import Runtime
from orchestrator.data import features as feats
from orchestrator.data.sources import GlueDir
from orchestrator.train import runner as R


@pytest.fixture
def wnli_dir(tmp_path, glue_dir) -> Path:
    """A GLUE directory of its own holding only WNLI, so the test can spoil its files."""
    root = tmp_path / "glue"
    shutil.copytree(glue_dir / "WNLI", root / "WNLI")
    return root


def test_benchmark_cold_and_warm(tmp_path, wnli_dir):
    out = tmp_path / "out"
    rc = B.main(["--models", "BERT-Tiny", "--tasks", "WNLI", "--repeats", "1", "--batch-size", "8",
                 "--max-length", "64", "--glue-dir", str(wnli_dir), "--out", str(out)])
    assert rc == 0
    report = json.loads((out / "startup.json").read_text())
    env = report["environment"]
    for k in ("cpu", "cores", "torch", "transformers", "git", "threads", "loadavg_at_start"):
        assert k in env
    assert env["git"]["commit"] and len(env["git"]["runner_files_sha256"]) == 16
    assert env["threads"] == 1
    assert report["limit_s"] == 3.0
    [r] = report["results"]
    assert (r["model"], r["init"], r["task"]) == ("BERT-Tiny", "random", "WNLI")
    cold, warm = r["cold"], r["warm"]
    for s in (cold, warm):
        assert s["n_runs"] == 1 and s["n_errors"] == 0
        assert set(s["breakdown"]) == set(B.PHASES)
        assert all(v >= 0 for v in s["breakdown"].values())
        run = s["runs"][0]
        assert run["threads"] == 1 and run["train_examples"] == 635 and run["import_s"] > 0
        # the phases account for the runner's own start-up time
        assert abs(run["unaccounted_s"]) < 0.05
    assert cold["startup_s"] > 0 and warm["startup_s"] > 0
    # cold: the raw data was read and tokenised, and the detector saw the files opened
    c = cold["runs"][0]
    assert c["cache_stats"] == {"misses": 2} and c["tokenise_calls"] == 2 and c["raw_loads"] == 2
    assert sorted(Path(p).name for p in c["raw_files_opened"]) == ["dev.tsv", "train.tsv"]
    # warm: everything from the cache, no raw file opened, nothing tokenised
    w = warm["runs"][0]
    assert w["cache_stats"] == {"hits": 2}
    assert w["tokenise_calls"] == 0 and w["raw_loads"] == 0 and w["raw_files_opened"] == []
    assert w["warm_clean"] is True and warm["raw_data_read"] is False and warm["tokenised"] is False
    assert r["pass"] == (warm["startup_s"] < 3.0)
    md = (out / "startup.md").read_text()
    assert "BERT-Tiny" in md and ("PASS" in md or "FAIL" in md)


def test_warm_start_reads_no_raw_data(tmp_path, wnli_dir, monkeypatch):
    """Warm the cache, then forbid parsing and tokenising the raw data altogether: a trial
    still starts, in-process and in a fresh process (which opens no raw file at all: the
    data's content digests are memoised beside the cache)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(cache))   # the digest memo beside the cache, as the child sees it
    src = GlueDir(wnli_dir)
    cfg = R.TrialConfig(model="BERT-Tiny", task="WNLI", batch_size=8, learning_rate=1e-3, epochs=1, init="random",
                        max_length=64)
    runtime = Runtime(device="cpu", threads=1)
    n_threads = torch.get_num_threads()
    try:
        cold = R.prepare(cfg, src, cache, runtime)
        assert cold.cache_stats == {"misses": 2}
        assert set(cold.timings) == {"setup_s", "tokenizer_s", "features_train_s", "features_eval_s", "model_s",
                                     "to_device_s", "prepare_s"}
        def forbidden(*a, **k):
            raise AssertionError("raw data read or tokenised with a warm cache")

        with monkeypatch.context() as m:
            m.setattr(GlueDir, "load", forbidden)
            m.setattr(feats, "encode", forbidden)
            seen = {}
            res = R.run_trial(cfg, src, cache=cache, on_progress=lambda step, total, loss: False,
                              after_prepare=lambda p: seen.setdefault("p", p), runtime=runtime)
        assert (res.status, res.steps) == ("stopped", 1) and res.startup_s > 0
        p = seen["p"]
        assert p.cache_stats == {"hits": 2}
        assert len(p.train) == len(cold.train) == 635
        assert (p.train.input_ids == cold.train.input_ids).all() and (p.train.offsets == cold.train.offsets).all()
    finally:
        torch.set_num_threads(n_threads)

    # The benchmark's own trial process, on the same cache.
    result = tmp_path / "r.json"
    env = dict(os.environ, GLUE_SWEEP_CACHE=str(cache), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "bench.startup", "--child", "--model", "BERT-Tiny", "--init", "random",
                           "--task", "WNLI", "--glue-dir", str(wnli_dir), "--batch-size", "8", "--max-length", "64",
                           "--threads", "1", "--result-file", str(result)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads(result.read_text())
    assert rec["cache_stats"] == {"hits": 2} and rec["raw_files_opened"] == [] and rec["warm_clean"] is True
    assert rec["startup_s"] > 0


def test_max_train_examples_still_loads_the_whole_cached_split(tmp_path, wnli_dir):
    """A capped trial reads the whole train split's cache entry and takes its sample from it;
    an uncapped one uses the loaded split as it is."""
    src = GlueDir(wnli_dir)
    cache = tmp_path / "cache"
    n_threads = torch.get_num_threads()
    try:
        base = dict(model="BERT-Tiny", task="WNLI", batch_size=8, learning_rate=1e-3, init="random", max_length=64)
        runtime = Runtime(device="cpu", threads=1)
        full = R.prepare(R.TrialConfig(**base), src, cache, runtime)
        capped = R.prepare(R.TrialConfig(**base, max_train_examples=100), src, cache, runtime)
    finally:
        torch.set_num_threads(n_threads)
    assert capped.cache_stats == {"hits": 2}
    assert len(full.train) == 635 and len(capped.train) == 100
    rows = R.train_subset(635, 100)
    want = full.train.subset(rows)
    assert (capped.train.input_ids == want.input_ids).all() and (capped.train.offsets == want.offsets).all()
    assert (capped.train.labels == full.train.labels[rows]).all()


def test_parse_models_defaults():
    assert B.parse_models("BERT-Tiny, all-MiniLM-L6-v2 ,L-4_H-256:pretrained") == [
        ("BERT-Tiny", "random"), ("all-MiniLM-L6-v2", "pretrained"), ("L-4_H-256", "pretrained")]
    with pytest.raises(ValueError):
        B.parse_models("BERT-Tiny:frozen")
