"""The ``glue-sweep`` command line (orchestrator/cli/main.py): arbitrary sweep files and generated
command lines fail with one line and write nothing; ``run`` checks its results directory and
data before any work; an OS error in any command is one line naming its path."""

from __future__ import annotations

import errno
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from conftest import BAD_INPUT_CASES
from hostile import BASE, SETTINGS, _cli, cli, one_line
from hypothesis import given, settings, strategies as st


@pytest.mark.bad_input
@settings(max_examples=150, **SETTINGS)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_a_sweep_file(tmp_path_factory, data):
    BAD_INPUT_CASES["sweep files (bytes)"] = BAD_INPUT_CASES.get("sweep files (bytes)", 0) + 1
    p = tmp_path_factory.mktemp("spec") / "x.yaml"
    p.write_bytes(data)
    rc, out, err = _cli(["plan", str(p)])
    assert rc == 2 and err.count("\n") == 1 and err.startswith("glue-sweep: error:"), err


FLAGS = ["--model", "--task", "--batch-size", "--lr", "--epochs", "--seed", "--max-train-examples", "--init",
         "--max-length", "--out", "--threads", "--eval-every-steps", "--bogus", "-x"]
VALUES = ["BERT-Tiny", "L-3_H-7", "SST-2", "AX", "nosuchtask", "0", "-1", "1e-4", "nan", "inf", "abc", "", "random",
          "pretrained", "99999999999999999999", "4", "/nonexistent/dir", "../x"]


@pytest.mark.bad_input
@settings(max_examples=200, **SETTINGS)
@given(st.sampled_from(["train", "plan", "status", "leaderboard", "dashboard", "frobnicate", "run"]),
       st.lists(st.one_of(st.sampled_from(FLAGS), st.sampled_from(VALUES)), max_size=10))
def test_command_lines_fail_with_one_line_and_write_nothing(tmp_path_factory, monkeypatch, sub, args):
    BAD_INPUT_CASES["command lines"] = BAD_INPUT_CASES.get("command lines", 0) + 1
    cwd = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("GLUE_DIR", "/nonexistent/glue")   # no data: nothing can start training
    if sub == "run":
        args = ["/nonexistent/sweep.yaml"] + args
    rc, out, err = _cli([sub] + args)
    assert rc == 2, (sub, args, rc, err)
    assert err.count("\n") == 1 and err.startswith("glue-sweep: error:") and "Traceback" not in err, err
    assert not any(cwd.iterdir()), list(cwd.iterdir())


@pytest.mark.hardening
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


@pytest.mark.hardening
def test_a_bad_data_row_is_found_on_the_driver_also_with_an_address(tmp_path, real_glue_dir):
    glue = tmp_path / "glue" / "SST-2"
    glue.mkdir(parents=True)
    (glue / "train.tsv").write_text("sentence\tlabel\ngood\t1\nbad row\t7\n")
    (glue / "dev.tsv").write_text((real_glue_dir / "SST-2" / "dev.tsv").read_text())
    spec = tmp_path / "s.yaml"
    spec.write_text(BASE + f"results: {tmp_path / 'results'}\ndata: {{glue_dir: {tmp_path / 'glue'}}}\n")
    server = grpc.server(ThreadPoolExecutor(1))   # a gRPC server answers as a GCS would: the check gets past it
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        rc, _, err = cli(["run", spec, "--address", f"127.0.0.1:{port}"])
    finally:
        server.stop(0)
    assert rc == 2 and "SST-2/train.tsv:3" in err, err
    one_line(err)
    assert not (tmp_path / "results").exists()


@pytest.mark.hardening
def test_an_os_error_in_any_command_is_one_line_with_its_path(tmp_path, monkeypatch):
    from orchestrator.cli import main as C

    def boom(a):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x.json"))

    monkeypatch.setattr(C, "cmd_plan", boom)
    rc, _, err = cli(["plan", "whatever.yaml"])
    assert rc == 2 and str(tmp_path / "x.json") in err, err
    one_line(err)


def test_run_help_lists_the_documented_exit_codes(capsys):
    import re
    from pathlib import Path

    from orchestrator.cli.main import build_parser

    row = next(l for l in (Path(__file__).resolve().parents[2] / "docs" / "faults.md").read_text().splitlines()
               if l.startswith("| `glue-sweep run` |"))
    documented = set(re.findall(r"(?:^|; )(\d+) ", row.split("|")[2].strip()))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    out = capsys.readouterr().out
    listed = set(re.findall(r"^  (\d+) ", out.split("exit codes:")[1], re.M))
    assert documented and listed == documented, (documented, listed)


def test_train_help_gives_every_optional_flags_default():
    import argparse

    from orchestrator.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    train = sub.choices["train"]
    optional = [a for a in train._actions if a.option_strings and not a.required and a.nargs != 0
                and not isinstance(a, argparse._HelpAction)]
    assert len(optional) > 10
    for a in optional:
        text = a.help % {"default": a.default} if "%(" in (a.help or "") else (a.help or "")
        flag = a.option_strings[-1]
        assert "default" in text, (flag, text)


def test_dashboard_without_a_run_finds_a_sweep_that_has_started_before_its_first_record(tmp_path, monkeypatch):
    import json
    import os
    import time

    from orchestrator.cli.console import newest_run
    from orchestrator.store import records as store
    from synthetic import make_record

    old = tmp_path / "results" / "old"
    store.write_record(old, make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0]))
    os.utime(old / "trials" / os.listdir(old / "trials")[0], (time.time() - 60, time.time() - 60))
    new = tmp_path / "results" / "new"
    new.mkdir()
    (new / "dashboard.json").write_text(json.dumps({"url": None, "pid": os.getpid()}))   # started, no record yet
    monkeypatch.chdir(tmp_path)
    assert newest_run() == Path("results/old")                 # status and leaderboard: the newest records
    assert newest_run(started=True) == Path("results/new")     # dashboard: the sweep that started last
