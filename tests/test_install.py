"""The wheel a user gets from ``pip install .`` (not editable) works from any directory: the tasks
and the shipped sweeps travel as package data, ``glue-sweep plan <name>`` finds a shipped sweep,
a 1-trial ``glue-sweep run`` finishes, and every library the package imports is declared."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project built as a wheel and installed (no dependencies: the test's venv has them) into
    a directory of its own, away from the source tree."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"   # built from a copy: the build leaves nothing in the source tree
    top = {".git", ".venv", "results", "build", "dist", "bench", "tests", ".cache"}
    shutil.copytree(REPO, src, ignore=lambda d, names: [n for n in names if (Path(d) == REPO and n in top)
                                                        or n.endswith(".egg-info") or n == "__pycache__"])
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    wheel = next((tmp / "dist").glob("glue_sweep-*.whl"))
    subprocess.run(pip + ["install", "--no-deps", "--target", str(tmp / "site"), str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    return tmp / "site"


def run(site: Path, args: list[str], cwd: Path, timeout: int = 60, **env) -> subprocess.CompletedProcess:
    """``args`` run by this Python, or by the wheel's own ``glue-sweep`` script when they start with it."""
    e = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **env}
    e.pop("GLUE_SWEEP_TASKS_DIR", None)
    cmd = [str(site / "bin" / "glue-sweep"), *args[1:]] if args[0] == "glue-sweep" else [sys.executable, *args]
    return subprocess.run(cmd, cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)


def test_the_installed_package_is_the_wheel_and_carries_its_data(installed, tmp_path):
    r = run(installed, ["-c", "import json, orchestrator; from orchestrator.registry.tasks import TASKS_DIR; "
                              "print(json.dumps([orchestrator.__file__, str(TASKS_DIR), "
                              "str(orchestrator.shipped('sweeps'))]))"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pkg, tasks, sweeps = map(Path, json.loads(r.stdout))
    assert pkg.is_relative_to(installed), f"imported {pkg}, not the wheel's copy"
    assert tasks.is_relative_to(installed) and sorted(p.name for p in tasks.glob("*.yaml")) == \
        sorted(p.name for p in (REPO / "tasks").glob("*.yaml"))
    assert sweeps.is_relative_to(installed) and (sweeps / "paper.yaml").is_file()


def test_plan_finds_a_shipped_sweep_by_name_from_an_empty_directory(installed, tmp_path):
    r = run(installed, ["glue-sweep", "plan", "paper"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "4,320" in r.stdout or "4320" in r.stdout, r.stdout[:2000]   # 24 x 9 x 20 trials
    r = run(installed, ["glue-sweep", "plan", "no-such-sweep"], cwd=tmp_path)
    assert r.returncode == 2 and "paper" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_one_trial_sweep_runs_from_the_wheel(installed, tmp_path, real_glue_dir):
    spec = tmp_path / "one.yaml"
    spec.write_text(f"""name: one
models: [{{name: BERT-Tiny, init: random}}]
tasks: [SST-2]
search: {{batch_size: [32], learning_rate: [1e-4]}}
epochs: 1
max_train_examples: 64
data: {{glue_dir: {real_glue_dir}}}
""")
    r = run(installed, ["glue-sweep", "run", "one.yaml"], cwd=tmp_path, timeout=400,
            RAY_AUTH_MODE="token", PYTHONUNBUFFERED="1", GLUE_SWEEP_NO_JOB="0")   # as a Ray Job, from the wheel
    assert r.returncode == 0, r.stderr[-3000:]
    assert "runs as Ray Job glue-sweep-one-" in r.stderr and "sweep one finished: 1 completed" in r.stderr
    rec = json.loads(next((tmp_path / "results" / "one" / "trials").glob("*.json")).read_text())
    assert rec["status"] == "completed" and rec["evals"], rec


def test_every_imported_library_is_declared():
    tomllib = pytest.importorskip("tomllib")   # Python 3.11+
    declared = set()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        declared.add(re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-"))
    dists = metadata.packages_distributions()
    missing = set()
    for p in (REPO / "orchestrator").rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "orchestrator":
                    continue
                owners = {d.lower().replace("_", "-") for d in dists.get(top, [top])}
                if not owners & declared:
                    missing.add(f"{top} ({p.relative_to(REPO)})")
    assert not missing, "imported but not declared in pyproject.toml: " + ", ".join(sorted(missing))
