"""Shared fixtures: the real GLUE data (../shared/glue_data or $GLUE_DIR) completed with
generated MNLI/QQP/QNLI-train files, and a feature cache private to the test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glue_fixtures import make_glue_dir

REPO = Path(__file__).resolve().parent.parent
REAL_GLUE = Path(os.environ.get("GLUE_DIR") or REPO.parent / "shared" / "glue_data")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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


# Bad-input cases tried by the property-based tests, reported at the end of the run.
BAD_INPUT_CASES: dict[str, int] = {}


def pytest_terminal_summary(terminalreporter):
    if BAD_INPUT_CASES:
        total = sum(BAD_INPUT_CASES.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(BAD_INPUT_CASES.items()))
        terminalreporter.write_line(f"bad-input cases tried: {total} ({parts}); none accepted silently or crashed")
