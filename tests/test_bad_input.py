"""A bad-input corpus, generated: sweep specs, GLUE TSV files and command lines. Every case
must end in one clear line (UserError / exit code 2), never a traceback, and write nothing."""

from __future__ import annotations

import copy
import io
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import BAD_INPUT_CASES
from orchestrator import spec as S
from orchestrator.cli import main
from orchestrator.data import GlueDir
from orchestrator.errors import UserError
from orchestrator.tasks import get_task

SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

VALID = {"name": "ok", "models": ["BERT-Tiny", {"name": "BERT-Mini", "init": "random"}], "tasks": ["SST-2", "RTE"],
         "search": {"mode": "grid", "batch_size": [16, 32], "learning_rate": [1e-4, 5e-5]}, "epochs": 2,
         "seeds": [0], "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
         "resources": {"cpus_per_trial": 1}, "max_train_examples": 100}

junk = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                 st.text(max_size=30), st.lists(st.integers(-5, 300), max_size=4),
                 st.dictionaries(st.text(max_size=8), st.integers(), max_size=3))


def _paths(d, prefix=()):
    out = [prefix] if prefix else []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated_specs(draw):
    spec = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(spec)
        path = draw(st.sampled_from(paths)) if paths else ()
        op = draw(st.sampled_from(["replace", "delete", "add_key", "typo"]))
        parent = spec
        for k in path[:-1]:
            parent = parent[k]
        last = path[-1] if path else None
        if last is None or not isinstance(parent, (dict, list)):
            continue
        if op == "replace":
            parent[last] = draw(junk)
        elif op == "delete" and isinstance(parent, dict):
            del parent[last]
        elif op == "add_key" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(junk)
        elif op == "typo" and isinstance(parent, dict) and isinstance(last, str) and len(last) > 1:
            i = draw(st.integers(0, len(last) - 1))
            parent[last[:i] + last[i + 1:]] = parent.pop(last)
    return spec


@settings(max_examples=400, **SETTINGS)
@given(mutated_specs())
def test_sweep_specs_either_parse_or_fail_with_one_line(spec):
    BAD_INPUT_CASES["sweep specs"] = BAD_INPUT_CASES.get("sweep specs", 0) + 1
    text = yaml.safe_dump(spec)
    try:
        sw = S.parse(text, "fuzz.yaml")
    except UserError as e:
        msg = str(e)
        assert msg.startswith("fuzz.yaml") and "\n" not in msg and len(msg) < 600, msg
        return
    # accepted: then it really is a valid sweep with every value checked
    trials = sw.trials()
    assert trials and all(t.config.batch_size > 0 and t.config.learning_rate > 0 for t in trials)


@settings(max_examples=150, **SETTINGS)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_a_sweep_file(tmp_path_factory, data):
    BAD_INPUT_CASES["sweep files (bytes)"] = BAD_INPUT_CASES.get("sweep files (bytes)", 0) + 1
    p = tmp_path_factory.mktemp("spec") / "x.yaml"
    p.write_bytes(data)
    rc, out, err = _cli(["plan", str(p)])
    assert rc == 2 and err.count("\n") == 1 and err.startswith("glue-sweep: error:"), err


# --- TSV files ------------------------------------------------------------------------------

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


# --- command lines --------------------------------------------------------------------------

def _cli(argv):
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            rc = main(argv)
    except SystemExit as e:
        rc = e.code
    return rc, out.getvalue(), err.getvalue()


FLAGS = ["--model", "--task", "--batch-size", "--lr", "--epochs", "--seed", "--max-train-examples", "--init",
         "--max-length", "--out", "--threads", "--eval-every-steps", "--bogus", "-x"]
VALUES = ["BERT-Tiny", "L-3_H-7", "SST-2", "AX", "nosuchtask", "0", "-1", "1e-4", "nan", "inf", "abc", "", "random",
          "pretrained", "99999999999999999999", "4", "/nonexistent/dir", "../x"]


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
