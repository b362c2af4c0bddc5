"""Hard to break: each class of hostile or careless input ends in one line (exit 2) or is
handled, never a traceback, a hang, a silent reuse or a half-written result.

Classes: trial identity (exact learning rates, settings hashes), the strict spec parser, CLI
paths and addresses checked before work, store records of the wrong shape, the content-keyed
data fingerprint, submission zips, cluster resources. Ray is not started here (the sweep
tests in test_sweep.py run the failed-trial retry end to end; test_safety.py the listeners).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import socket
import time
import zipfile
from pathlib import Path

import pytest
from synthetic import make_record

from orchestrator.cli.console import error_line
from orchestrator.cli.main import main
from orchestrator.config import TrialConfig, fmt_lr, make_trial
from orchestrator.data import digest
from orchestrator.data.sources import GlueDir
from orchestrator.errors import UserError
from orchestrator.registry.tasks import get_task
from orchestrator.results.values import fmt_lr as table_lr
from orchestrator.spec import sweep as S
from orchestrator.store import identity, records as store

BASE = "name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n"


def cli(argv, cwd=None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def one_line(err: str) -> None:
    assert err.count("\n") == 1 and err.startswith("glue-sweep: error:") and "Traceback" not in err, err


# ----------------------------------------------------------------------------- identity

@pytest.mark.parametrize("lr, text", [(1e-4, "1e-4"), (5e-5, "5e-5"), (5.4e-5, "5.4e-5"), (2.5e-5, "2.5e-5"),
                                      (3e-4, "3e-4"), (1.2345678901234e-4, "1.2345678901234e-4")])
def test_learning_rates_are_named_exactly(lr, text):
    assert fmt_lr(lr) == table_lr(lr) == text and float(text) == lr
    cfg = TrialConfig(model="m", task="SST-2", batch_size=32, learning_rate=lr)
    assert make_trial(cfg, "BERT-Tiny").id == f"BERT-Tiny__SST-2__bs32_lr{text}_s0"


def test_nearby_learning_rates_are_different_trials():
    sw = S.parse(BASE + "search: {batch_size: [32], learning_rate: [2e-5, 2.5e-5, 5e-5, 5.4e-5]}\n", "s.yaml")
    ids = [t.id for t in sw.trials()]
    assert [i.split("_lr")[1] for i in ids] == ["2e-5_s0", "2.5e-5_s0", "5e-5_s0", "5.4e-5_s0"]


def _record_of(cfg: TrialConfig, data_fp: str | None) -> dict:
    rec = {"trial_id": "t1", "status": "completed", "trial": cfg.to_dict()}
    if data_fp is not None:
        rec.update(identity.identity_fields(cfg, data_fp))
    return rec


@pytest.mark.parametrize("change, word", [({"eval_every": 0.5}, "eval_every"), ({"max_length": 64}, "max_length"),
                                          ({"epochs": 3.0}, "epochs"), ({"warmup_ratio": 0.2}, "warmup_ratio"),
                                          ({"max_train_examples": 50}, "max_train_examples")])
def test_a_changed_setting_is_never_reused(change, word):
    cfg = TrialConfig(model="m", task="SST-2", batch_size=32, learning_rate=1e-4, epochs=2)
    with pytest.raises(UserError, match=word):
        identity.check_reuse("run", [_record_of(cfg, "d1")], {"t1": (cfg.replace(**change), "d1")})


def test_changed_data_is_never_reused_and_same_settings_are():
    cfg = TrialConfig(model="m", task="SST-2", batch_size=32, learning_rate=1e-4)
    assert identity.check_reuse("run", [_record_of(cfg, "d1")], {"t1": (cfg, "d1")}) == []
    with pytest.raises(UserError, match="data of SST-2"):
        identity.check_reuse("run", [_record_of(cfg, "d1")], {"t1": (cfg, "d2")})


def test_old_records_without_a_hash_are_reused_only_when_their_configuration_matches():
    cfg = TrialConfig(model="m", task="SST-2", batch_size=32, learning_rate=1e-4)
    warnings = identity.check_reuse("run", [_record_of(cfg, None)], {"t1": (cfg, "d1")})
    assert len(warnings) == 1 and "predate settings hashes" in warnings[0]
    with pytest.raises(UserError, match="learning_rate=1e-4 \\(now 1.5e-4\\)"):
        identity.check_reuse("run", [_record_of(cfg, None)], {"t1": (cfg.replace(learning_rate=1.5e-4), "d1")})


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


def test_feature_fingerprint_changes_with_the_content(tmp_path, real_glue_dir):
    d = tmp_path / "glue" / "RTE"
    d.mkdir(parents=True)
    lines = (real_glue_dir / "RTE" / "train.tsv").read_text().splitlines()[:20]
    (d / "train.tsv").write_text("\n".join(lines) + "\n")
    src, task = GlueDir(tmp_path / "glue"), get_task("RTE")
    before = src.fingerprint(task, "train")
    st = (d / "train.tsv").stat()
    text = "\n".join(lines[:1] + lines[1:][::-1]) + "\n"   # the same rows, another order: same size
    assert len(text) == st.st_size
    (d / "train.tsv").write_text(text)
    os.utime(d / "train.tsv", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert src.fingerprint(task, "train") != before


# ----------------------------------------------------------------------------- the strict spec parser

STRICT_CASES = [
    ("name: m\nname: n\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", "s.yaml:2", "duplicate key 'name'"),
    (BASE + "search: {batch_size: [16], batch_size: [32]}\n", "s.yaml:4", "duplicate key"),
    (BASE + "search: []\n", "s.yaml:4", "empty"),
    (BASE + "search:\n  batch_size:\n", "s.yaml:5", "empty"),
    (BASE + "seeds: []\n", "s.yaml:4", "empty"),
    (BASE + "data: {glue_dir: ''}\n", "s.yaml:4", "empty"),
    ("name:\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", "s.yaml:1", "empty"),
    ("name: true\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", "s.yaml:1", "must be letters"),
    ("name: yes\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", None, None),   # YAML 1.2: the string 'yes', a fine name
    ("name: " + "x" * 300 + "\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", "s.yaml:1", "at most 100"),
    ("name: m\nmodels: [{name: BERT-Tiny, layers: 4}]\ntasks: [SST-2]\n", "s.yaml:2", "contradicts"),
    ("name: m\nmodels: [{name: BERT-Mini, hidden: 128}]\ntasks: [SST-2]\n", "s.yaml:2", "contradicts"),
    ("name: m\nmodels: [{layers: [2], hidden: [128.0]}]\ntasks: [SST-2]\n", "s.yaml:2", "whole numbers"),
    (BASE + "max_train_examples: 100.0\n", "s.yaml:4", "whole number"),
    (BASE + "search: {batch_size: [32.0]}\n", "s.yaml:4", "whole number"),
    (BASE + "epochs: 1:30\n", "s.yaml:4", "expected a number"),
    (BASE + "trust_remote_code: yes\n", "s.yaml:4", "true or false"),
    (BASE + "keep_best_checkpoint: on\n", "s.yaml:4", "true or false"),
    (BASE + "keep_best_checkpoint: true\n", "s.yaml:4", "not implemented"),
    (BASE + "search: {learning_rate: [1000]}\n", "s.yaml:4", "must be below 1"),
    (BASE + "search: {learning_rate: [1]}\n", "s.yaml:4", "must be below 1"),
    (BASE + "search: {mode: optuna, learning_rate: {low: 1e-5, high: 2}}\n", "s.yaml:4", "between 0 and 1"),
    (BASE + "epochs: 1000\n", "s.yaml:4", "at most 100"),
    (BASE + "search: {batch_size: [100000]}\n", "s.yaml:4", "must be below"),
    (BASE + "seeds: 1000000000\n", "s.yaml:4", "between 1 and 1000"),
    ("a: &a [*a]\n", "s.yaml:1", "recursive anchor"),
    ("name: &n [m, *n]\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", "s.yaml:1", "recursive anchor"),
]


@pytest.mark.parametrize("text, where, words", STRICT_CASES)
def test_strict_spec_parser(text, where, words):
    if where is None:
        assert S.parse(text, "s.yaml").name == "yes"
        return
    with pytest.raises(UserError) as e:
        S.parse(text, "s.yaml")
    msg = str(e.value)
    assert msg.startswith(where + ":") and words in msg and "\n" not in msg, msg


def test_yaml_12_scalars():
    sw = S.parse(BASE + "search: {learning_rate: [1e-4, 5.4e-5]}\nepochs: 010\n", "s.yaml")
    assert sw.learning_rates == [1e-4, 5.4e-5] and sw.epochs == 10   # 010 is ten, not octal eight


def _laughs(levels: int) -> str:
    doc = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(levels):
        doc += f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n"
    return doc


def test_billion_laughs_and_huge_grids_fail_fast():
    t0 = time.monotonic()
    with pytest.raises(UserError, match="expands to more than"):
        S.parse(_laughs(9), "s.yaml")
    with pytest.raises(UserError, match="at most 64,000"):
        S.parse(BASE + "description: '" + "x" * 70_000 + "'\n", "s.yaml")
    many = ", ".join(f"{i + 1}e-9" for i in range(5000))   # 5000 x 5000 x 28 tasks: refused before expansion
    with pytest.raises(UserError, match="at most 100,000"):
        S.parse("name: m\nmodels: miniatures\ntasks: all\nsearch: {batch_size: [8, 16], learning_rate: [" + many
                + "]}\n", "s.yaml")
    assert time.monotonic() - t0 < 30


def test_long_value_lists_are_checked_linearly():
    vals = ", ".join(f"{i + 1}e-9" for i in range(4000))
    t0 = time.monotonic()
    with pytest.raises(UserError, match="repeats 1e-09"):
        S.parse(BASE + f"search: {{batch_size: [8], learning_rate: [{vals}, 1e-9]}}\n", "s.yaml")
    assert time.monotonic() - t0 < 20


def test_trial_config_refuses_absurd_values():
    for bad in ({"learning_rate": 1000.0}, {"learning_rate": 1.0}, {"epochs": 1e6}, {"batch_size": 10 ** 6}):
        with pytest.raises(UserError):
            TrialConfig(**{"model": "m", "task": "t", "batch_size": 8, "learning_rate": 1e-4, **bad})


# ----------------------------------------------------------------------------- command lines

def test_error_lines_are_capped_and_keep_their_place():
    line = error_line("data/RTE/train.tsv:7: bad row " + "x" * 10_000_000)
    assert len(line) <= 300 and line.startswith("data/RTE/train.tsv:7: bad row")


@pytest.mark.parametrize("address", ["127.0.0.1:notaport", "127.0.0.1:99999", "ray://host:-1", "[::1", ":"])
def test_malformed_addresses_are_one_line(tmp_path, address, real_glue_dir):
    spec = tmp_path / "s.yaml"
    spec.write_text(BASE + f"results: {tmp_path / 'results'}\ndata: {{glue_dir: {real_glue_dir}}}\n")
    rc, _, err = cli(["run", spec, "--address", address])
    assert rc == 2, err
    one_line(err)
    assert not (tmp_path / "results").exists()


def test_address_auto_with_a_stale_cluster_file_fails_at_once(tmp_path, monkeypatch, real_glue_dir):
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    (tmp_path / "ray").mkdir()
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}\n")
    from orchestrator.sweep.cluster import auto_address

    t0 = time.monotonic()
    with pytest.raises(UserError, match="stale"):
        auto_address()
    (tmp_path / "ray" / "ray_current_cluster").unlink()
    with pytest.raises(UserError, match="no running Ray cluster"):
        auto_address()
    assert time.monotonic() - t0 < 15


@pytest.mark.parametrize("where", ["file", "proc", "long"])
def test_results_paths_that_cannot_hold_results(tmp_path, real_glue_dir, where):
    (tmp_path / "afile").write_text("x")
    results = {"file": tmp_path / "afile" / "results", "proc": Path("/proc/glue-sweep-results"),
               "long": tmp_path / ("d" * 300)}[where]
    spec = tmp_path / "s.yaml"
    spec.write_text(BASE + f"results: {results}\ndata: {{glue_dir: {real_glue_dir}}}\n")
    rc, _, err = cli(["run", spec])
    assert rc == 2 and "results directory" in err, err
    one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "s.yaml"]


def test_a_bad_data_row_is_found_on_the_driver_also_with_an_address(tmp_path, real_glue_dir):
    glue = tmp_path / "glue" / "SST-2"
    glue.mkdir(parents=True)
    (glue / "train.tsv").write_text("sentence\tlabel\ngood\t1\nbad row\t7\n")
    (glue / "dev.tsv").write_text((real_glue_dir / "SST-2" / "dev.tsv").read_text())
    spec = tmp_path / "s.yaml"
    spec.write_text(BASE + f"results: {tmp_path / 'results'}\ndata: {{glue_dir: {tmp_path / 'glue'}}}\n")
    with socket.socket() as listener:   # something answers at the address: the check gets past it
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        rc, _, err = cli(["run", spec, "--address", f"127.0.0.1:{listener.getsockname()[1]}"])
    assert rc == 2 and "SST-2/train.tsv:3" in err, err
    one_line(err)
    assert not (tmp_path / "results").exists()


def test_train_refuses_an_unwritable_out_before_training(tmp_path, monkeypatch, real_glue_dir):
    from orchestrator.train import runner

    monkeypatch.setattr(runner, "prepare", lambda *a, **k: pytest.fail("training started"))
    (tmp_path / "afile").write_text("x")
    rc, _, err = cli(["train", "--model", "BERT-Tiny", "--init", "random", "--task", "RTE", "--batch-size", "8",
                      "--lr", "1e-4", "--glue-dir", real_glue_dir, "--out", tmp_path / "afile" / "out"])
    assert rc == 2 and "--out directory" in err, err
    one_line(err)


def test_train_on_a_device_this_torch_lacks(tmp_path, monkeypatch, real_glue_dir):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc, _, err = cli(["train", "--model", "BERT-Tiny", "--init", "random", "--task", "RTE", "--batch-size", "8",
                      "--lr", "1e-4", "--glue-dir", real_glue_dir, "--device", "cuda", "--out", tmp_path / "o"])
    assert rc == 2 and "no usable CUDA device" in err, err
    one_line(err)
    assert not (tmp_path / "o").exists()


def test_disk_full_at_lock_time_is_one_line_and_leaves_no_lock(tmp_path, monkeypatch):
    from orchestrator.sweep.cluster import RunLock

    def full(*a):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(UserError, match="cannot lock .*No space left"):
        with RunLock(tmp_path / "results" / "m"):
            pass
    assert not (tmp_path / "results").exists()


def test_an_os_error_in_any_command_is_one_line_with_its_path(tmp_path, monkeypatch):
    from orchestrator.cli import main as C

    def boom(a):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x.json"))

    monkeypatch.setattr(C, "cmd_plan", boom)
    rc, _, err = cli(["plan", "whatever.yaml"])
    assert rc == 2 and str(tmp_path / "x.json") in err, err
    one_line(err)


def test_cpus_per_trial_beyond_every_node_is_one_line(monkeypatch):
    from orchestrator.sweep import cluster

    monkeypatch.setattr(cluster.ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 2.0}},
                                                       {"Alive": False, "Resources": {"CPU": 64.0}}])
    cluster.check_fits("s.yaml", 2, "auto")
    with pytest.raises(UserError, match="cpus_per_trial 3 is more than any node .* 2 CPUs"):
        cluster.check_fits("s.yaml", 3, "auto")
    with pytest.raises(UserError, match="gpus_per_trial 1"):
        cluster.check_fits("s.yaml", 1, 1.0)


# ----------------------------------------------------------------------------- the store

def _write(run: Path, rec: dict, name: str | None = None) -> None:
    d = store.trials_dir(run)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name or rec['trial_id']}.json").write_text(json.dumps(rec))


BAD_FIELDS = [("evals", [{"score": "high", "metrics": {}}]), ("evals", [{"score": 1.0, "metrics": {"acc": "x"}}]),
              ("evals", [{"score": 1.0, "metrics": [1]}]), ("status", ["completed"]), ("model", 7),
              ("group", None), ("attempts", "two"), ("error", 3), ("trial", {"model": 1}), ("evals", {"a": 1}),
              ("n_params", "many"), ("settings_hash", 5), ("evals", [{"score": True, "metrics": {}}])]


@pytest.mark.parametrize("key, value", BAD_FIELDS)
def test_records_of_the_wrong_types_are_reported_not_crashed_on(tmp_path, key, value):
    from orchestrator.cli.console import status_text
    from orchestrator.results.load import load_run

    good = make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0, 81.0])
    _write(tmp_path, good)
    bad = {**make_record("BERT-Tiny", "SST-2", 16, 1e-4, [70.0]), key: value}
    _write(tmp_path, bad)
    recs, problems = store.read_records(tmp_path)
    assert [r["trial_id"] for r in recs] == [good["trial_id"]] and len(problems) == 1, problems
    assert "\n" not in problems[0]
    assert "BERT-Tiny" in status_text(tmp_path)
    assert len(load_run(tmp_path).problems) == 1
    rc, _, err = cli(["leaderboard", tmp_path, "--out", tmp_path / "export"])
    assert rc == 0 and "skipped" in err, err


def test_a_record_copied_under_another_name_is_not_a_second_result(tmp_path):
    rec = make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0])
    _write(tmp_path, rec)
    _write(tmp_path, rec, name=rec["trial_id"].replace("_s0", "_s1"))
    recs, problems = store.read_records(tmp_path)
    assert len(recs) == 1 and len(problems) == 1 and "file name" in problems[0]


# ----------------------------------------------------------------------------- submission zips

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
