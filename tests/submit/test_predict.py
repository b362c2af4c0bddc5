"""``glue-sweep submit``: a GLUE test-server zip re-trained from a synthetic result store
(random-init BERT-Tiny, 100 training examples), the real test files' row counts, the
validator's messages for broken files, and incomplete submissions."""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from pathlib import Path

import pytest
from synthetic import make_record

from orchestrator import submit as S
from orchestrator.cli.main import main
from orchestrator.config import Runtime
from orchestrator.data.sources import GlueDir
from orchestrator.errors import UserError
from orchestrator.store import records as store
from orchestrator.train import runner as R

MODEL_REF = "google/bert_uncased_L-2_H-128_A-2"
LABEL = "BERT-Tiny (random init)"
TRAIN_TASKS = ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI")
REAL_ROWS = {"CoLA.tsv": 1063, "SST-2.tsv": 1821, "MRPC.tsv": 1725, "STS-B.tsv": 1379, "QNLI.tsv": 5463,
             "RTE.tsv": 3000, "WNLI.tsv": 146, "AX.tsv": 1104}
ALL_FILES = ["CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "QQP.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "QNLI.tsv",
             "RTE.tsv", "WNLI.tsv", "AX.tsv"]


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


# ----------------------------------------------------------------------------- data and store

def _head(src: Path, dst: Path, n: int) -> None:
    lines = src.read_bytes().split(b"\n")
    dst.write_bytes(b"\n".join(lines[:n]) + b"\n")


@pytest.fixture(scope="module")
def small_glue(glue_dir, tmp_path_factory) -> Path:
    """The full GLUE directory with train and dev files cut to their first rows (fast
    re-training) and every test file whole (the real row counts)."""
    dst = tmp_path_factory.mktemp("small_glue")
    for task_dir in sorted(p for p in glue_dir.iterdir() if p.is_dir()):
        (dst / task_dir.name).mkdir()
        for f in task_dir.iterdir():
            if f.name.startswith(("train", "dev")) and f.suffix == ".tsv" and f.name != "dev_ids.tsv":
                _head(f, dst / task_dir.name / f.name, 161 if f.name.startswith("train") else 61)
            elif f.name.startswith("test") or task_dir.name == "diagnostic":
                os.symlink(f.resolve(), dst / task_dir.name / f.name)
    return dst


def _record(task, bs, lr, scores, seed=0, **kw):
    rec = make_record("BERT-Tiny", task, bs, lr, scores, seed=seed, init="random", n_params=4_386_178)
    rec["trial"].update(model=MODEL_REF, epochs=len(scores), max_train_examples=100, max_length=64, eval_every=1.0, **kw)
    return rec


def _real_trial(src, task, bs, lr, seed) -> dict:
    """A record from a real 2-epoch trial, so the re-trained dev score can be compared."""
    cfg = R.TrialConfig(model=MODEL_REF, task=task, batch_size=bs, learning_rate=lr, epochs=2, seed=seed,
                        init="random", max_train_examples=100, max_length=64)
    res = R.run_trial(cfg, src, runtime=Runtime(device="cpu", threads=1))
    rec = _record(task, bs, lr, [e.score for e in res.evals], seed=seed)
    rec["evals"] = [e.as_dict() for e in res.evals]
    return rec


@pytest.fixture(scope="module")
def run_dir(small_glue, tmp_path_factory) -> Path:
    """BERT-Tiny (random init) on all nine tasks: two configurations each, the better one
    (bs 32, lr 1e-3) best at epoch 1; WNLI from real trials with two seeds, STS-B's best at
    epoch 2 with seed 1 the better seed."""
    run = tmp_path_factory.mktemp("sub") / "run"
    recs = []
    for t in TRAIN_TASKS:
        if t == "WNLI":
            continue
        if t == "STS-B":
            recs += [_record(t, 16, 1e-3, [50.0, 60.0], seed=0), _record(t, 16, 1e-3, [52.0, 64.0], seed=1),
                     _record(t, 32, 1e-4, [40.0, 41.0])]
            continue
        extra = {"grad_accum": 2} if t == "MRPC" else {}   # a trial that ran out of memory once
        recs += [_record(t, 32, 1e-3, [70.0, 65.0], **extra), _record(t, 16, 1e-4, [60.0, 62.0])]
    src = GlueDir(small_glue)
    recs += [_real_trial(src, "WNLI", 32, 1e-3, seed=s) for s in (0, 1)]
    recs.append(_record("WNLI", 16, 1e-4, [1.0, 2.0]))
    for r in recs:
        store.write_record(run, r)
    return run


@pytest.fixture(scope="module")
def submitted(run_dir, small_glue, tmp_path_factory):
    """One real `glue-sweep submit` (all nine tasks re-trained), and what the trainer saw."""
    out = tmp_path_factory.mktemp("zip") / "sub.zip"
    seen = []
    real_run = R.run

    def spy(p, *args, **kw):
        res = real_run(p, *args, **kw)
        seen.append((p.task.name, p.config, res))
        return res

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(R, "run", spy)
        rc, stdout, stderr = run_cli("submit", run_dir, "--model", "BERT-Tiny", "--out", out,
                                     "--glue-dir", small_glue, "--device", "cpu", "--threads", "1")
    return {"rc": rc, "out": stdout, "err": stderr, "zip": out, "seen": {t: (c, r) for t, c, r in seen}}


def _read_zip(path: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n).decode().splitlines() for n in zf.namelist()}


def _write_zip(path: Path, files: dict[str, list[str]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for n, lines in files.items():
            zf.writestr(n, "\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- the file table

def test_file_table_from_task_definitions():
    files = S.submission_files()
    assert [f.name for f in files] == ALL_FILES
    by = {f.name: f for f in files}
    for n in ("CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "QQP.tsv", "WNLI.tsv"):
        assert by[n].kind == "integer" and by[n].values == ("0", "1")
    for n in ("MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"):
        assert by[n].values == ("entailment", "neutral", "contradiction") and by[n].model_task.name == "MNLI"
    assert by["AX.tsv"].task.name == "AX" and by["MNLI-mm.tsv"].split == "test_mismatched"
    for n in ("QNLI.tsv", "RTE.tsv"):
        assert by[n].values == ("entailment", "not_entailment")
    stsb = by["STS-B.tsv"]
    assert stsb.kind == "score" and [stsb.format(v) for v in (-0.4, 2.34567, 7.0)] == ["0.000", "2.346", "5.000"]
    assert by["MNLI-m.tsv"].format(2) == "contradiction" and by["CoLA.tsv"].format(1) == "1"


# ----------------------------------------------------------------------------- choosing

def test_plan_follows_the_leaderboard(run_dir, small_glue):
    pl = S.plan(run_dir, "bert-tiny", GlueDir(small_glue))
    assert pl.model == LABEL and not pl.missing
    ch = {c.task.name: c for c in pl.choices}
    assert list(ch) == list(TRAIN_TASKS)
    cola = ch["CoLA"].config()
    assert (cola.model, cola.init, cola.batch_size, cola.learning_rate, cola.seed, cola.max_train_examples,
            cola.max_length, cola.epochs) == (MODEL_REF, "random", 32, 1e-3, 0, 100, 64, 2.0)
    assert ch["CoLA"].stop_epoch == 1.0 and ch["CoLA"].dev_score == 70.0
    stsb = ch["STS-B"]
    assert (stsb.record["batch_size"], stsb.record["seed"], stsb.stop_epoch, stsb.dev_score) == (16, 1, 2.0, 64.0)
    assert [f.name for f in ch["MNLI"].files] == ["MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"]
    with pytest.raises(UserError, match="no results in this run; its models: BERT-Tiny"):
        S.plan(run_dir, "BERT-Mini", GlueDir(small_glue))


# ----------------------------------------------------------------------------- the full submission

def test_submit_writes_a_valid_complete_zip(submitted, small_glue):
    assert submitted["rc"] == 0, submitted["err"]
    z = submitted["zip"]
    assert z.is_file() and not list(z.parent.glob(".*tmp"))
    assert "wrote" in submitted["out"] and "validated" in submitted["out"]
    files = _read_zip(z)
    assert list(files) == ALL_FILES
    rep = S.check_zip(z, GlueDir(small_glue))
    assert rep.ok and not rep.missing, rep.problems
    rc, out, err = run_cli("submit", "--check", z, "--glue-dir", small_glue)
    assert rc == 0 and "valid" in out and "INCOMPLETE" not in out, err


def test_rows_follow_the_real_test_files(submitted, small_glue):
    files = _read_zip(submitted["zip"])
    src = GlueDir(small_glue)
    counts = {n: len(lines) - 1 for n, lines in files.items()}
    assert {n: counts[n] for n in REAL_ROWS} == REAL_ROWS
    assert counts["MNLI-m.tsv"] == counts["MNLI-mm.tsv"] == counts["QQP.tsv"] == 100   # generated files
    for f in S.submission_files():
        lines = files[f.name]
        assert lines[0] == "index\tprediction"
        idx, preds = zip(*(l.split("\t") for l in lines[1:]))
        assert list(idx) == src.load(f.task, f.split).index, f.name
        if f.kind == "score":
            assert all(0.0 <= float(p) <= 5.0 and len(p.split(".")[1]) == 3 for p in preds)
        else:
            assert set(preds) <= set(f.values), f.name
    assert set(p.split("\t")[1] for p in files["AX.tsv"][1:]) <= {"entailment", "neutral", "contradiction"}


def test_retraining_uses_the_chosen_configuration(submitted):
    seen = submitted["seen"]
    assert set(seen) == set(TRAIN_TASKS)
    cfg, res = seen["CoLA"]
    # The trial's 2-epoch schedule, stopped after epoch 1: the weights the leaderboard scored.
    assert (cfg.batch_size, cfg.learning_rate, cfg.seed, cfg.epochs, cfg.max_train_examples, cfg.max_length) == \
           (32, 1e-3, 0, 2.0, 100, 64)
    assert res.status == "stopped" and [e.epoch for e in res.evals] == [1.0] and res.steps == 4
    assert seen["MRPC"][0].grad_accum == 2 and seen["CoLA"][0].grad_accum == 1
    cfg, res = seen["STS-B"]
    assert (cfg.batch_size, cfg.seed) == (16, 1) and res.status == "completed" and res.evals[-1].epoch == 2.0
    assert "STS-B: re-training BERT-Tiny (random init) with batch size 16" in submitted["err"]


def test_retrained_dev_score_matches_the_record(submitted, run_dir):
    recs = [r for r in store.read_records(run_dir)[0] if r["trial"]["task"] == "WNLI" and r["trial"]["batch_size"] == 32]
    cfg, res = submitted["seen"]["WNLI"]
    rec = next(r for r in recs if r["trial"]["seed"] == cfg.seed)
    at = {e["epoch"]: e["score"] for e in rec["evals"]}
    assert res.evals[-1].score == pytest.approx(at[res.evals[-1].epoch], abs=1e-6)
    assert "WNLI" in submitted["err"] and "the sweep recorded" in submitted["err"]


# ----------------------------------------------------------------------------- the validator

def _broken(submitted, tmp_path, name, edit) -> Path:
    files = _read_zip(submitted["zip"])
    files[name] = edit(list(files[name]))
    return _write_zip(tmp_path / "broken.zip", files)


def _swap(lines, i, j):
    lines[i], lines[j] = lines[j], lines[i]
    return lines


def _set_pred(lines, k, value):
    lines[k] = lines[k].split("\t")[0] + "\t" + value
    return lines


@pytest.mark.parametrize("name, edit, message", [
    ("CoLA.tsv", lambda l: l[:6] + l[7:],
     "CoLA.tsv: 1062 prediction rows, but the test file {glue}/CoLA/test.tsv has 1063 (no row for index '5')"),
    ("MRPC.tsv", lambda l: _swap(l, 3, 4),
     "MRPC.tsv:4: index '3' out of order: the test file has index '2' in this position"),
    ("RTE.tsv", lambda l: _set_pred(l, 2, "1"),
     "RTE.tsv:3: prediction '1' is not one of entailment, not_entailment"),
    ("CoLA.tsv", lambda l: _set_pred(l, 5, "entailment"),
     "CoLA.tsv:6: prediction 'entailment' is not an integer among 0, 1"),
    ("MNLI-m.tsv", lambda l: _set_pred(l, 1, "not_entailment"),
     "MNLI-m.tsv:2: prediction 'not_entailment' is not one of entailment, neutral, contradiction"),
    ("STS-B.tsv", lambda l: _set_pred(l, 7, "5.200"), "STS-B.tsv:8: prediction 5.200 is outside [0, 5]"),
    ("STS-B.tsv", lambda l: _set_pred(l, 7, "-0.100"), "STS-B.tsv:8: prediction -0.100 is outside [0, 5]"),
    ("WNLI.tsv", lambda l: ["id\tlabel"] + l[1:], "WNLI.tsv:1: header must be 'index\\tprediction', found 'id\\tlabel'"),
    ("SST-2.tsv", lambda l: l[:3] + [l[3] + "\textra"] + l[4:],
     "SST-2.tsv:4: expected 2 tab-separated fields (index, prediction), found 3"),
])
def test_validator_names_file_and_line(submitted, small_glue, tmp_path, name, edit, message):
    z = _broken(submitted, tmp_path, name, edit)
    rep = S.check_zip(z, GlueDir(small_glue))
    want = message.format(glue=small_glue)
    assert len(rep.problems) == 1 and rep.problems[0].startswith(want), rep.problems
    rc, out, err = run_cli("submit", "--check", z, "--glue-dir", small_glue)
    assert rc == 2 and want in err and "not a valid GLUE submission" in err


def test_validator_missing_and_unexpected_files(submitted, small_glue, tmp_path):
    files = _read_zip(submitted["zip"])
    del files["QNLI.tsv"]
    files["notes.txt"] = ["hello"]
    rep = S.check_zip(_write_zip(tmp_path / "a.zip", files), GlueDir(small_glue))
    assert any(p.startswith("QNLI.tsv: missing (the server expects it") for p in rep.problems)
    assert any(p.startswith("notes.txt: unexpected file in the zip") for p in rep.problems)
    (tmp_path / "x.zip").write_text("not a zip")
    with pytest.raises(UserError, match="not a readable zip"):
        S.check_zip(tmp_path / "x.zip", GlueDir(small_glue))


def test_a_zip_failing_validation_is_never_written(small_glue, tmp_path):
    out = tmp_path / "bad_INCOMPLETE.zip"
    bad = "index\tprediction\n0\t2\n"
    with pytest.raises(UserError, match=r"fails validation, nothing written: CoLA.tsv:2: prediction '2' is not an integer among 0, 1"):
        S.write_zip({"CoLA.tsv": bad}, out, GlueDir(small_glue), incomplete=True)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- incomplete submissions

@pytest.fixture(scope="module")
def no_rte_test(small_glue, tmp_path_factory) -> Path:
    """The small GLUE directory without RTE/test.tsv."""
    dst = tmp_path_factory.mktemp("no_rte")
    for d in small_glue.iterdir():
        (dst / d.name).mkdir()
        for f in d.iterdir():
            if not (d.name == "RTE" and f.name == "test.tsv"):
                os.symlink(f.resolve(), dst / d.name / f.name)
    return dst


def test_missing_test_data_or_results_make_an_incomplete_zip(no_rte_test, tmp_path):
    run = tmp_path / "run"
    for r in (_record("RTE", 32, 1e-3, [70.0]), _record("WNLI", 32, 1e-3, [60.0])):
        store.write_record(run, r)
    rc, out, err = run_cli("submit", run, "--model", LABEL, "--out", tmp_path / "sub.zip",
                           "--glue-dir", no_rte_test, "--device", "cpu", "--threads", "1")
    assert rc == 1, err
    z = tmp_path / "sub_INCOMPLETE.zip"
    assert z.is_file() and not (tmp_path / "sub.zip").exists()
    assert list(_read_zip(z)) == ["WNLI.tsv"]
    assert "INCOMPLETE submission: 10 of 11 files missing" in err
    assert f"missing RTE.tsv: no test data: missing data file {no_rte_test}/RTE/test.tsv" in err
    assert f"missing CoLA.tsv: no result for {LABEL} on CoLA" in err
    assert "missing AX.tsv: no result for" in err and "AX is predicted with the MNLI model" in err
    assert "RTE: re-training" not in err        # nothing trained for a task whose test data is absent

    rc, out, err = run_cli("submit", "--check", z, "--glue-dir", no_rte_test)
    assert rc == 1 and "valid but INCOMPLETE" in out and "10 of 11 files missing" in err and "missing QNLI.tsv" in err
    # The same zip under a name that claims completeness fails.
    full = tmp_path / "sub.zip"
    full.write_bytes(z.read_bytes())
    rc, out, err = run_cli("submit", "--check", full, "--glue-dir", no_rte_test)
    assert rc == 2 and "QNLI.tsv: missing (the server expects it" in err


def test_cli_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["submit", "--help"])
    assert "_INCOMPLETE.zip" in capsys.readouterr().out
    rc, _, err = run_cli("submit", tmp_path)
    assert rc == 2 and "needs RUN and --model" in err
    rc, _, err = run_cli("submit", "--check", tmp_path / "none.zip", "--model", "x")
    assert rc == 2 and "takes no RUN or --model" in err
    rc, _, err = run_cli("submit", tmp_path / "nope", "--model", "BERT-Tiny")
    assert rc == 2 and "does not exist" in err
