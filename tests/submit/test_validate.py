"""The submission validator (orchestrator/submit/validate.py, ``glue-sweep submit --check``):
damaged zips, generated and crafted, are refused in one line; a huge entry is refused without
reading it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from conftest import BAD_INPUT_CASES
from hostile import SETTINGS, _cli, cli
from hypothesis import given, settings, strategies as st


@pytest.mark.bad_input
@settings(max_examples=100, **SETTINGS)
@given(st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=6), st.integers(0, 10 ** 6))
def test_damaged_zips_are_refused_in_one_line(tmp_path_factory, real_glue_dir, flips, cut):
    import zipfile

    BAD_INPUT_CASES["submission zips"] = BAD_INPUT_CASES.get("submission zips", 0) + 1
    p = tmp_path_factory.mktemp("zip") / "sub_INCOMPLETE.zip"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("WNLI.tsv", "index\tprediction\n" + "".join(f"{i}\t{i % 2}\n" for i in range(146)))
    raw = bytearray(p.read_bytes())
    for at, value in flips:
        raw[at % len(raw)] = value
    p.write_bytes(bytes(raw[:max(1, len(raw) - cut % (len(raw) + 1))] if cut % 3 == 0 else raw))
    rc, out, err = _cli(["submit", "--check", str(p), "--glue-dir", str(real_glue_dir)])
    assert rc in (0, 1, 2) and "Traceback" not in err, err
    if rc == 2:
        assert err.rstrip().splitlines()[-1].startswith("glue-sweep: error:"), err


def _zip_with(tmp_path: Path, name: str, data: bytes, **kw) -> Path:
    p = tmp_path / "sub.zip"
    with zipfile.ZipFile(p, "w", compression=kw.get("compression", zipfile.ZIP_DEFLATED)) as z:
        z.writestr(name, data)
    return p


def _check(p: Path, glue_dir: Path) -> str:
    rc, _, err = cli(["submit", "--check", p, "--glue-dir", glue_dir])
    assert rc == 2, err
    assert "Traceback" not in err and err.rstrip().splitlines()[-1].startswith("glue-sweep: error:"), err
    return err


@pytest.mark.hardening
def test_damaged_zips_are_one_line_each(tmp_path, real_glue_dir):
    good = b"index\tprediction\n0\t1\n"
    p = _zip_with(tmp_path, "WNLI.tsv", good * 100, compression=zipfile.ZIP_STORED)
    raw = bytearray(p.read_bytes())
    raw[raw.index(b"0\t1\n") + 1] ^= 0xFF      # bad CRC
    p.write_bytes(bytes(raw))
    assert "WNLI.tsv: damaged in the zip" in _check(p, real_glue_dir)
    p = _zip_with(tmp_path, "WNLI.tsv", good)
    raw = bytearray(p.read_bytes())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # compression method 99: not one zipfile reads
        i = raw.index(sig) + (8 if sig == b"PK\x03\x04" else 10)
        raw[i:i + 2] = (99).to_bytes(2, "little")
    p.write_bytes(bytes(raw))
    assert "WNLI.tsv: cannot be read" in _check(p, real_glue_dir)
    p = _zip_with(tmp_path, "WNLI.tsv", good)
    raw = bytearray(p.read_bytes())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # the encryption flag
        i = raw.index(sig) + (6 if sig == b"PK\x03\x04" else 8)
        raw[i] |= 1
    p.write_bytes(bytes(raw))
    assert "WNLI.tsv: encrypted" in _check(p, real_glue_dir)


@pytest.mark.hardening
def test_a_huge_entry_is_refused_without_reading_it(tmp_path, real_glue_dir, monkeypatch):
    from orchestrator.submit import validate

    monkeypatch.setattr(validate, "MAX_ENTRY_BYTES", 1000)
    p = _zip_with(tmp_path, "WNLI.tsv", b"index\tprediction\n" + b"0\t1\n" * 10_000)
    err = _check(p, real_glue_dir)
    assert "WNLI.tsv: 40,017 bytes uncompressed" in err, err
    with zipfile.ZipFile(p) as z:   # a header that lies about the size: read no further than it says, refused
        info = z.infolist()[0]
        info.file_size = 10
        data, why = validate.read_entry(z, info, limit=1000)
    assert data is None and "damaged" in why
