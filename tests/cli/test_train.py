"""``glue-sweep train``: a run writes metrics.json with every epoch's evaluation; bad input
is one ``glue-sweep: error:`` line on stderr, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from orchestrator.cli.main import main
from orchestrator.config import TrialConfig

REPO = Path(__file__).resolve().parents[2]
FAST = ["--model", "BERT-Tiny", "--init", "random", "--batch-size", "16", "--lr", "1e-3", "--max-train-examples", "48",
        "--max-length", "64", "--threads", "1", "--device", "cpu", "--quiet"]


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.delenv("MODELS_DIR", raising=False)
    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # the default output (results/train/...) lands here, if anywhere
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _glue_cli():
    exe = Path(sys.executable).parent / "glue-sweep"
    if not exe.is_file():
        exe = REPO / ".venv" / "bin" / "glue-sweep"
    return str(exe)


def _run_main(argv):
    try:
        return main(argv)
    except SystemExit as e:  # argparse errors exit from inside parse_args
        return e.code


def test_train_writes_metrics_json(glue_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["train", "--task", "RTE", "--epochs", "2", "--glue-dir", str(glue_dir), "--out", str(out), *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["status"] == "completed" and rec["trial"]["task"] == "RTE"
    assert rec["trial_id"] == "BERT-Tiny-random__RTE__bs16_lr1e-3_s0"   # the sweep's id function
    assert rec["trial"]["model"] == "google/bert_uncased_L-2_H-128_A-2" and rec["trial"]["batch_size"] == 16
    assert TrialConfig.from_dict(rec["trial"]).init == "random"
    assert rec["train_examples"] == 48 and rec["steps"] == 6
    assert [e["epoch"] for e in rec["evals"]] == [1.0, 2.0]
    for e in rec["evals"]:
        assert set(e["metrics"]) == {"accuracy"} and 0 <= e["score"] <= 100
        assert {"step", "train_loss", "elapsed_s"} <= set(e)
    assert "GLUE directory" in rec["data"]
    assert "status completed" in captured.out and "accuracy" in captured.out
    assert "Traceback" not in captured.err
    assert not (tmp_path / "results").exists()


def test_train_mnli_records_both_dev_splits(glue_dir, tmp_path, capsys):
    rc = main(["train", "--task", "mnli", "--epochs", "1", "--glue-dir", str(glue_dir), "--out", str(tmp_path / "o"), *FAST])
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((tmp_path / "o" / "metrics.json").read_text())
    (ev,) = rec["evals"]
    assert list(ev["metrics"]) == ["accuracy_m", "accuracy_mm"]
    assert ev["score"] == pytest.approx(sum(ev["metrics"].values()) / 2)


# --- bad input -------------------------------------------------------------------------------

def _broken_glue(real: Path, tmp: Path, line: int, row: str) -> Path:
    d = tmp / "glue-broken"
    shutil.copytree(real / "WNLI", d / "WNLI")
    p = d / "WNLI" / "train.tsv"
    lines = p.read_text(encoding="utf-8").split("\n")
    lines[line - 1] = row
    p.write_text("\n".join(lines), encoding="utf-8")
    return d


def _case_args(case, glue_dir, real_glue_dir, tmp_path, monkeypatch):
    """argv and the text the error line must contain."""
    good = ["--glue-dir", str(glue_dir)]
    if case == "unknown task":
        return ["--task", "QQQ", *good], "unknown task 'QQQ'"
    if case == "unknown model":
        return ["--task", "RTE", *good, "--model", "BERT-Huge"], "unknown model 'BERT-Huge'"
    if case == "unknown model shape":
        return ["--task", "RTE", *good, "--model", "L-3_H-100"], "unknown model 'L-3_H-100'"
    if case == "model dir missing":
        return ["--task", "RTE", *good, "--model", "./no/such/model"], "does not exist"
    if case == "missing task dir":
        d = tmp_path / "glue-partial"
        shutil.copytree(real_glue_dir / "WNLI", d / "WNLI")
        return ["--task", "RTE", "--glue-dir", str(d)], f"missing data file {d / 'RTE' / 'train.tsv'}"
    if case == "GLUE_DIR nowhere":
        monkeypatch.setenv("GLUE_DIR", str(tmp_path / "nowhere"))
        return ["--task", "RTE"], f"GLUE data directory {tmp_path / 'nowhere'} does not exist"
    if case == "--glue-dir nowhere":
        return ["--task", "RTE", "--glue-dir", str(tmp_path / "nowhere")], "does not exist"
    if case == "wrong column count":
        d = _broken_glue(real_glue_dir, tmp_path, 9, "8\tA sentence.\t1")
        return ["--task", "WNLI", "--glue-dir", str(d)], f"{d / 'WNLI' / 'train.tsv'}:9: expected 4"
    if case == "label outside set":
        d = _broken_glue(real_glue_dir, tmp_path, 20, "19\tA sentence.\tAnother one.\tmaybe")
        return ["--task", "WNLI", "--glue-dir", str(d)], f"{d / 'WNLI' / 'train.tsv'}:20: label 'maybe'"
    if case == "max length 4":
        return ["--task", "RTE", *good, "--max-length", "4"], "max length must be between 8 and 512"
    if case == "hub id offline":
        return ["--task", "RTE", *good, "--model", "no-such-org-xyz/no-such-model"], "could not be loaded"
    if case == "train AX":
        return ["--task", "AX", *good], "task AX has no training split"
    raise AssertionError(case)


ERROR_CASES = ["unknown task", "unknown model", "unknown model shape", "model dir missing", "missing task dir",
               "GLUE_DIR nowhere", "--glue-dir nowhere", "wrong column count", "label outside set", "max length 4",
               "hub id offline", "train AX"]


def _assert_one_error_line(err: str, must_contain: str | None = None, prefix: str = "glue-sweep: error:"):
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix), err
    assert "Traceback" not in err
    if must_contain:
        assert must_contain in lines[0], err


@pytest.mark.parametrize("case", ERROR_CASES)
def test_bad_input_is_one_error_line(case, glue_dir, real_glue_dir, tmp_path, monkeypatch, capsys):
    args, must = _case_args(case, glue_dir, real_glue_dir, tmp_path, monkeypatch)
    argv = ["train", *FAST, *args, "--out", str(tmp_path / "out")]  # later flags win: --model overrides FAST's
    rc = _run_main(argv)
    captured = capsys.readouterr()
    assert rc == 2
    _assert_one_error_line(captured.err, must)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "results").exists()


FLAG_CASES = {
    "lr 0": (["--lr", "0"], "--lr"),
    "lr negative": (["--lr=-1e-4"], "--lr"),
    "lr not a number": (["--lr", "fast"], "--lr"),
    "batch size 0": (["--batch-size", "0"], "--batch-size"),
    "batch size negative": (["--batch-size=-8"], "--batch-size"),
    "epochs 0": (["--epochs", "0"], "--epochs"),
    "init unknown": (["--init", "zeros"], "--init"),
}


def _flag_argv(glue_dir, tmp_path, extra):
    return ["train", *FAST, "--task", "RTE", "--glue-dir", str(glue_dir), *extra, "--out", str(tmp_path / "out")]


@pytest.mark.parametrize("case", sorted(FLAG_CASES))
def test_bad_flag_value_exits_2_with_one_line(case, glue_dir, tmp_path, capsys):
    extra, flag = FLAG_CASES[case]
    rc = _run_main(_flag_argv(glue_dir, tmp_path, extra))
    captured = capsys.readouterr()
    assert rc == 2
    _assert_one_error_line(captured.err, flag, prefix="glue-sweep")
    assert "error:" in captured.err
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize("case", ["lr 0", "batch size 0"])
def test_bad_flag_value_error_prefix(case, glue_dir, tmp_path, capsys):
    extra, flag = FLAG_CASES[case]
    assert _run_main(_flag_argv(glue_dir, tmp_path, extra)) == 2
    _assert_one_error_line(capsys.readouterr().err, flag)


# --- the installed command, in a real process ----------------------------------------------

def _env_for_subprocess(**extra):
    env = dict(os.environ)
    env.pop("MODELS_DIR", None)
    env.pop("GLUE_DIR", None)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    return env


def test_real_command_trains_with_default_output_dir(glue_dir, tmp_path):
    proc = subprocess.run([_glue_cli(), "train", "--task", "WNLI", "--epochs", "2", *FAST],
                          cwd=tmp_path, env=_env_for_subprocess(GLUE_DIR=str(glue_dir)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "results" / "train" / "BERT-Tiny-random__WNLI__bs16_lr1e-3_s0" / "metrics.json"
    rec = json.loads(path.read_text())
    assert rec["status"] == "completed" and [e["epoch"] for e in rec["evals"]] == [1.0, 2.0]
    assert all(list(e["metrics"]) == ["accuracy"] for e in rec["evals"])
    assert str(glue_dir) in rec["data"]
    assert "Traceback" not in proc.stderr


def test_real_command_bad_input(real_glue_dir, tmp_path):
    d = _broken_glue(real_glue_dir, tmp_path, 9, "8\tA sentence.\t1")
    proc = subprocess.run([_glue_cli(), "train", "--task", "WNLI", *FAST, "--glue-dir", str(d)],
                          cwd=tmp_path, env=_env_for_subprocess(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    _assert_one_error_line(proc.stderr, f"{d / 'WNLI' / 'train.tsv'}:9:")
    assert proc.stdout == ""
    assert not (tmp_path / "results").exists()


def test_compile_is_a_flag_made_from_the_trial_setting():
    from orchestrator.cli.args import config_values
    from orchestrator.cli.main import build_parser

    base = ["train", "--task", "RTE", "--model", "BERT-Tiny", "--batch-size", "16", "--lr", "1e-3"]
    args = build_parser().parse_args([*base, "--compile"])
    assert config_values(args, args.settings)["compile"] is True
    args = build_parser().parse_args(base)
    assert "compile" not in config_values(args, args.settings)   # the default: off
    assert TrialConfig(model="m", task="RTE", batch_size=16, learning_rate=1e-3).compile is False
