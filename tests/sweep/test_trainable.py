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
