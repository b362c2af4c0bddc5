"""Shared fixtures: the real GLUE data (../shared/glue_data or $GLUE_DIR) completed with
generated MNLI/QQP/QNLI-train files, a feature cache private to the test session, and an
editable copy of the task definitions.

Tests mirror the package: tests/<package>/test_<module>.py (tests/test_<module>.py for the top-level
modules), the cross-cutting suites as markers (bad_input, hardening, safety, faults) on tests beside
their modules. Test files are imported by basename (pytest's default import mode, this directory on
sys.path for the helpers: glue_fixtures, synthetic, hostile, dashboard_proxy), so every test file's
name is unique across tests/."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

import pytest
from glue_fixtures import make_glue_dir

from orchestrator.registry import tasks

REPO = Path(__file__).resolve().parent.parent
REAL_GLUE = Path(os.environ.get("GLUE_DIR") or REPO.parent / "shared" / "glue_data")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GLUE_SWEEP_DRAW_WORKERS", "1")   # pictures drawn in the test's process (workers: tested apart)
# `glue-sweep run` keeps its driver in-process (a local run's own Ray head and job cost seconds a run):
# the Ray Job path is tested apart (tests/sweep/test_local_job.py, test_dashboard.py, the wheel's sweep)
os.environ.setdefault("GLUE_SWEEP_NO_JOB", "1")


@pytest.fixture(scope="session")
def real_glue_dir() -> Path:
    if not (REAL_GLUE / "SST-2" / "dev.tsv").is_file():
        pytest.fail(f"real GLUE data not found at {REAL_GLUE}: set GLUE_DIR")
    return REAL_GLUE


@pytest.fixture(scope="session")
def glue_dir(tmp_path_factory, real_glue_dir) -> Path:
    """Every GLUE task: real files where they exist, generated ones for MNLI, QQP, QNLI-train."""
    return make_glue_dir(tmp_path_factory.mktemp("glue"), real_glue_dir)


@pytest.fixture(scope="session", autouse=True)
def _private_caches(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    old = {k: os.environ.get(k) for k in ("GLUE_SWEEP_CACHE", "HF_DATASETS_CACHE")}
    os.environ["GLUE_SWEEP_CACHE"] = str(cache / "glue-sweep")
    os.environ["HF_DATASETS_CACHE"] = str(cache / "hf-datasets")
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _no_local_models(monkeypatch):
    """Models come from the registry and the packaged model, never from the machine's MODELS_DIR
    or vocabulary override (a test that wants them sets them itself)."""
    monkeypatch.delenv("MODELS_DIR", raising=False)
    monkeypatch.delenv("GLUE_SWEEP_VOCAB", raising=False)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """torch's thread count is process-wide: whatever a test sets is undone after it."""
    torch = sys.modules.get("torch")
    n = torch.get_num_threads() if torch else None
    yield
    if n is not None:
        torch.set_num_threads(n)


@pytest.fixture
def one_thread():
    """Trials on one torch thread (tiny models gain nothing from more; a busy machine makes extra
    threads very slow)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def src(glue_dir):
    """The complete GLUE directory as a data source."""
    from orchestrator.data.sources import GlueDir

    return GlueDir(glue_dir)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*a, **k):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def tasks_dir(tmp_path, monkeypatch) -> Path:
    """A copy of tasks/*.yaml that a test may edit or add to; the task registry reads it instead."""
    d = tmp_path / "tasks"
    d.mkdir()
    for f in tasks.TASKS_DIR.glob("*.yaml"):
        (d / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(tasks, "TASKS_DIR", d)
    return d


@pytest.fixture(scope="session")
def s3_server():
    """An S3-compatible server on loopback (moto's), with a bucket; yields a function giving the
    ``s3://`` URI of a prefix in it that pyarrow.fs opens (credentials set in the environment, so
    a CLI started by a test reaches it too)."""
    pytest.importorskip("moto")
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in creds}
    os.environ.update(creds)
    boto3.client("s3", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket="sweeps")
    yield lambda prefix: f"s3://sweeps/{prefix}?endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


# Bad-input cases tried by the property-based tests, reported at the end of the run.
BAD_INPUT_CASES: dict[str, int] = {}


def pytest_terminal_summary(terminalreporter):
    if BAD_INPUT_CASES:
        total = sum(BAD_INPUT_CASES.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(BAD_INPUT_CASES.items()))
        terminalreporter.write_line(f"bad-input cases tried: {total} ({parts}); none accepted silently or crashed")


# The slowest files first (each over a minute and a half of real sweeps, subprocesses or
# training): with `--dist loadfile` a file's tests run in one process, and a long file that
# starts last holds the suite open alone while the other processes sit idle.
SLOW_FIRST = ("sweep/test_dashboard.py", "spec/test_units.py", "train/test_runner.py", "train/test_compile.py",
              "fused/test_loop.py", "submit/test_stored.py", "sweep/test_local_job.py", "fused/test_evaluation.py",
              "bench/test_gpu.py", "sweep/test_prometheus.py", "sweep/test_driver.py", "sweep/test_address.py",
              "train/test_distill.py", "submit/test_predict.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0].removeprefix("tests/"), len(rank)))
