"""The command line's logging: library modules log, ``glue-sweep`` shows their lines on stderr as
they were printed before (plain, INFO), ``-q`` leaves the progress out, ``-v`` adds the debugging
lines; the flags go before the command. Only ``cli.logs`` configures logging."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from orchestrator.cli.main import build_parser, main

PKG = Path(__file__).resolve().parents[2] / "orchestrator"
# speed: cheap at batch size 1, sequence length 8, --quick; BERT-Base is measured with it
SPEED = ["speed", "BERT-Tiny", "--batch-sizes", "1", "--seq-len", "8", "--quick", "--device", "cpu",
         "--threads", "1"]


@pytest.mark.parametrize("argv, quiet, verbose", [
    (["run", "s.yaml"], False, False), (["-q", "run", "s.yaml"], True, False),
    (["--quiet", "run", "s.yaml"], True, False),
    (["-v", "plan", "s.yaml"], False, True), (["--verbose", "run", "s.yaml"], False, True),
    (["-q", "speed", "BERT-Tiny", "--quiet"], True, False)])   # speed's own --quiet is another flag
def test_global_flags_go_before_the_command(argv, quiet, verbose):
    a = build_parser().parse_args(argv)
    assert a.command in argv and (a.log_quiet, a.log_verbose) == (quiet, verbose)


def test_quiet_and_verbose_together_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["-q", "-v", "plan", "s.yaml"])
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_quiet_leaves_out_progress_and_verbose_adds_debugging(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "cache"))
    assert main(SPEED) == 0                                            # measured now: progress on stderr
    out, err = capsys.readouterr()
    assert "BERT-Tiny: batch 1: " in err and "BERT-Base: batch 1: " in err and "examples/s" in err
    assert "from the cache" not in err                                 # a debugging line
    assert "BERT-Tiny" in out                                          # the table: stdout

    assert main(["-q", *SPEED, "--refresh"]) == 0                      # measured again, quietly
    out, err = capsys.readouterr()
    assert err == "" and "BERT-Tiny" in out

    assert main(["-v", *SPEED]) == 0                                   # from the cache, with its debugging line
    out, err = capsys.readouterr()
    assert "speed: 1 of 1 model(s) from the cache " in err and "batch 1:" not in err and "BERT-Tiny" in out

    logger = logging.getLogger("orchestrator")                         # as it was after each command
    assert not logger.handlers and logger.level == logging.NOTSET and logger.propagate


def test_only_the_command_line_configures_logging():
    offenders = []
    for p in PKG.rglob("*.py"):
        text = p.read_text()
        if p.relative_to(PKG).as_posix() != "cli/logs.py" and any(
                w in text for w in ("basicConfig", "addHandler(", "logging.config", "setLevel(")):
            offenders.append(str(p.relative_to(PKG)))
    assert offenders == []
