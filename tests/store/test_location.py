"""Storage locations (``orchestrator.store.location``) that cannot hold a store: an empty path, a
URI that names no bucket, a missing bucket, a store that does not answer. Each is one line within
seconds, before any data is read, tokenised or Ray is started; every server is on loopback (the
S3-compatible one is moto's, ``conftest.s3_server``)."""

from __future__ import annotations

import socket
import time

import pytest
from hostile import BASE, cli, one_line

from orchestrator.errors import UserError
from orchestrator.store import location as storage

LIMIT = 10.0


def _spec(tmp_path, real_glue_dir):
    spec = tmp_path / "s.yaml"
    spec.write_text(BASE + f"results: {tmp_path / 'results'}\ndata: {{glue_dir: {real_glue_dir}}}\n")
    return spec


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(cache))
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return cache


@pytest.mark.hardening
@pytest.mark.parametrize("uri", ["gs://", "s3://", "gcs://", "gs:///prefix", "s3://?endpoint_override=127.0.0.1:1"])
def test_a_uri_without_a_bucket_is_one_line_at_once(uri):
    """Before: ``status gs://`` waited for ever (pyarrow looked for credentials and a bucket)."""
    t0 = time.monotonic()
    rc, _, err = cli(["status", uri])
    assert rc == 2 and "names no bucket" in err, err
    one_line(err)
    assert time.monotonic() - t0 < LIMIT


@pytest.mark.hardening
@pytest.mark.parametrize("command", ["run", "submit-job"])
def test_an_empty_storage_is_one_line_and_nothing_is_written(tmp_path, real_glue_dir, fresh_cache, monkeypatch,
                                                             command):
    """Before: ``--storage ""`` ran into the spec's results directory (as ``glue_dir: ""`` once did)."""
    monkeypatch.chdir(tmp_path)
    rc, _, err = cli([command, _spec(tmp_path, real_glue_dir), "--storage", ""])
    assert rc == 2 and "storage path or URI is empty" in err, err
    one_line(err)
    assert not (tmp_path / "results").exists() and not fresh_cache.exists()
    rc, _, err = cli(["status", ""])
    assert rc == 2 and "empty" in err, err


@pytest.mark.hardening
def test_a_missing_bucket_is_one_line_before_any_work(tmp_path, real_glue_dir, fresh_cache, s3_server):
    """Before: reported 55 s in, after Ray had started and the features had been shipped."""
    missing = s3_server("x").replace("s3://sweeps/", "s3://no-such-bucket/")
    t0 = time.monotonic()
    rc, _, err = cli(["run", _spec(tmp_path, real_glue_dir), "--storage", missing])
    assert rc == 2 and "bucket 'no-such-bucket' does not exist" in err, err
    one_line(err)
    assert time.monotonic() - t0 < LIMIT
    assert not (tmp_path / "results").exists() and not fresh_cache.exists()   # nothing read, tokenised or written
    storage.reachable(s3_server("there"))   # the bucket that exists answers


@pytest.mark.hardening
@pytest.mark.parametrize("command", ["run", "status"])
def test_an_unreachable_store_is_one_line_within_seconds(tmp_path, real_glue_dir, fresh_cache, command):
    uri = f"s3://sweeps/x?endpoint_override=127.0.0.1:{_closed_port()}&scheme=http&region=us-east-1"
    argv = ["run", _spec(tmp_path, real_glue_dir), "--storage", uri] if command == "run" else ["status", uri]
    t0 = time.monotonic()
    rc, _, err = cli(argv)
    assert rc == 2 and "cannot reach storage s3://sweeps/x" in err, err
    one_line(err)
    assert time.monotonic() - t0 < LIMIT
    assert not fresh_cache.exists()


def test_a_store_that_never_answers_is_refused_when_its_time_is_up(monkeypatch):
    class Stalled:
        def get_file_info(self, path):
            time.sleep(30)

    loc = storage.Location(Stalled(), "bucket/run", "s3://bucket/run")
    monkeypatch.setattr(storage, "DEADLINE", 0.5)
    t0 = time.monotonic()
    with pytest.raises(UserError, match=r"^cannot reach storage s3://bucket/run: no answer within 0.5 s$"):
        storage.reachable(loc)
    assert time.monotonic() - t0 < 5
