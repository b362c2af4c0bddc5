"""Sweep specs: validation (every mistake one clear error naming file:line) and expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import UserError
from orchestrator.spec import sweep as S
from orchestrator.spec.plan import estimate, render

REPO = Path(__file__).resolve().parents[2]


def parse(text: str):
    return S.parse(text, "s.yaml")


def error(text: str) -> str:
    with pytest.raises(UserError) as e:
        parse(text)
    return str(e.value)


def test_paper_grid_is_4320_trials():
    sweep = S.load(REPO / "sweeps" / "paper.yaml")
    trials = sweep.trials()
    assert len(trials) == 4320 == 24 * 9 * 20
    assert len({t.id for t in trials}) == 4320
    assert {t.config.task for t in trials} == {"CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"}
    assert sorted({t.config.batch_size for t in trials}) == [8, 16, 32, 64, 128]
    assert sorted({t.config.learning_rate for t in trials}) == [3e-5, 5e-5, 1e-4, 3e-4]
    assert {t.config.epochs for t in trials} == {4}
    text = render(sweep)
    assert "4,320 trials" in text and "AX is predicted with the MNLI" in text


def test_every_shipped_sweep_validates(monkeypatch, real_glue_dir):
    monkeypatch.setenv("GLUE_DIR", str(real_glue_dir))
    for path in sorted((REPO / "sweeps").glob("*.yaml")):
        sweep = S.load(path)
        assert sweep.trials() or sweep.mode == "optuna", path


def test_model_forms():
    sw = parse("""
name: m
models:
  - BERT-Tiny
  - {name: BERT-Mini, init: random}
  - {layers: [6, 8], hidden: 128}
  - google/bert_uncased_L-4_H-512_A-8
tasks: [SST-2]
""")
    names = [(s.name, init) for s, init in sw.models]
    assert names == [("BERT-Tiny", "pretrained"), ("BERT-Mini", "random"), ("L-6_H-128", "pretrained"),
                     ("L-8_H-128", "pretrained"), ("BERT-Small", "pretrained")]
    assert sw.models[4][0].shape == (4, 512)


def test_duplicate_model_is_an_error():
    msg = error("name: m\nmodels: [BERT-Tiny, {layers: [2], hidden: [128]}]\ntasks: [SST-2]\n")
    assert "listed twice" in msg and "s.yaml" in msg


def test_layers_hidden_grid_expands():
    sw = parse("name: m\nmodels: [{layers: [2, 4, 6], hidden: [128, 256]}]\ntasks: [MRPC]\n")
    assert [s.name for s, _ in sw.models] == ["BERT-Tiny", "L-2_H-256", "L-4_H-128", "BERT-Mini", "L-6_H-128",
                                             "L-6_H-256"]
    assert len(sw.trials()) == 6 * 20


def test_miniatures_keyword_and_all_tasks():
    sw = parse("name: m\nmodels: miniatures\ntasks: all\n")
    assert len(sw.models) == 24 and len(sw.tasks) == 9


@pytest.mark.parametrize("text, where, words", [
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nsearch:\n  learning_rates: [1e-4]\n", "s.yaml:5",
     ["unknown key 'learning_rates'", "did you mean 'learning_rate'"]),
    ("name: m\nmodel: [BERT-Tiny]\ntasks: [SST-2]\n", "s.yaml:2", ["unknown key 'model'", "models"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2, COLAA]\n", "s.yaml:3", ["unknown task 'COLAA'"]),
    ("name: m\nmodels: [BERT-Tiny, L-3_H-100]\ntasks: [SST-2]\n", "s.yaml:2", ["L-3_H-100"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nsearch:\n  batch_size: []\n", "s.yaml:5", ["empty"]),
    ("name: m\nmodels: []\ntasks: [SST-2]\n", "s.yaml:2", ["models is empty"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nsearch:\n  learning_rate: [1e-4, 1e-4]\n", "s.yaml:5",
     ["repeats"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nsearch:\n  batch_size: [0]\n", "s.yaml:5", ["positive"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nsearch:\n  learning_rate: [-1e-4]\n", "s.yaml:5", ["positive"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [AX]\n", "s.yaml:3", ["AX has no training split"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nscheduler: {type: hyperband}\n", "s.yaml:4",
     ["asha or none"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nepochs: 2\nscheduler: {type: asha, grace_period: 2}\n",
     "s.yaml:5", ["grace_period"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\ndata: {glue_dir: /nonexistent/glue}\n", "s.yaml:4",
     ["does not exist"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\ndata: {glue_dir: '${GLUE_SWEEP_UNSET_VAR}'}\n", "s.yaml:4",
     ["GLUE_SWEEP_UNSET_VAR is not set"]),
    ("name: a/b\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", "s.yaml:1", ["name"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nresources: {cpu_per_trial: 2}\n", "s.yaml:4",
     ["cpus_per_trial"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nsearch: {mode: random}\n", "s.yaml:4", ["grid or optuna"]),
    ("name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2, sst2]\n", "s.yaml:3", ["listed twice"]),
])
def test_bad_specs_name_file_line_and_problem(text, where, words):
    msg = error(text)
    assert msg.startswith(where + ":"), msg
    for w in words:
        assert w in msg, msg
    assert "\n" not in msg


def test_not_yaml_and_not_a_mapping():
    assert error("name: [unclosed\n").startswith("s.yaml:")
    assert "mapping" in error("- a\n- b\n")
    assert "missing key 'tasks'" in error("name: m\nmodels: [BERT-Tiny]\n")


def test_missing_file():
    with pytest.raises(UserError, match="does not exist"):
        S.load("sweeps/no-such-sweep.yaml")


def test_trial_ids_are_unique_and_stable():
    sw = parse("name: m\nmodels: [BERT-Tiny, {name: BERT-Tiny, init: random}]\ntasks: [RTE]\nseeds: 2\n")
    ids = [t.id for t in sw.trials()]
    assert len(ids) == len(set(ids)) == 2 * 20 * 2
    assert "BERT-Tiny__RTE__bs8_lr3e-4_s0" in ids and "BERT-Tiny-random__RTE__bs8_lr3e-4_s1" in ids
    groups = {t.group for t in sw.trials()}
    assert groups == {"BERT-Tiny|RTE", "BERT-Tiny (random init)|RTE"}


def test_estimate_counts_examples():
    sw = parse("name: m\nmodels: [BERT-Tiny]\ntasks: [RTE]\nsearch: {batch_size: [32], learning_rate: [1e-4]}\n"
               "epochs: 3\nmax_train_examples: 1000\n")
    e = estimate(sw)
    assert e["trials"] == 1
    assert e["train_examples"] == 1000 * 3
    assert e["eval_examples"] == 277 * 3
    assert e["flops"] > 0


def test_optuna_mode_parses_ranges():
    sw = parse("name: m\nmodels: [BERT-Tiny]\ntasks: [RTE]\nsearch:\n  mode: optuna\n  trials: 8\n"
               "  learning_rate: {low: 1e-5, high: 3e-4}\n")
    assert sw.mode == "optuna" and sw.optuna_trials == 8 and sw.learning_rates == [1e-5, 3e-4]
    assert "optuna" in render(sw)
