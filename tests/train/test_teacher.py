"""The teacher is known by its contents, never by its path: a teacher directory replaced in
place, or a teacher run whose best configuration changed, is another teacher (new soft labels,
finished students refused); the same teacher at another path is the same one (cached soft
labels, the re-trained teacher and finished students reused)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import numpy as np
import pytest
import torch

from orchestrator.config import TrialConfig, make_trial
from orchestrator.data.sources import source_from
from orchestrator.errors import UserError
from orchestrator.registry.models import load_model, load_tokenizer, resolve
from orchestrator.registry.tasks import get_task
from orchestrator.spec import sweep as S
from orchestrator.store import records as store
from orchestrator.store.identity import RECIPE_VERSION, identity_fields
from orchestrator.sweep.driver import data_fingerprints, fingerprints, reusable
from orchestrator.train import teacher as T


def saved_teacher(d, seed: int):
    """A small 'fine-tuned' teacher: BERT-Tiny's shape, seeded random weights, with its tokenizer."""
    torch.manual_seed(seed)
    load_model(resolve("BERT-Tiny"), 2, "random").save_pretrained(d)
    load_tokenizer(resolve("BERT-Tiny"), "random").save_pretrained(d)
    return d


def sweep_of(teacher, glue_dir, tmp_path, cap: int = 24):
    text = (f"name: d\nmodels: [{{name: BERT-Tiny, init: random}}]\ntasks: [SST-2]\n"
            f"search: {{batch_size: [16], learning_rate: [1e-4]}}\nepochs: 1\nmax_train_examples: {cap}\n"
            f"data: {{glue_dir: {glue_dir}}}\ndistill:\n  teacher: {teacher}\n")
    return S.parse(text, "s.yaml", str(tmp_path))


def prepared(sweep):
    stats: dict = {}
    path, meta = T.prepare(sweep, stats)["SST-2"]
    return path, stats.get("teacher_runs", 0)


def finished_records(sweep, fp_of) -> list[dict]:
    """Every trial of ``sweep`` finished, with the identity the driver records."""
    out = []
    for t in sweep.trials():
        rec = store.new_record(t, sweep.name, t.label)
        rec.update(status="completed", evals=[{"epoch": 1.0, "step": 2, "metrics": {"accuracy": 50.0}, "score": 50.0}],
                   **identity_fields(t.config, fp_of(t.config)))
        out.append(rec)
    return out


def fp_of(sweep, glue_dir):
    source = source_from(str(glue_dir))
    return fingerprints(data_fingerprints(sweep, source), T.soft_keys(sweep, source))


def test_directory_teacher_moved_is_reused_replaced_in_place_is_not(glue_dir, tmp_path, one_thread):
    first = saved_teacher(tmp_path / "teacher", 3)
    sweep = sweep_of(first, glue_dir, tmp_path)
    path, runs = prepared(sweep)
    assert runs == 1
    records = finished_records(sweep, fp_of(sweep, glue_dir))
    assert {r["trial"]["training"] for r in records} == {"fine-tune", "distill"}

    moved = shutil.copytree(first, tmp_path / "elsewhere" / "teacher-copy")
    moved_sweep = sweep_of(moved, glue_dir, tmp_path)
    assert prepared(moved_sweep) == (path, 0)                     # same content: the cached soft labels
    kept = reusable(moved_sweep, "run", records, fp_of(moved_sweep, glue_dir), True)
    assert len(kept) == len(records) == 2                          # finished students kept at the new path

    saved_teacher(first, 4)                                        # the same directory, other weights
    new_path, runs = prepared(sweep)
    assert runs == 1 and new_path != path
    assert not np.allclose(T.load_soft(new_path).logits, T.load_soft(path).logits)
    with pytest.raises(UserError, match=r"__pd was run with another teacher or transfer data for SST-2"):
        reusable(sweep, "run", records, fp_of(sweep, glue_dir), True)
    baseline = [r for r in records if r["trial"]["training"] == "fine-tune"]
    assert reusable(sweep, "run", baseline, fp_of(sweep, glue_dir), True) == baseline   # plain students unaffected


def test_students_recorded_before_teacher_fingerprints_are_reused_only_at_the_same_path(glue_dir, tmp_path,
                                                                                        one_thread, caplog):
    teacher = saved_teacher(tmp_path / "teacher", 3)
    sweep = sweep_of(teacher, glue_dir, tmp_path)
    data_fp = data_fingerprints(sweep, source_from(str(glue_dir)))["SST-2"]
    t = next(t for t in sweep.trials() if t.config.distilled)
    old = store.new_record(t, sweep.name, t.label)
    before = {k: v for k, v in t.config.to_dict().items() if k != "compile"}   # a setting those records predate
    payload = json.dumps({"recipe": RECIPE_VERSION, "trial": before, "data": data_fp}, sort_keys=True)
    old.update(status="completed", evals=[], data_fingerprint=data_fp,   # as the sweep recorded it before
               settings_hash=hashlib.sha256(payload.encode()).hexdigest()[:16])
    caplog.set_level(logging.WARNING, logger="orchestrator.sweep.driver")
    assert reusable(sweep, "run", [old], fp_of(sweep, glue_dir), True) == [old]
    assert any("1 distilled record(s) in run predate teacher fingerprints" in m for m in caplog.messages)
    moved = sweep_of(shutil.copytree(teacher, tmp_path / "moved"), glue_dir, tmp_path)
    with pytest.raises(UserError, match="another teacher"):
        reusable(moved, "run", [old], fp_of(moved, glue_dir), True)


def teacher_run(run_dir, lr: float, score: float) -> str:
    """A finished teacher run: one BERT-Tiny SST-2 trial; returns the model's label. (Its
    configuration is this file's own: a re-trained teacher is shared by every run that chose it.)"""
    cfg = TrialConfig(model=resolve("BERT-Tiny").ref, task="SST-2", batch_size=8, learning_rate=lr, epochs=1,
                      init="random", max_train_examples=30)
    trial = make_trial(cfg, "BERT-Tiny")
    rec = store.new_record(trial, "teacher-run", trial.label)
    rec.update(status="completed", evals=[{"epoch": 1.0, "step": 2, "metrics": {"accuracy": score}, "score": score,
                                          "train_loss": 0.7, "elapsed_s": 1.0}])
    store.write_record(run_dir, rec)
    return trial.label


def test_run_teacher_known_by_its_best_configuration_and_data_not_the_runs_path(glue_dir, tmp_path, monkeypatch,
                                                                                 one_thread):
    label = teacher_run(tmp_path / "teacher-run", 1e-4, 55.0)
    trained = []
    real = T.run_trial
    monkeypatch.setattr(T, "run_trial", lambda c, *a, **k: trained.append(c.learning_rate) or real(c, *a, **k))
    spec = lambda run: sweep_of(f"{{run: {run}, model: {label}}}", glue_dir, tmp_path)   # noqa: E731
    path, runs = prepared(spec(tmp_path / "teacher-run"))
    assert trained == [1e-4] and runs == 1

    copy = shutil.copytree(tmp_path / "teacher-run", tmp_path / "archive" / "teacher-run-copy")
    assert prepared(spec(copy)) == (path, 0) and trained == [1e-4]   # the same teacher: nothing re-trained
    moved = spec(copy)
    records = finished_records(spec(tmp_path / "teacher-run"), fp_of(spec(tmp_path / "teacher-run"), glue_dir))
    assert reusable(moved, "run", records, fp_of(moved, glue_dir), True) == records

    teacher_run(copy, 3e-4, 60.0)                  # the teacher's sweep again: another configuration is best
    assert T.soft_keys(spec(copy), source_from(str(glue_dir))) != T.soft_keys(spec(tmp_path / "teacher-run"),
                                                                                source_from(str(glue_dir)))
    new_path, runs = prepared(spec(copy))
    assert trained == [1e-4, 3e-4] and runs == 1 and new_path != path
    with pytest.raises(UserError, match="another teacher"):
        reusable(spec(copy), "run", records, fp_of(spec(copy), glue_dir), True)


# ----------------------------------------------------------------------------- a teacher that cannot teach

def spoiled_teacher(d, how: str):
    """A saved BERT-Tiny-shaped teacher whose outputs are NaN, infinite, or one constant for every row."""
    torch.manual_seed(5)
    model = load_model(resolve("BERT-Tiny"), 2, "random")
    with torch.no_grad():
        if how == "nan":
            for p in model.parameters():
                p.fill_(float("nan"))
        elif how == "inf":
            model.classifier.bias[0] = float("inf")
        elif how == "constant":
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor([0.3, -0.2]))
    model.save_pretrained(d)
    load_tokenizer(resolve("BERT-Tiny"), "random").save_pretrained(d)
    return d


@pytest.mark.bad_input
@pytest.mark.parametrize("how, words", [("nan", "are NaN or infinite"), ("inf", "are NaN or infinite"),
                                        ("constant", "the same output [0.3, -0.2] for all 24 rows")])
def test_a_teacher_that_cannot_teach_is_one_line_and_nothing_is_cached(how, words, glue_dir, tmp_path, monkeypatch,
                                                                      one_thread):
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "cache"))
    sweep = sweep_of(spoiled_teacher(tmp_path / "teacher", how), glue_dir, tmp_path)
    with pytest.raises(UserError) as e:
        T.prepare(sweep)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"teacher {tmp_path / 'teacher'} cannot teach: on SST-2's transfer set")
    assert words in msg and "nothing was cached" in msg, msg
    assert not list((tmp_path / "cache").rglob("soft_labels/*"))


@pytest.mark.bad_input
def test_unusable_soft_labels_in_the_cache_are_never_trusted(glue_dir, tmp_path, monkeypatch, one_thread):
    """Soft labels cached before teachers were checked (a NaN teacher's, scored 49.08) are recomputed:
    the teacher is then refused, and the entry is gone."""
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "cache"))
    sweep = sweep_of(spoiled_teacher(tmp_path / "teacher", "nan"), glue_dir, tmp_path)
    key = T.soft_keys(sweep, source_from(str(glue_dir)))["SST-2"]
    path = T.soft_path("SST-2", key)
    T.save_soft(path, T.SoftLabels(np.full((24, 2), np.nan, np.float32), {"teacher": "t", "score": 49.08, "rows": 24}))
    with pytest.raises(UserError, match="cannot teach: .* are NaN or infinite"):
        T.prepare(sweep)
    assert not path.exists()


@pytest.mark.bad_input
def test_a_retrained_teacher_that_cannot_teach_is_not_kept(glue_dir, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "cache"))
    label = teacher_run(tmp_path / "teacher-run", 1e-4, 55.0)
    monkeypatch.setattr(T, "_retrain", lambda cfg, stop, source, out, *hooks: spoiled_teacher(out, "constant"))
    sweep = sweep_of(f"{{run: {tmp_path / 'teacher-run'}, model: {label}}}", glue_dir, tmp_path)
    with pytest.raises(UserError, match="cannot teach: .*the same output"):
        T.prepare(sweep)
    assert not list((tmp_path / "cache").rglob("soft_labels/*"))
    assert not list((tmp_path / "cache" / "teachers").iterdir())   # the re-trained teacher is not kept


def named_teacher(d, task: str, num_labels: int, **config):
    torch.manual_seed(6)
    model = load_model(resolve("BERT-Tiny"), num_labels, "random")
    for k, v in config.items():
        setattr(model.config, k, v)
    model.save_pretrained(d)
    load_tokenizer(resolve("BERT-Tiny"), "random").save_pretrained(d)
    return str(d)


@pytest.mark.bad_input
@pytest.mark.parametrize("task, n, config, words", [
    ("SST-2", 2, {"id2label": {0: "positive", 1: "negative"}}, "['positive', 'negative'] are SST-2's in another order"),
    ("SST-2", 2, {"id2label": {0: "entailment", 1: "not_entailment"}}, "are not SST-2's"),
    ("MNLI", 3, {"id2label": {0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}}, "in another order"),
    ("SST-2", 2, {"problem_type": "multi_label_classification"}, "multi-label classifier"),
    ("SST-2", 2, {"problem_type": "regression"}, "is a regression model"),
    ("STS-B", 1, {"problem_type": "multi_label_classification"}, "STS-B is a regression task"),
    ("STS-B", 2, {}, "it has 2 outputs; STS-B needs 1"),
])
def test_a_teacher_whose_label_space_does_not_fit_the_task_is_one_line(task, n, config, words, tmp_path):
    d = named_teacher(tmp_path / "t", task, n, **config)
    with pytest.raises(UserError) as e:
        T.load(d, get_task(task), torch.device("cpu"))
    assert str(e.value).startswith(f"teacher {d} does not fit {task}: ") and words in str(e.value), str(e.value)


@pytest.mark.parametrize("task, n, config", [
    ("SST-2", 2, {}),                                                       # LABEL_0, LABEL_1: nothing said
    ("SST-2", 2, {"id2label": {0: "NEGATIVE", 1: "POSITIVE"}}),             # the task's names, in its order
    ("MNLI", 3, {"id2label": {0: "entailment", 1: "neutral", 2: "contradiction"}}),
    ("STS-B", 1, {"problem_type": "regression"}),
])
def test_a_teacher_whose_label_space_fits_is_loaded(task, n, config, tmp_path):
    model, _ = T.load(named_teacher(tmp_path / "t", task, n, **config), get_task(task), torch.device("cpu"))
    assert model.config.num_labels == n
