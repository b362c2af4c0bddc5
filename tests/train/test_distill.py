"""Pre-trained Distillation: the loss against hand-computed values, the soft labels computed once
and shared by every trial and student (counted), the cache invalidated when the teacher or the
transfer data change, bad ``distill`` blocks and unloadable teachers (one line, exit 2), and the
kinds of training side by side in the leaderboard."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from synthetic import make_record, write_run

from orchestrator.cli.main import main
from orchestrator.config import Runtime, TrialConfig
from orchestrator.data.sources import source_from
from orchestrator.errors import UserError
from orchestrator.registry.models import load_model, load_tokenizer, resolve
from orchestrator.registry.tasks import get_task
from orchestrator.results.kinds import kinds_table, kinds_values
from orchestrator.spec import sweep as S
from orchestrator.train import teacher as T
from orchestrator.train.distill import distill_loss, gold_rows
from orchestrator.train.runner import run_trial

# ----------------------------------------------------------------------------- the loss, by hand


def test_classification_loss_is_kl_at_temperature_times_t_squared_plus_alpha_gold():
    # Row 1: student logits (1, 0), teacher (0, 1), gold class 0. Row 2: both (0, 0), no gold label.
    # T = 2: teacher p = softmax(0, .5) = (.377541, .622459); student log p = log_softmax(.5, 0)
    # = (-.474077, -.974077); KL = .377541 * (-.5) + .622459 * (.5) = .122459; row 2: 0.
    # Mean over rows .0612296, times T^2 = .244918. Gold: row 1 only, -log(e / (e + 1)) = .313262.
    logits = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    targets = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])   # teacher, teacher, gold, has gold
    assert distill_loss(logits, targets, False, temperature=2.0).item() == pytest.approx(0.244918, abs=1e-5)
    assert distill_loss(logits, targets, False, 2.0, alpha=0.5).item() == pytest.approx(0.244918 + 0.156631, abs=1e-5)
    # T = 1: KL(softmax(0, 1) || softmax(1, 0)) = .731059 * 2 - 1 ... = (p1 - p0) * (1 - 0) * 1 = .462117; / 2 rows
    assert distill_loss(logits, targets, False, 1.0).item() == pytest.approx(0.231059, abs=1e-5)


def test_regression_loss_is_mse_to_the_teacher_plus_alpha_gold():
    # Student (2, 1), teacher (3, 1.5): ((2-3)^2 + (1-1.5)^2) / 2 = .625. Gold 2.5 on row 1 only: (2-2.5)^2 = .25.
    logits = torch.tensor([[2.0], [1.0]])
    targets = torch.tensor([[3.0, 2.5, 1.0], [1.5, 0.0, 0.0]])
    assert distill_loss(logits, targets, True).item() == pytest.approx(0.625)
    assert distill_loss(logits, targets, True, temperature=4.0).item() == pytest.approx(0.625)   # no temperature
    assert distill_loss(logits, targets, True, alpha=1.0).item() == pytest.approx(0.875)


def test_trial_config_separates_kinds():
    base = dict(model="m", task="SST-2", batch_size=32, learning_rate=1e-4)
    with pytest.raises(UserError, match="needs a teacher"):
        TrialConfig(**base, training="distill")
    with pytest.raises(UserError, match="fine-tune trial takes none"):
        TrialConfig(**base, temperature=2.0)
    with pytest.raises(UserError, match="training must be"):
        TrialConfig(**base, training="teach")
    cfg = TrialConfig(**base, training="distill", teacher="/t", transfer=["train"], temperature=2)
    assert TrialConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


# ----------------------------------------------------------------------------- soft labels once

@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A small 'fine-tuned' teacher: BERT-Tiny's shape, seeded random weights, saved with its tokenizer."""
    d = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    load_model(resolve("BERT-Tiny"), 2, "random").save_pretrained(d)
    load_tokenizer(resolve("BERT-Tiny"), "random").save_pretrained(d)
    return d


def spec_text(teacher, glue_dir, models="[{name: BERT-Tiny, init: random}, {name: L-2_H-256, init: random}]",
              extra="", cap=48) -> str:
    return (f"name: d\nmodels: {models}\ntasks: [SST-2]\nsearch: {{batch_size: [16], learning_rate: [1e-4, 3e-4]}}\n"
            f"epochs: 1\nmax_train_examples: {cap}\ndata: {{glue_dir: {glue_dir}}}\n"
            f"distill:\n  teacher: {teacher}\n{extra}")


def test_soft_labels_computed_once_for_every_trial_and_student(teacher_dir, glue_dir, tmp_path, monkeypatch,
                                                                one_thread):
    sweep = S.parse(spec_text(teacher_dir, glue_dir), "s.yaml", str(tmp_path))
    calls = {"n": 0}
    real = T.predict_logits

    def counted(model, enc, device, batch_size=256):
        calls["n"] += 1
        return real(model, enc, device, batch_size)

    monkeypatch.setattr(T, "predict_logits", counted)
    stats: dict = {}
    soft = T.prepare(sweep, stats)
    assert stats == {"teacher_runs": 1} and calls["n"] == 2     # the transfer set, then its dev split (scores)
    assert T.prepare(sweep, stats)["SST-2"][0] == soft["SST-2"][0]
    assert stats == {"teacher_runs": 1, "hits": 1} and calls["n"] == 2
    monkeypatch.setattr(T, "load", lambda *a: pytest.fail("a trial loaded the teacher"))
    distilled = [t for t in sweep.trials() if t.config.training == "distill"]
    assert len(distilled) == 4 and len({t.config.model for t in distilled}) == 2 and len({t.group for t in distilled}) == 2
    for t in distilled:
        res = run_trial(t.config, source_from(sweep.glue_dir, None),
                        runtime=Runtime(soft_labels=str(soft["SST-2"][0])))
        assert res.status == "completed" and res.train_examples == 48 and len(res.evals) == 1
    assert calls["n"] == 2 and stats["teacher_runs"] == 1


def test_cache_invalidated_when_teacher_or_transfer_data_change(teacher_dir, glue_dir, tmp_path, one_thread):
    def prepare(text):
        stats: dict = {}
        got = T.prepare(S.parse(text, "s.yaml", str(tmp_path)), stats)
        return got["SST-2"][0], stats.get("teacher_runs", 0)

    base, _ = prepare(spec_text(teacher_dir, glue_dir, cap=40))
    assert prepare(spec_text(teacher_dir, glue_dir, cap=40)) == (base, 0)
    extra = tmp_path / "unlabelled.tsv"
    extra.write_text("sentence\tsource\na fine film\tweb\na dull film\tweb\n")
    with_file = spec_text(teacher_dir, glue_dir, cap=40, extra=f"  transfer: {{files: {{SST-2: [{extra}]}}}}\n")
    p1, runs = prepare(with_file)
    assert p1 != base and runs == 1
    assert T.load_soft(p1).logits.shape == (42, 2)
    extra.write_text("sentence\tsource\na fine film\tweb\na tedious film\tweb\n")   # the file's content changed
    p2, runs = prepare(with_file)
    assert p2 not in (base, p1) and runs == 1
    assert prepare(spec_text(teacher_dir, glue_dir, cap=41))[1] == 1          # other training rows
    other = tmp_path / "teacher2"
    torch.manual_seed(1)
    load_model(resolve("BERT-Tiny"), 2, "random").save_pretrained(other)      # another teacher
    load_tokenizer(resolve("BERT-Tiny"), "random").save_pretrained(other)
    p3, runs = prepare(spec_text(other, glue_dir, cap=40))
    assert p3 != base and runs == 1
    assert not np.allclose(T.load_soft(p3).logits, T.load_soft(base).logits)


def test_distill_then_finetune_runs_both_stages(teacher_dir, glue_dir, tmp_path, one_thread):
    sweep = S.parse(spec_text(teacher_dir, glue_dir, models="[{name: BERT-Tiny, init: random}]",
                              extra="  then_finetune: true\n  alpha: 0.5\n  temperature: 2\n"), "s.yaml", str(tmp_path))
    soft = T.prepare(sweep)
    t = next(t for t in sweep.trials() if t.config.distilled)
    assert t.config.training == "distill+fine-tune" and t.id.endswith("__pdft_T2_a0.5")
    steps = []
    res = run_trial(t.config, source_from(sweep.glue_dir, None), on_progress=lambda s, n, l: steps.append(s),
                    runtime=Runtime(soft_labels=str(soft["SST-2"][0])))
    assert res.status == "completed" and len(res.evals) == 1 and steps == [1, 2, 3, 1, 2, 3]


def test_gold_rows_keep_only_labelled_rows():
    from orchestrator.data.features import Encoded
    enc = Encoded(np.arange(6, dtype=np.int32), np.zeros(6, np.int8), np.array([0, 2, 4, 6]),
                  np.array([[0.1, 0.9, 1, 1], [0.8, 0.2, 0, 1], [0.5, 0.5, 0, 0]], np.float32), np.array(["a", "b", "c"]))
    g = gold_rows(enc, regression=False)
    assert list(g.labels) == [1, 0] and g.labels.dtype == np.int64 and list(g.index) == ["a", "b"]


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("block, words", [
    ("distill:\n  teacher: /nonexistent/teacher\n", ["s.yaml:10", "not a directory"]),
    ("distill:\n  teacher: [a]\n", ["s.yaml:10", "model directory or {run: RUN, model: M}"]),
    ("distill:\n  techer: x\n", ["s.yaml:10", "unknown key 'techer'", "did you mean 'teacher'"]),
    ("distill:\n  teacher: TEACHER\n  temperature: 0\n", ["s.yaml:11", "positive"]),
    ("distill:\n  teacher: TEACHER\n  alpha: -1\n", ["s.yaml:11", "negative"]),
    ("distill:\n  teacher: TEACHER\n  temperature: 1e308\n", ["s.yaml:11", "at most 100"]),
    ("distill:\n  teacher: TEACHER\n  alpha: 2\n", ["s.yaml:11", "between 0 and 1"]),
    ("distill:\n  teacher: TEACHER\n  then_finetune: sometimes\n", ["s.yaml:11", "true or false"]),
    ("distill:\n  teacher: TEACHER\n  transfer: {train: false}\n", ["s.yaml:11", "no transfer data"]),
    ("distill:\n  teacher: TEACHER\n  transfer: {files: {CoLA: [a.tsv]}}\n", ["s.yaml:11", "not a task of this sweep"]),
    ("distill:\n  teacher: TEACHER\n  transfer: {files: {SST-2: [/nonexistent.tsv]}}\n", ["s.yaml:11", "does not exist"]),
    ("distill:\n  teacher: TEACHER\n  transfer: everything\n", ["s.yaml:11", "transfer is 'train'"]),
])
def test_bad_distill_blocks_one_line_exit_2(block, words, teacher_dir, glue_dir, tmp_path, capsys):
    head = (f"name: d\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nsearch: {{batch_size: [16], learning_rate: [1e-4]}}\n"
            f"epochs: 1\nmax_train_examples: 8\ndata: {{glue_dir: {glue_dir}}}\nresults: {tmp_path}\n")
    (tmp_path / "s.yaml").write_text(head + block.replace("TEACHER", str(teacher_dir)))
    assert main(["plan", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("glue-sweep: error: ")
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("value", ["temperature: 1e308", "alpha: 1.01"])
def test_distill_numbers_out_of_bounds_refused_by_run_before_any_work(value, teacher_dir, glue_dir, tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setattr(T, "prepare", lambda *a, **k: pytest.fail("the teacher ran"))
    (tmp_path / "s.yaml").write_text(spec_text(teacher_dir, glue_dir, models="[BERT-Tiny]", extra=f"  {value}\n")
                                     + f"results: {tmp_path / 'res'}\n")
    assert main(["run", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"glue-sweep: error: {tmp_path / 's.yaml'}:10: distill/"), err
    assert not (tmp_path / "res").exists()


def test_unloadable_teacher_one_line_exit_2(glue_dir, tmp_path, capsys):
    bad = tmp_path / "broken-teacher"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "bert", "num_labels": 2}')   # no weights, no tokenizer
    (tmp_path / "s.yaml").write_text(spec_text(bad, glue_dir, models="[BERT-Tiny]") + f"results: {tmp_path / 'res'}\n")
    assert main(["run", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("glue-sweep: error: teacher ") and "cannot be loaded" in err[-1]
    assert not list((tmp_path / "res").rglob("*.json"))   # no record, no teachers.json
    (tmp_path / "r.yaml").write_text(spec_text("{run: /nonexistent/run, model: M}", glue_dir) + f"results: {tmp_path}\n")
    assert main(["run", str(tmp_path / "r.yaml")]) == 2
    assert "teacher run /nonexistent/run has no trials/" in capsys.readouterr().err
    with pytest.raises(UserError, match="has 2 outputs; STS-B needs 1"):
        T.load(str(_saved_tiny(tmp_path / "two")), get_task("STS-B"), torch.device("cpu"))


@pytest.mark.bad_input
def test_a_nan_teacher_is_refused_by_run_with_nothing_cached_or_recorded(glue_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "cache"))
    nan = _saved_tiny(tmp_path / "nan-teacher")
    model = load_model(resolve("BERT-Tiny"), 2, "random")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    model.save_pretrained(nan)
    (tmp_path / "s.yaml").write_text(spec_text(nan, glue_dir, models="[BERT-Tiny]") + f"results: {tmp_path / 'res'}\n")
    assert main(["run", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"glue-sweep: error: teacher {nan} cannot teach: ") and "NaN" in err[-1], err
    assert not list((tmp_path / "res").rglob("*.json"))   # no record, no teachers.json claiming a score
    assert not list((tmp_path / "cache").rglob("soft_labels/*"))


def _saved_tiny(d):
    load_model(resolve("BERT-Tiny"), 2, "random").save_pretrained(d)
    load_tokenizer(resolve("BERT-Tiny"), "random").save_pretrained(d)
    return d


# ----------------------------------------------------------------------------- leaderboard

def _kind_record(model, training, seed, score):
    rec = make_record(model, "SST-2", 32, 1e-4, [score - 1, score], seed=seed, init="random")
    label = f"{model} (random init)" + {"fine-tune": "", "distill": " [distilled]"}[training]
    if training != "fine-tune":
        rec["trial"].update(training=training, teacher="/t/all-MiniLM-L6-v2", transfer=["train"])
        rec["trial_id"] += "__pd"
    rec.update(model=label, group=f"{label}|SST-2")
    return rec


def test_kinds_side_by_side_with_teacher_row_in_every_format(tmp_path):
    from orchestrator.results.export import export
    recs = [_kind_record("BERT-Mini", k, s, v + s) for k, v in (("fine-tune", 70.0), ("distill", 74.0)) for s in range(3)]
    run = write_run(tmp_path / "run", recs)
    (run / "teachers.json").write_text(json.dumps([{"task": "SST-2", "teacher": "/t/all-MiniLM-L6-v2", "score": 85.1}]))
    lb, written = export(run, ("csv", "md", "latex", "json", "html", "png"))
    v = kinds_values(lb)
    assert list(v["kind"]) == ["basic training", "distillation", "teacher (fine-tuned, reference)"]
    assert list(v["student"]) == ["BERT-Mini (random init)"] * 2 + ["all-MiniLM-L6-v2"]
    assert v["SST-2"].tolist() == pytest.approx([71.0, 75.0, 85.1])
    assert v["SST-2_delta"][1] == pytest.approx(4.0) and v["SST-2_std"][1] == pytest.approx(1.0)
    assert kinds_table(lb)["SST-2"].tolist() == ["71.0 ± 1.0", "75.0 ± 1.0 (+4.0)", "85.1"]
    names = {p.name for p in written}
    assert {"kinds.csv", "kinds.png"} <= names
    out = run / "export"
    for f, cell in (("leaderboard.md", "75.0 ± 1.0 (+4.0)"), ("leaderboard.tex", "75.0 $\\pm$ 1.0 (+4.0)"),
                    ("report.html", "75.0 ± 1.0 (+4.0)")):
        text = (out / f).read_text()
        assert cell in text and "85.1" in text and "distillation" in text, f
    doc = json.loads((out / "leaderboard.json").read_text())
    assert [r["kind"] for r in doc["kinds"]][:2] == ["basic training", "distillation"]


def test_runs_without_distillation_have_no_kinds_table(tmp_path):
    from orchestrator.results.export import export
    run = write_run(tmp_path / "run", [make_record("BERT-Tiny", "SST-2", 32, 1e-4, [70.0])])
    lb, written = export(run, ("csv", "md"))
    assert "kinds.csv" not in {p.name for p in written}
    assert "Kinds of training" not in (run / "export" / "leaderboard.md").read_text()


def test_run_teacher_is_the_best_configuration_retrained_once(glue_dir, tmp_path, monkeypatch, one_thread):
    from orchestrator.config import make_trial
    from orchestrator.store import records as store
    cfg = TrialConfig(model=resolve("BERT-Tiny").ref, task="SST-2", batch_size=16, learning_rate=1e-4, epochs=1,
                      init="random", max_train_examples=32)
    trial = make_trial(cfg, "BERT-Tiny")
    rec = store.new_record(trial, "teacher-run", trial.label)
    rec.update(status="completed", evals=[{"epoch": 1.0, "step": 2, "metrics": {"accuracy": 55.0}, "score": 55.0,
                                          "train_loss": 0.7, "elapsed_s": 1.0}])
    store.write_record(tmp_path / "teacher-run", rec)
    trained = []
    real = T.run_trial
    monkeypatch.setattr(T, "run_trial", lambda c, *a, **k: trained.append(c) or real(c, *a, **k))
    text = spec_text(f"{{run: {tmp_path / 'teacher-run'}, model: {trial.label}}}", glue_dir,
                     models="[{name: BERT-Tiny, init: random}]", cap=16)
    sweep = S.parse(text, "s.yaml", str(tmp_path))
    stats: dict = {}
    path, meta = T.prepare(sweep, stats)["SST-2"]
    assert [c.to_dict() for c in trained] == [cfg.to_dict()] and stats["teacher_runs"] == 1
    assert meta["teacher"] == f"run:{tmp_path / 'teacher-run'}:{trial.label}" and meta["rows"] == 16
    assert (tmp_path / "teacher-run").exists() and T.prepare(sweep, stats) and len(trained) == 1
    assert next(t for t in sweep.trials() if t.config.distilled).config.teacher == meta["teacher"]
