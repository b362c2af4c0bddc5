"""Task definitions (tasks/*.yaml): every file loads, lookups by name and alias, and a
malformed definition is a UserError naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import UserError
from orchestrator.registry import tasks as T
from orchestrator.registry.metrics import METRICS

GLUE_TASKS = ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI", "AX"]


def test_every_definition_file_loads():
    files = sorted(T.TASKS_DIR.glob("*.yaml"))
    assert len(files) >= 10
    names = {T._parse(f).name for f in files}
    assert names == set(T.all_tasks())


def test_all_glue_tasks_defined_in_table_order():
    assert list(T.all_tasks())[:10] == GLUE_TASKS


def test_benchmark_membership_and_order_come_from_the_yaml():
    assert [t.name for t in T.benchmark_tasks("glue")] == GLUE_TASKS
    assert [t.name for t in T.score_tasks("GLUE")] == GLUE_TASKS[:-1]          # AX: diagnostic, never scored
    assert [t.order for t in T.benchmark_tasks()] == sorted(t.order for t in T.benchmark_tasks())
    assert [t.name for t in T.benchmark_tasks() if t.also_scored_without] == ["WNLI"]
    assert T.benchmark_tasks("superglue") == []


def test_benchmark_order_follows_the_files(tasks_dir):
    """A new task file with ``order: 0`` becomes the table's first column; no code changes."""
    (tasks_dir / "toy.yaml").write_text(GOOD + "benchmark: glue\norder: 0\n", encoding="utf-8")
    (tasks_dir / "other.yaml").write_text(GOOD.replace("Toy", "Zed").replace("toy", "zed"), encoding="utf-8")
    assert [t.name for t in T.benchmark_tasks()] == ["Toy"] + GLUE_TASKS
    assert [t.name for t in T.score_tasks()] == ["Toy"] + GLUE_TASKS[:-1]
    assert list(T.all_tasks())[-1] == "Zed"                                # no order: after the ordered ones


@pytest.mark.parametrize("name", GLUE_TASKS)
def test_definition_is_consistent(name):
    t = T.all_tasks()[name]
    assert t.kind in ("classification", "regression")
    assert t.metrics and all(m in METRICS for m in t.metrics)
    assert 1 <= len(t.text_columns) <= 2
    assert len(t.hub_text_columns) == len(t.text_columns)
    assert set(t.hub_splits) == set(t.splits)
    if t.is_regression:
        assert t.num_labels == 1 and t.label_range is not None
        assert t.label_range[0] < t.label_range[1]
    else:
        assert t.num_labels == len(t.labels) >= 2
        assert len(set(t.labels)) == len(t.labels)
        if t.label_names:
            assert len(t.label_names) == len(t.labels)
    for s in t.splits.values():
        assert not (s.eval and not s.labelled), f"{name} {s.name}: an eval split must be labelled"
    if t.trainable:
        assert t.splits["train"].labelled
        assert t.eval_splits, f"{name} is trainable but has no eval split"
        assert t.test_splits
    else:
        assert t.predict_with in T.all_tasks()


@pytest.mark.parametrize("alias, name", [
    ("cola", "CoLA"), ("CoLA", "CoLA"), ("COLA", "CoLA"), ("sst2", "SST-2"), ("sst-2", "SST-2"), ("SST", "SST-2"),
    ("mrpc", "MRPC"), ("stsb", "STS-B"), ("sts-b", "STS-B"), ("STS", "STS-B"), ("qqp", "QQP"), ("mnli", "MNLI"),
    ("qnli", "QNLI"), ("rte", "RTE"), ("wnli", "WNLI"), ("ax", "AX"), ("diagnostic", "AX"), ("  rte  ", "RTE"),
])
def test_lookup_by_name_or_alias(alias, name):
    assert T.get_task(alias).name == name


@pytest.mark.parametrize("bad", ["nope", "", "SST-3", "mnli-m", "glue"])
def test_unknown_task_is_user_error(bad):
    with pytest.raises(UserError, match="unknown task"):
        T.get_task(bad)


def test_labels_kinds_and_metric_keys():
    g = T.get_task
    assert g("MNLI").labels == ("entailment", "neutral", "contradiction") and g("MNLI").num_labels == 3
    assert g("RTE").labels == ("entailment", "not_entailment")
    assert g("QNLI").labels == ("entailment", "not_entailment")
    assert g("CoLA").labels == ("0", "1")
    assert g("STS-B").is_regression and g("STS-B").num_labels == 1 and g("STS-B").label_range == (0.0, 5.0)
    assert g("MNLI").metric_keys() == ["accuracy_m", "accuracy_mm"]
    assert g("MRPC").metric_keys() == ["f1", "accuracy"]
    assert g("QQP").metric_keys() == ["f1", "accuracy"]
    assert g("STS-B").metric_keys() == ["pearson", "spearman"]
    assert g("CoLA").metric_keys() == ["mcc"]
    assert g("AX").metrics == ("r3",)
    assert [s.name for s in g("MNLI").eval_splits] == ["dev_matched", "dev_mismatched"]
    assert {s.name for s in g("MNLI").test_splits} == {"test_matched", "test_mismatched"}
    assert not g("AX").trainable and g("AX").predict_with == "MNLI"
    assert g("CoLA").splits["train"].columns == ("source", "label", "original_mark", "sentence")
    assert g("CoLA").splits["test"].columns is None


# --- malformed definitions -------------------------------------------------------------

GOOD = """\
name: Toy
kind: classification
labels: [a, b]
metrics: [accuracy]
text_columns: [sentence]
splits:
  train: {file: Toy/train.tsv}
  dev: {file: Toy/dev.tsv, eval: true}
hub: {config: toy, splits: {train: train, dev: validation}}
"""


def _registry(tmp_path: Path, text: str, name: str = "toy.yaml"):
    d = tmp_path / "defs"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text, encoding="utf-8")
    return T._registry.__wrapped__(str(d))


def test_a_new_task_is_a_new_file(tmp_path):
    reg = _registry(tmp_path, GOOD)
    t = reg["Toy"]
    assert t.labels == ("a", "b") and t.metric_keys() == ["accuracy"]
    assert t.label_column == "label" and t.index_column == "index"
    assert t.hub_text_columns == ("sentence",) and t.hub_repo == "nyu-mll/glue"


@pytest.mark.parametrize("edit, message", [
    (lambda s: s + "colour: blue\n", "unknown key"),
    (lambda s: s.replace("kind: classification\n", ""), "missing key 'kind'"),
    (lambda s: s.replace("kind: classification", "kind: ranking"), "kind must be"),
    (lambda s: s.replace("labels: [a, b]\n", ""), "needs 'labels'"),
    (lambda s: s.replace("kind: classification", "kind: regression"), "needs 'label_range'"),
    (lambda s: s.replace("metrics: [accuracy]", "metrics: [bleu]"), "unknown metric"),
    (lambda s: s.replace("{file: Toy/train.tsv}", "{file: Toy/train.tsv, weight: 2}"), "unknown key"),
    (lambda s: s.replace("{file: Toy/train.tsv}", "{eval: false}"), "toy.yaml:7: missing key 'file' in splits/train"),
    (lambda s: s.replace("dev: validation", "validation: validation"), "same splits"),
    (lambda s: s.replace("config: toy,", "config: toy, mirror: x,"), "unknown key"),
    (lambda s: s + "  : [\n", "not valid YAML"),
    (lambda s: "- just\n- a list\n", "must be a mapping"),
    (lambda s: s + "benchmark: glue\norder: first\n", "order must be a whole number"),
    (lambda s: s + "benchmark: [glue]\n", "benchmark must be a name"),
    (lambda s: s + "benchmark: glue\ndiagnostic: maybe\n", "diagnostic must be true or false"),
    (lambda s: s + "also_scored_without: true\n", "needs a benchmark"),
])
def test_malformed_definition_is_user_error_naming_the_file(tmp_path, edit, message):
    with pytest.raises(UserError, match=message) as e:
        _registry(tmp_path, edit(GOOD))
    assert "toy.yaml" in str(e.value)


def test_task_defined_twice(tmp_path):
    _registry(tmp_path, GOOD, "a.yaml")
    with pytest.raises(UserError, match="defined twice"):
        _registry(tmp_path, GOOD, "b.yaml")


def test_missing_tasks_dir(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        T._registry.__wrapped__(str(tmp_path / "nowhere"))
