"""``glue-sweep speed``: measured inference speed of the miniatures and the compact models, its
cache per model and machine, its command line, and the measured speed-ups in the compact table."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from orchestrator.cli.main import main
from orchestrator.config import TrialConfig, make_trial
from orchestrator.registry import models as MD
from orchestrator.store import records as store
from orchestrator.train import speed as S

SPEED_MODELS = ["BERT-Tiny", "DistilBERT", "BERT-Base"]
# One thread: on a shared machine two threads wait on each other at every op, which swamps
# a small model's time (the thread count is part of the cache's machine fingerprint).
THREADS = 1


@pytest.fixture(scope="module")
def measured():
    n = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return S.measure(SPEED_MODELS, batch_sizes=(1, 2), seq_len=32, quick=True, device="cpu")
    finally:
        torch.set_num_threads(n)


def test_speed_orders_tiny_fastest_base_slowest(measured):
    rows = {r["model"]: r for r in measured["models"]}
    assert list(rows) == SPEED_MODELS
    for b in (1, 2):
        thr = {m: rows[m]["batches"][b]["throughput"] for m in SPEED_MODELS}
        assert max(thr, key=thr.get) == "BERT-Tiny" and min(thr, key=thr.get) == "BERT-Base", thr
        assert rows["BERT-Tiny"]["batches"][b]["speedup"] > 1
        assert rows["BERT-Base"]["batches"][b]["speedup"] == pytest.approx(1.0)
    assert rows["BERT-Tiny"]["params_total"] == MD.approx_params(MD.resolve("BERT-Tiny"))[0] == 4_385_920
    assert rows["DistilBERT"]["params_total"] == 66_362_880 and rows["DistilBERT"]["params_non_embedding"] == 42_527_232
    assert rows["BERT-Base"]["params_total"] == 109_482_240


def test_speed_is_cached_per_model_and_machine(measured, monkeypatch):
    torch.set_num_threads(THREADS)
    m = S.machine("cpu")
    path = S.cache_path(m)
    from orchestrator.data.features import cache_dir

    assert path.is_file() and path.parent == cache_dir() / "speed"
    doc = json.loads(path.read_text())
    assert doc["machine"]["cpu"] and doc["machine"]["cores"] and doc["machine"]["torch"] == torch.__version__
    assert "distilbert-base-uncased|seq32|bs2" in doc["entries"]
    monkeypatch.setattr(S, "time_models", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-measured")))
    again = S.measure(["DistilBERT", "BERT-Tiny"], batch_sizes=(1, 2), seq_len=32, quick=True, device="cpu")
    assert all(r["batches"][b]["cached"] for r in again["models"] for b in (1, 2))
    assert again["models"][0]["batches"][2]["speedup"] == measured["models"][1]["batches"][2]["speedup"]
    with pytest.raises(AssertionError, match="re-measured"):      # a full measurement does not reuse quick ones
        S.measure(["BERT-Tiny"], batch_sizes=(1,), seq_len=32, quick=False, device="cpu")
    assert S.fingerprint({**m, "torch": "0.0"}) != S.fingerprint(m)
    assert S.fingerprint({**m, "threads": THREADS + 1}) != S.fingerprint(m)


def test_speedups_appear_in_the_compact_table(measured, tmp_path):
    from synthetic import unpadded

    from orchestrator.results.export import export
    from orchestrator.results.formats import read_speedups
    from orchestrator.results.reference import compact_columns

    out = tmp_path / "speedups.json"
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()) as so, contextlib.redirect_stderr(err):
        rc = main(["speed", *SPEED_MODELS, "--batch-sizes", "1,2", "--seq-len", "32", "--quick", "--device", "cpu",
                   "--threads", str(THREADS), "--out", str(out)])
    assert rc == 0 and "BERT-Tiny" in so.getvalue()
    sp = read_speedups(out)                                          # the leaderboard's own reader
    rows = {r["model"]: r for r in measured["models"]}
    assert sp["BERT-Tiny"] == pytest.approx(rows["BERT-Tiny"]["batches"][2]["speedup"], rel=1e-3)
    assert sp["DistilBERT (random init)"] == sp["DistilBERT"]

    run = tmp_path / "run"
    params = {"BERT-Tiny": 4_386_178, "DistilBERT": 66_955_010, "BERT-Base": 109_483_778}
    for model in params:
        for task in ("MNLI", "QNLI", "QQP", "RTE", "SST-2", "MRPC"):
            metrics = {"MNLI": {"accuracy_m": 70.0, "accuracy_mm": 71.0}, "MRPC": {"f1": 80.0, "accuracy": 75.0},
                       "QQP": {"f1": 60.0, "accuracy": 80.0}}.get(task, {"accuracy": 77.0})
            cfg = TrialConfig(model=MD.resolve(model).ref, task=task, batch_size=32, learning_rate=1e-4, epochs=1)
            rec = store.new_record(make_trial(cfg, model), "synthetic", model)
            rec.update(status="completed", attempts=1, n_params=params[model], examples_per_s=10.0,
                       evals=[{"epoch": 1.0, "step": 10, "metrics": metrics, "train_loss": 0.5, "elapsed_s": 1.0,
                               "score": float(np.mean(list(metrics.values())))}])
            store.write_record(run, rec)
    _, written = export(run, ("csv", "md"), tmp_path / "export", speedups=sp)
    compact = pd.read_csv(tmp_path / "export" / "compact.csv")
    ours = compact[compact["source"] == "this run"].set_index("model")
    for model in params:
        assert ours.loc[model, "speedup"] == pytest.approx(sp[model], abs=1e-3)
    md = unpadded((tmp_path / "export" / "leaderboard.md").read_text())
    md = md[md.index("## Compact models"):]
    line = next(l for l in md.splitlines() if l.startswith("| DistilBERT |"))
    assert f"{sp['DistilBERT']:.1f}x" in line and "67.0M" in line
    assert f"| BERT-Tiny | 4.4M | {sp['BERT-Tiny']:.1f}x |" in md
    # and through the CLI flag
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["leaderboard", str(run), "--out", str(tmp_path / "cli"), "--speedups", str(out)]) == 0
    assert pd.read_csv(tmp_path / "cli" / "compact.csv").set_index("model").loc["BERT-Tiny", "speedup"] == \
        pytest.approx(sp["BERT-Tiny"], abs=1e-3)
    assert compact_columns()  # the table's six GLUE columns are what the records filled


def test_speed_cli_rejects_bad_input():
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["speed", "BERT-Nope", "--batch-sizes", "1", "--quick"]) == 2
    assert "unknown model" in err.getvalue()
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        main(["speed", "BERT-Tiny", "--batch-sizes", "0,x"])
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["speed", "BERT-Tiny", "--batch-sizes", "1", "--speedup-batch", "8"]) == 2
    assert "speedup-batch" in err.getvalue()


def test_speed_module_is_plain_functions(monkeypatch):
    """The command's options live in the CLI; speed.run checks its arguments before measuring."""
    from orchestrator.errors import UserError

    assert not hasattr(S, "register") and "argparse" not in vars(S)
    monkeypatch.setattr(S, "measure", lambda *a, **k: (_ for _ in ()).throw(AssertionError("measured")))
    with pytest.raises(UserError, match="speedup-batch"):
        S.run(["BERT-Tiny"], batch_sizes=[1, 2], speedup_batch=8)
