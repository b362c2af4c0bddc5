"""Content digests of data files (orchestrator/data/digest.py)."""

from __future__ import annotations

import os

import pytest

from orchestrator.data import digest


@pytest.mark.hardening
def test_data_fingerprint_follows_the_bytes_not_the_modification_time(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "train.tsv"
    f.write_text("sentence\tlabel\nok\t1\n")
    first = digest.file_digest(f)
    st = f.stat()
    f.write_text("sentence\tlabel\nok\t0\n")        # same size, other label
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))   # the modification time put back (cp -p, rsync -t)
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    assert digest.file_digest(f) != first
    calls = []
    monkeypatch.setattr(digest, "_hash", lambda p: calls.append(p) or "0" * 64)
    digest._memo.clear()
    digest.file_digest(f)   # memoised on disk by path, size, mtime, inode and ctime: not read again
    assert calls == []
