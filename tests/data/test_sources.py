"""GLUE data sources: the standard GLUE directory (GlueDir) on the real files, its error
messages on malformed files, and the hub source (Hub) on a local directory in the hub's
parquet layout, built here from the same TSVs, giving the same texts and labels."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import BAD_INPUT_CASES
from hostile import SETTINGS
from hypothesis import given, settings, strategies as st

from orchestrator.data.sources import GlueDir, Hub, source_from
from orchestrator.errors import UserError
from orchestrator.registry.tasks import all_tasks, get_task

# Data rows per split: the real files (README of the GLUE data) and the generated ones
# (tests/glue_fixtures.py defaults: MNLI 600/120/120/100/100, QQP 600/150/100, QNLI train 600).
ROWS = {
    ("CoLA", "train"): 8551, ("CoLA", "dev"): 1043, ("CoLA", "test"): 1063,
    ("SST-2", "train"): 67349, ("SST-2", "dev"): 872, ("SST-2", "test"): 1821,
    ("MRPC", "train"): 3668, ("MRPC", "dev"): 408, ("MRPC", "test"): 1725,
    ("STS-B", "train"): 5749, ("STS-B", "dev"): 1500, ("STS-B", "test"): 1379,
    ("QQP", "train"): 600, ("QQP", "dev"): 150, ("QQP", "test"): 100,
    ("MNLI", "train"): 600, ("MNLI", "dev_matched"): 120, ("MNLI", "dev_mismatched"): 120,
    ("MNLI", "test_matched"): 100, ("MNLI", "test_mismatched"): 100,
    ("QNLI", "train"): 600, ("QNLI", "dev"): 5463, ("QNLI", "test"): 5463,
    ("RTE", "train"): 2490, ("RTE", "dev"): 277, ("RTE", "test"): 3000,
    ("WNLI", "train"): 635, ("WNLI", "dev"): 71, ("WNLI", "test"): 146,
    ("AX", "test"): 1104,
}


def test_every_split_of_every_task_is_listed():
    assert {(t.name, s) for t in all_tasks().values() for s in t.splits} == set(ROWS)


@pytest.mark.parametrize("task_name, split", sorted(ROWS))
def test_every_split_loads_with_expected_rows(src, task_name, split):
    task = get_task(task_name)
    d = src.load(task, split)
    assert (d.task, d.split) == (task.name, split)
    assert len(d) == ROWS[task_name, split]
    assert len(d.index) == len(d) and len(set(d.index)) == len(d)
    assert all(isinstance(x, str) for x in d.text_a)
    if len(task.text_columns) == 2:
        assert d.text_b is not None and len(d.text_b) == len(d)
    else:
        assert d.text_b is None
    assert not any("\t" in x or "\n" in x for x in d.text_a + (d.text_b or []))
    assert sum(1 for x in d.text_a if x.strip()) >= 0.99 * len(d)
    if not task.splits[split].labelled:
        assert d.labels is None
    elif task.is_regression:
        assert d.labels.dtype == np.float32 and d.labels.shape == (len(d),)
        assert d.labels.min() >= 0.0 and d.labels.max() <= 5.0
    else:
        assert d.labels.dtype == np.int64 and d.labels.shape == (len(d),)
        assert set(np.unique(d.labels)) == set(range(task.num_labels))  # every class present


def _raw_rows(path: Path, columns=None) -> list[dict]:
    """An independent reader: csv with quoting off (as the GLUE README says), BOM dropped."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = list(columns) if columns else rows.pop(0)
    return [dict(zip(header, r)) for r in rows]


@pytest.mark.parametrize("task_name, split, column, mapping", [
    ("RTE", "train", "label", {"entailment": 0, "not_entailment": 1}),
    ("RTE", "dev", "label", {"entailment": 0, "not_entailment": 1}),
    ("QNLI", "dev", "label", {"entailment": 0, "not_entailment": 1}),
    ("QNLI", "train", "label", {"entailment": 0, "not_entailment": 1}),
    ("MNLI", "dev_matched", "gold_label", {"entailment": 0, "neutral": 1, "contradiction": 2}),
    ("MNLI", "train", "gold_label", {"entailment": 0, "neutral": 1, "contradiction": 2}),
    ("WNLI", "dev", "label", {"0": 0, "1": 1}),
    ("MRPC", "dev", "Quality", {"0": 0, "1": 1}),
    ("QQP", "dev", "is_duplicate", {"0": 0, "1": 1}),
    ("SST-2", "dev", "label", {"0": 0, "1": 1}),
    ("CoLA", "dev", "label", {"0": 0, "1": 1}),
])
def test_labels_map_to_hub_ids_row_by_row(src, glue_dir, task_name, split, column, mapping):
    task = get_task(task_name)
    rows = _raw_rows(glue_dir / task.splits[split].file, task.splits[split].columns)
    d = src.load(task, split)
    assert d.labels.tolist() == [mapping[r[column]] for r in rows]


def test_spot_checks_on_real_rows(src):
    cola = src.load(get_task("CoLA"), "dev")
    assert cola.labels[0] == 1 and cola.text_a[0] == "The sailors rode the breeze clear of the rocks."
    assert cola.text_b is None
    # CoLA dev has no final newline: its last row is still read whole.
    last = (Path(src.root) / "CoLA" / "dev.tsv").read_text(encoding="utf-8").split("\n")[-1].split("\t")
    assert cola.text_a[-1] == last[3] and cola.labels[-1] == int(last[1])
    cola_train = src.load(get_task("CoLA"), "train")
    assert cola_train.text_a[0].startswith("Our friends won't buy this analysis")

    mrpc = src.load(get_task("MRPC"), "train")  # header starts with a BOM
    assert mrpc.labels[0] == 1 and mrpc.text_a[0].startswith("Amrozi accused his brother")
    mrpc_dev = src.load(get_task("MRPC"), "dev")
    assert mrpc_dev.labels[0] == 1
    assert mrpc_dev.text_b[0].startswith('" The foodservice pie business')  # quotes kept, quoting off

    stsb = src.load(get_task("STS-B"), "dev")
    assert stsb.labels[0] == 5.0 and stsb.text_a[0] == "A man with a hard hat is dancing."
    assert stsb.text_b[0] == "A man wearing a hard hat is dancing."
    assert stsb.index[0] == "0"
    stsb_train = src.load(get_task("STS-B"), "train")
    assert stsb_train.labels[:2].tolist() == pytest.approx([5.0, 3.8])
    assert stsb_train.labels.min() == 0.0 and stsb_train.labels.max() == 5.0
    assert len(np.unique(stsb_train.labels)) > 50  # real-valued, not rounded to classes

    rte = src.load(get_task("RTE"), "dev")
    assert rte.labels[0] == 1  # not_entailment
    assert rte.text_b[0] == "Christopher Reeve had an accident."
    qnli = src.load(get_task("QNLI"), "dev")
    assert qnli.labels[0] == 0  # entailment
    assert qnli.text_a[0] == "What came into force after the new constitution was herald?"

    sst = src.load(get_task("SST-2"), "train")
    assert sst.labels[0] == 0 and sst.text_a[0].startswith("hide new secretions from the parental units")
    sst_test = src.load(get_task("SST-2"), "test")
    assert sst_test.index[0] == "0" and sst_test.text_a[0] == "uneasy mishmash of styles and genres ."

    ax = src.load(get_task("AX"), "test")
    assert ax.labels is None and ax.text_a[0] == "The cat sat on the mat."
    assert ax.text_b[0] == "The cat did not sit on the mat."

    mnli = src.load(get_task("MNLI"), "dev_mismatched")
    assert mnli.text_a[0].endswith(".") and mnli.index[:3] == ["0", "1", "2"]


# --- malformed input ----------------------------------------------------------------------

@pytest.fixture
def tmp_glue(tmp_path, real_glue_dir):
    """A writable GLUE directory holding copies of WNLI and STS-B."""
    for t in ("WNLI", "STS-B"):
        shutil.copytree(real_glue_dir / t, tmp_path / t)
    return tmp_path


def _edit_line(path: Path, lineno: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[lineno - 1] = new
    path.write_text("\n".join(lines), encoding="utf-8")


def test_wrong_column_count_names_file_and_line(tmp_glue):
    p = tmp_glue / "WNLI" / "train.tsv"
    _edit_line(p, 7, "5\tonly two columns")
    with pytest.raises(UserError) as e:
        GlueDir(tmp_glue).load(get_task("WNLI"), "train")
    assert f"{p}:7:" in str(e.value) and "expected 4" in str(e.value)


def test_extra_tab_in_text_is_an_error_not_a_shift(tmp_glue):
    p = tmp_glue / "WNLI" / "dev.tsv"
    _edit_line(p, 3, "1\tA\tsentence with a tab\tB.\t0")
    with pytest.raises(UserError, match=f"{p}:3:"):
        GlueDir(tmp_glue).load(get_task("WNLI"), "dev")


def test_label_outside_the_set_names_file_and_line(tmp_glue):
    p = tmp_glue / "WNLI" / "train.tsv"
    _edit_line(p, 12, "10\tSome sentence.\tAnother.\t2")
    with pytest.raises(UserError) as e:
        GlueDir(tmp_glue).load(get_task("WNLI"), "train")
    assert f"{p}:12:" in str(e.value) and "'2'" in str(e.value)


@pytest.mark.parametrize("bad, message", [("5.5", "outside"), ("-0.1", "outside"), ("nan", "outside"),
                                          ("high", "not a number")])
def test_regression_label_checked(tmp_glue, bad, message):
    p = tmp_glue / "STS-B" / "dev.tsv"
    fields = p.read_text(encoding="utf-8").split("\n")[4].split("\t")
    _edit_line(p, 5, "\t".join(fields[:-1] + [bad]))
    with pytest.raises(UserError, match=message) as e:
        GlueDir(tmp_glue).load(get_task("STS-B"), "dev")
    assert f"{p}:5:" in str(e.value)


def test_header_without_needed_column(tmp_glue):
    p = tmp_glue / "WNLI" / "dev.tsv"
    _edit_line(p, 1, "index\tsentence1\tsecond\tlabel")
    with pytest.raises(UserError, match=r"dev\.tsv:1: header lacks column\(s\) \['sentence2'\]"):
        GlueDir(tmp_glue).load(get_task("WNLI"), "dev")


def test_invalid_utf8_names_line(tmp_glue):
    p = tmp_glue / "WNLI" / "dev.tsv"
    data = p.read_bytes().split(b"\n")
    data[4] = data[4].replace(b"The", b"Th\xff", 1) if b"The" in data[4] else b"\xff" + data[4]
    p.write_bytes(b"\n".join(data))
    with pytest.raises(UserError, match=f"{p}:5: not valid UTF-8"):
        GlueDir(tmp_glue).load(get_task("WNLI"), "dev")


def test_header_only_and_empty_files(tmp_glue):
    p = tmp_glue / "WNLI" / "dev.tsv"
    p.write_text("index\tsentence1\tsentence2\tlabel\n", encoding="utf-8")
    with pytest.raises(UserError, match="no data rows"):
        GlueDir(tmp_glue).load(get_task("WNLI"), "dev")
    p.write_text("", encoding="utf-8")
    with pytest.raises(UserError, match="empty"):
        GlueDir(tmp_glue).load(get_task("WNLI"), "dev")


def test_crlf_and_bom_are_tolerated(tmp_glue):
    p = tmp_glue / "WNLI" / "dev.tsv"
    want = GlueDir(tmp_glue).load(get_task("WNLI"), "dev")
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes().replace(b"\n", b"\r\n"))
    got = GlueDir(tmp_glue).load(get_task("WNLI"), "dev")
    assert got.text_a == want.text_a and got.text_b == want.text_b and got.index == want.index
    assert np.array_equal(got.labels, want.labels)


def test_missing_file_missing_dir_unknown_split(tmp_glue, tmp_path):
    with pytest.raises(UserError, match="missing data file .*RTE"):
        GlueDir(tmp_glue).load(get_task("RTE"), "train")
    with pytest.raises(UserError, match="missing data file"):
        GlueDir(tmp_glue).fingerprint(get_task("MNLI"), "dev_matched")
    with pytest.raises(UserError, match="does not exist"):
        GlueDir(tmp_path / "nowhere")
    with pytest.raises(UserError, match="no split 'validation'"):
        GlueDir(tmp_glue).load(get_task("WNLI"), "validation")


def test_fingerprint_follows_the_file(tmp_glue):
    g, t = GlueDir(tmp_glue), get_task("WNLI")
    before = g.fingerprint(t, "dev")
    assert g.fingerprint(t, "dev") == before
    assert g.fingerprint(t, "train") != before
    p = tmp_glue / "WNLI" / "dev.tsv"
    p.write_bytes(p.read_bytes() + b"71\tOne more.\tAnother.\t1\n")
    assert g.fingerprint(t, "dev") != before
    assert len(g.load(t, "dev")) == 72


def test_source_from(monkeypatch, tmp_glue, tmp_path):
    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.delenv("GLUE_HUB", raising=False)
    assert isinstance(source_from(str(tmp_glue)), GlueDir)
    h = source_from(None, str(tmp_path))
    assert isinstance(h, Hub) and h.local == tmp_path
    assert isinstance(source_from(), Hub) and source_from().location == "nyu-mll/glue"
    monkeypatch.setenv("GLUE_DIR", str(tmp_glue))
    assert isinstance(source_from(), GlueDir) and source_from().root == tmp_glue
    monkeypatch.setenv("GLUE_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="does not exist"):
        source_from()


# --- the hub source, on a local parquet mirror ---------------------------------------------

# The hub's (nyu-mll/glue) layout, written down independently of tasks/*.yaml:
# config, {GLUE split: (file, hub split)}, [(file column, hub column)], label column in the file,
# the hub's class names in id order (None: a float score), headerless columns (CoLA).
_STD = {"train": "train", "dev": "validation", "test": "test"}
HUB_LAYOUT = {
    "CoLA": ("cola", _STD, [("sentence", "sentence")], "label", ["0", "1"],
             ["source", "label", "original_mark", "sentence"]),
    "SST-2": ("sst2", _STD, [("sentence", "sentence")], "label", ["0", "1"], None),
    "MRPC": ("mrpc", _STD, [("#1 String", "sentence1"), ("#2 String", "sentence2")], "Quality", ["0", "1"], None),
    "STS-B": ("stsb", _STD, [("sentence1", "sentence1"), ("sentence2", "sentence2")], "score", None, None),
    "QQP": ("qqp", _STD, [("question1", "question1"), ("question2", "question2")], "is_duplicate", ["0", "1"], None),
    "MNLI": ("mnli", {"train": "train", "dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched",
                      "test_matched": "test_matched", "test_mismatched": "test_mismatched"},
             [("sentence1", "premise"), ("sentence2", "hypothesis")], "gold_label",
             ["entailment", "neutral", "contradiction"], None),
    "QNLI": ("qnli", _STD, [("question", "question"), ("sentence", "sentence")], "label",
             ["entailment", "not_entailment"], None),
    "RTE": ("rte", _STD, [("sentence1", "sentence1"), ("sentence2", "sentence2")], "label",
            ["entailment", "not_entailment"], None),
    "WNLI": ("wnli", _STD, [("sentence1", "sentence1"), ("sentence2", "sentence2")], "label", ["0", "1"], None),
    "AX": ("ax", {"test": "test"}, [("sentence1", "premise"), ("sentence2", "hypothesis")], "label",
           ["entailment", "neutral", "contradiction"], None),
}
GLUE_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv", "dev_matched": "dev_matched.tsv",
              "dev_mismatched": "dev_mismatched.tsv", "test_matched": "test_matched.tsv",
              "test_mismatched": "test_mismatched.tsv"}


def write_hub_parquet(glue_dir: Path, out: Path, task_name: str, split: str) -> Path:
    """Converts one GLUE TSV into the hub's parquet file for that split: hub column names,
    labels as hub class ids (float scores for STS-B), -1 for an unlabelled test split."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    config, splits, cols, label_col, classes, headerless = HUB_LAYOUT[task_name]
    folder = "diagnostic/diagnostic.tsv" if task_name == "AX" else f"{task_name}/{GLUE_FILES[split]}"
    is_test = split.startswith("test")
    rows = _raw_rows(glue_dir / folder, headerless if not is_test else None)
    table = {hub: [r[f] for r in rows] for f, hub in cols}
    if is_test:
        labels = pa.array([-1.0] * len(rows), pa.float32()) if classes is None else pa.array([-1] * len(rows), pa.int64())
    elif classes is None:
        labels = pa.array([float(r[label_col]) for r in rows], pa.float32())
    else:
        labels = pa.array([classes.index(r[label_col].strip()) for r in rows], pa.int64())
    table["label"] = labels
    table["idx"] = pa.array(range(len(rows)), pa.int32())
    path = out / config / f"{splits[split]}-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(table), path)
    return path


HUB_CASES = [("CoLA", "train"), ("CoLA", "dev"), ("CoLA", "test"), ("SST-2", "dev"), ("SST-2", "test"),
             ("MRPC", "train"), ("MRPC", "dev"), ("STS-B", "train"), ("STS-B", "dev"), ("STS-B", "test"),
             ("QQP", "train"), ("QQP", "dev"), ("MNLI", "train"), ("MNLI", "dev_matched"),
             ("MNLI", "dev_mismatched"), ("MNLI", "test_mismatched"), ("QNLI", "dev"), ("RTE", "train"),
             ("RTE", "dev"), ("WNLI", "dev"), ("AX", "test")]


@pytest.fixture(scope="module")
def hub_dir(glue_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("hub")
    for task_name, split in HUB_CASES:
        write_hub_parquet(glue_dir, out, task_name, split)
    return out


@pytest.mark.parametrize("task_name, split", HUB_CASES)
def test_hub_and_glue_dir_agree(src, hub_dir, task_name, split):
    task = get_task(task_name)
    hub = Hub(str(hub_dir))
    assert hub.local is not None
    a, b = src.load(task, split), hub.load(task, split)
    assert len(b) == ROWS[task_name, split]
    assert b.text_a == a.text_a
    assert b.text_b == a.text_b
    if a.labels is None:
        assert b.labels is None
    else:
        assert b.labels.dtype == a.labels.dtype
        assert np.array_equal(b.labels, a.labels)
    assert (b.task, b.split) == (a.task, a.split)
    assert hub.fingerprint(task, split).startswith("parquet:")


def test_hub_missing_parquet_is_user_error(hub_dir, tmp_path):
    hub = Hub(str(hub_dir))
    with pytest.raises(UserError, match=r"missing data file .*wnli.*train-\*\.parquet"):
        hub.load(get_task("WNLI"), "train")
    with pytest.raises(UserError, match="missing data file"):
        hub.fingerprint(get_task("WNLI"), "train")
    with pytest.raises(UserError, match="missing data file"):
        Hub(str(tmp_path)).load(get_task("MNLI"), "dev_matched")


def test_hub_bad_parquet_content(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "rte"
    d.mkdir()
    pq.write_table(pa.table({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [0, 2], "idx": [0, 1]}),
                   d / "validation-00000-of-00001.parquet")
    with pytest.raises(UserError, match="row 1: label id 2 is outside 0..1"):
        Hub(str(tmp_path)).load(get_task("RTE"), "dev")
    pq.write_table(pa.table({"premise": ["a"], "sentence2": ["c"], "label": [0], "idx": [0]}),
                   d / "train-00000-of-00001.parquet")
    with pytest.raises(UserError, match=r"lacks column\(s\) \['sentence1'\]"):
        Hub(str(tmp_path)).load(get_task("RTE"), "train")
    s = tmp_path / "stsb"
    s.mkdir()
    pq.write_table(pa.table({"sentence1": ["a"], "sentence2": ["c"], "label": pa.array([7.5], pa.float32())}),
                   s / "validation-00000-of-00001.parquet")
    with pytest.raises(UserError, match="outside"):
        Hub(str(tmp_path)).load(get_task("STS-B"), "dev")


def test_hub_unreachable_offline_is_user_error():
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        pytest.skip("needs HF_HUB_OFFLINE=1")
    with pytest.raises(UserError, match="cannot load RTE dev"):
        Hub("no-such-org-xyz/no-such-glue").load(get_task("RTE"), "dev")


# --- bad input (marker bad_input) and hardening (marker hardening) -------------------------

row_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=40)


@st.composite
def rte_files(draw):
    """An RTE train.tsv, correct or damaged in one of the ways real files are."""
    rows = [["index", "sentence1", "sentence2", "label"]]
    for i in range(draw(st.integers(0, 6))):
        rows.append([str(i), draw(row_text), draw(row_text),
                     draw(st.sampled_from(["entailment", "not_entailment", "neutral", "", "1", "ENTAILMENT"]))])
    kind = draw(st.sampled_from(["as is", "truncate", "extra tab", "no header", "bad utf8", "empty", "huge", "crlf"]))
    lines = ["\t".join(r) for r in rows]
    if kind == "truncate" and len(lines) > 1:
        k = draw(st.integers(1, len(lines) - 1))
        lines[k] = lines[k].rsplit("\t", 1)[0]
    elif kind == "extra tab" and len(lines) > 1:
        lines[-1] += "\t"
    elif kind == "no header":
        lines = lines[1:]
    elif kind == "empty":
        lines = []
    elif kind == "huge" and len(lines) > 1:
        lines[1] = "\t".join(["0", "x" * 1_000_000, "y", "entailment"])
    data = "\n".join(lines).encode()
    if kind == "crlf":
        data = data.replace(b"\n", b"\r\n")
    if kind == "bad utf8":
        data = data + b"\n7\t\xff\xfe broken\tz\tentailment"
    return data


@pytest.mark.bad_input
@settings(max_examples=300, **SETTINGS)
@given(rte_files())
def test_tsv_files_load_or_fail_naming_file_and_line(tmp_path_factory, data):
    BAD_INPUT_CASES["TSV files"] = BAD_INPUT_CASES.get("TSV files", 0) + 1
    root = tmp_path_factory.mktemp("glue")
    (root / "RTE").mkdir()
    (root / "RTE" / "train.tsv").write_bytes(data)
    task = get_task("RTE")
    try:
        d = GlueDir(root).load(task, "train")
    except UserError as e:
        msg = str(e)
        assert "RTE/train.tsv" in msg and "\n" not in msg, msg
        return
    # accepted: every row is well formed and every label one of RTE's
    lines = [l for l in data.decode("utf-8").replace("\r\n", "\n").split("\n")[1:] if l != ""]
    assert len(d) == len(lines) and set(d.labels.tolist()) <= {0, 1}


@pytest.mark.hardening
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
