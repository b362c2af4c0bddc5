"""What a Ray worker imports to run a trial: the trainable and what it needs, never the driver,
optuna, scipy, scikit-learn, the results tables or the CLI (a worker pays only for what it uses;
pandas and pyarrow come with Ray Tune itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_trainable_imports_neither_the_driver_nor_optuna_nor_the_tables():
    probe = ("import json, sys; import orchestrator.sweep.trainable; "
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('orchestrator', 'optuna', 'scipy', 'sklearn'))))")
    r = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert "orchestrator.sweep.trainable" in loaded and "orchestrator.train.runner" in loaded
    unwanted = [m for m in loaded if m.split(".")[0] in ("optuna", "scipy", "sklearn") or m.startswith(
        ("orchestrator.sweep.driver", "orchestrator.sweep.recorder", "orchestrator.results", "orchestrator.cli",
         "orchestrator.submit"))]
    assert not unwanted, f"a worker's trainable pulls in: {unwanted}"


def test_a_fused_unit_uses_the_shipped_models_as_a_solo_trial_does(monkeypatch):
    """On a node without the model's files, a fused unit finds the shipped ones (``use_models``)
    before it trains, as the solo trainable does."""
    from orchestrator.config import Runtime
    from orchestrator.spec import sweep as S
    from orchestrator.sweep import trainable as T
    from orchestrator.sweep.tune_jobs import as_tune

    sweep = S.parse("name: f\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n"
                    "search: {batch_size: [32], learning_rate: [1e-4, 5e-5]}\n")
    members = [as_tune(t, "BERT-Tiny") for t in sweep.trials()]
    calls = []

    class Rep:
        def __init__(self, trials, judge, fused):
            self.after_prepare = None

        def on_eval(self, i):
            return None

        def end(self, i, res):
            pass

        def on_test(self, i):
            return None

        def unit_ready(self, unit):
            pass

    class Judge:
        def stopped(self, n):
            return [False] * n

    shipment = object()
    monkeypatch.setattr(T, "Reporter", Rep)
    monkeypatch.setattr(T, "announce", lambda trial: None)
    monkeypatch.setattr(T, "use_vocab", lambda ship: calls.append("vocab"))
    monkeypatch.setattr(T, "use_models", lambda ship: calls.append("models" if ship is shipment else "other"))
    monkeypatch.setattr(T, "soft_labels_file", lambda ship, task: None)
    monkeypatch.setattr(T, "placement", lambda soft_labels=None: Runtime(device="cpu"))
    monkeypatch.setattr(T, "ShippedSource", lambda ship: "shipped")
    monkeypatch.setattr(T, "run_unit", lambda configs, source, **kw: calls.append(("unit", len(configs))) or [])
    T.unit_trainable({"trial": {**members[0], "members": members}}, shipment, Judge())
    assert calls == ["vocab", "models", ("unit", 2)]


def test_a_units_members_are_told_apart_by_learning_rate_and_seed(monkeypatch):
    """Members of one unit may share a learning rate (several seeds): the hooks see each member's
    own trial, in stack order."""
    from types import SimpleNamespace

    from orchestrator.spec import sweep as S
    from orchestrator.sweep import trainable as T

    sweep = S.parse("name: f\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nseeds: 2\nfuse: on\n"
                    "search: {batch_size: [32], learning_rate: [1e-4, 5e-5]}\n")
    trials = sweep.trials()
    seen = []
    monkeypatch.setattr(T.ray, "get_runtime_context", lambda: SimpleNamespace(get_node_id=lambda: "n"))
    monkeypatch.setattr(T.hooks, "call", lambda name, who, obj: seen.append((name, who)))
    rep = T.Reporter(trials, judge=None, fused=True)
    members = [SimpleNamespace(config=t.config) for t in reversed(trials)]
    rep.unit_ready(SimpleNamespace(members=members))
    assert seen == [("unit_ready", list(reversed(trials)))]
    rep.after_prepare(SimpleNamespace(config=trials[-1].config, model=SimpleNamespace(parameters=lambda: []), train=[]))
    assert seen[-1] == ("after_prepare", trials[-1])
    assert len({(t.config.learning_rate, t.config.seed) for t in trials}) == len(trials) == 4
