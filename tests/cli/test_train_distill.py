"""``glue-sweep train --teacher`` trains one student by distillation (soft labels from the
sweep's cache, computed once), and ``glue-sweep submit`` re-trains distilled students from their
teacher's soft labels; bad distillation flags are one line and exit 2."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile

import pytest
import torch

from orchestrator.cli.main import main
from orchestrator.registry.models import load_model, load_tokenizer, resolve
from orchestrator.spec import sweep as S
from orchestrator.store import records as store
from orchestrator.train import teacher as T

FAST = ["--model", "BERT-Tiny", "--init", "random", "--task", "SST-2", "--batch-size", "16", "--lr", "1e-3",
        "--epochs", "1", "--max-train-examples", "40", "--max-length", "64", "--threads", "1", "--device", "cpu",
        "--quiet"]


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:   # argparse's own errors
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A small 'fine-tuned' teacher: BERT-Tiny's shape, seeded random weights, saved with its tokenizer
    (a seed of this file's own: soft labels are shared by every teacher of the same content)."""
    d = tmp_path_factory.mktemp("cli-teacher")
    torch.manual_seed(7)
    load_model(resolve("BERT-Tiny"), 2, "random").save_pretrained(d)
    load_tokenizer(resolve("BERT-Tiny"), "random").save_pretrained(d)
    return d


@pytest.fixture
def predictions(monkeypatch):
    """How many times a teacher predicted (soft labels and its dev scores)."""
    calls = {"n": 0}
    real = T.predict_logits

    def counted(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(T, "predict_logits", counted)
    return calls


def test_train_distils_one_student_from_cached_soft_labels(teacher_dir, glue_dir, tmp_path, predictions, one_thread):
    rc, out, err = run_cli("train", *FAST, "--glue-dir", glue_dir, "--teacher", teacher_dir, "--out", tmp_path / "a")
    assert rc == 0, err
    assert out.splitlines()[0].split() == ["epoch", "step", "loss", "accuracy", "score"]   # the per-epoch table
    assert "status completed" in out and "predicting 40 SST-2 transfer rows" in err
    rec = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert rec["training"] == "distill" and rec["trial_id"].endswith("__pd")
    assert rec["trial"]["teacher"] == str(teacher_dir.resolve()) and rec["trial"]["transfer"] == ["train"]
    assert rec["teacher"]["fingerprint"].startswith("files:") and rec["teacher"]["rows"] == 40
    assert len(rec["evals"]) == 1 and rec["train_examples"] == 40 and rec["status"] == "completed"
    assert predictions["n"] == 2                                  # the transfer set, then the teacher's dev split

    rc, out, err = run_cli("train", *FAST, "--seed", "1", "--glue-dir", glue_dir, "--teacher", teacher_dir,
                           "--then-finetune", "--temperature", "2", "--alpha", "0.5", "--out", tmp_path / "b")
    assert rc == 0, err
    assert predictions["n"] == 2 and "predicting" not in err      # the same soft labels, from the cache
    rec = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert rec["training"] == "distill+fine-tune" and rec["trial_id"].endswith("__pdft_T2_a0.5")
    assert rec["trial"]["temperature"] == 2.0 and rec["trial"]["alpha"] == 0.5 and len(rec["evals"]) == 1


@pytest.mark.parametrize("flags, words", [
    (["--temperature", "2"], "--temperature: distillation settings need --teacher DIR"),
    (["--then-finetune", "--alpha", "1"], "--alpha, --then-finetune: distillation settings need --teacher DIR"),
    (["--teacher", "/nonexistent/teacher"], "teacher /nonexistent/teacher is not a directory"),
    (["--teacher", "BROKEN"], "cannot be loaded"),
    (["--teacher", "TEACHER", "--transfer-file", "/nonexistent.tsv"], "--transfer-file /nonexistent.tsv does not exist"),
    (["--teacher", "TEACHER", "--alpha", "-1"], "--alpha: -1 is not a finite number of at least 0"),
    (["--teacher", "TEACHER", "--alpha", "1.5"], "--alpha: alpha must be between 0 and 1"),
    (["--teacher", "TEACHER", "--temperature", "1e308"], "--temperature: temperature must be at most 100"),
])
def test_bad_distillation_flags_are_one_line_exit_2(flags, words, teacher_dir, glue_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert", "num_labels": 2}')   # no weights, no tokenizer
    flags = [str(broken) if f == "BROKEN" else str(teacher_dir) if f == "TEACHER" else f for f in flags]
    rc, out, err = run_cli("train", *FAST, "--glue-dir", glue_dir, "--out", tmp_path / "o", *flags)
    assert rc == 2 and err.count("\n") == 1 and "glue-sweep: error: " in err and words in err, err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_train_refuses_a_teacher_that_cannot_teach_before_the_student_trains(glue_dir, tmp_path, monkeypatch):
    from orchestrator.train import runner

    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runner, "prepare", lambda *a, **k: pytest.fail("the student started"))
    d = tmp_path / "nan-teacher"
    model = load_model(resolve("BERT-Tiny"), 2, "random")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    model.save_pretrained(d)
    load_tokenizer(resolve("BERT-Tiny"), "random").save_pretrained(d)
    rc, out, err = run_cli("train", *FAST, "--glue-dir", glue_dir, "--teacher", d, "--out", tmp_path / "o")
    assert rc == 2 and err.strip().splitlines()[-1].startswith(f"glue-sweep: error: teacher {d} cannot teach: "), err
    assert "NaN or infinite" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "metrics.json").exists() and not list((tmp_path / "cache").rglob("soft_labels/*"))


def test_submit_retrains_distilled_students_from_their_teachers_soft_labels(teacher_dir, glue_dir, tmp_path,
                                                                          predictions, one_thread):
    text = (f"name: d\nmodels: [{{name: BERT-Tiny, init: random}}]\ntasks: [SST-2]\n"
            f"search: {{batch_size: [16], learning_rate: [1e-3]}}\nepochs: 1\nmax_train_examples: 32\n"
            f"max_length: 64\ndata: {{glue_dir: {glue_dir}}}\ndistill:\n  teacher: {teacher_dir}\n  baseline: false\n")
    sweep = S.parse(text, "s.yaml", str(tmp_path))
    T.prepare(sweep)                                              # as the sweep did before its trials
    assert predictions["n"] == 2
    (t,) = sweep.trials()
    rec = store.new_record(t, sweep.name, t.label)
    rec.update(status="completed", evals=[{"epoch": 1.0, "step": 2, "metrics": {"accuracy": 60.0}, "score": 60.0}])
    store.write_record(tmp_path / "run", rec)
    rc, out, err = run_cli("submit", tmp_path / "run", "--model", t.label, "--glue-dir", glue_dir,
                           "--out", tmp_path / "sub.zip", "--device", "cpu", "--threads", "1")
    assert rc == 1, err                                           # valid, incomplete: SST-2 only
    assert f"SST-2: re-training {t.label}" in err and "dev score" in err
    assert predictions["n"] == 2                                  # the cached soft labels: the teacher never ran
    with zipfile.ZipFile(tmp_path / "sub_INCOMPLETE.zip") as z:
        rows = z.read("SST-2.tsv").decode().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 1822
