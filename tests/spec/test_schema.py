"""The sweep file's schema (orchestrator/spec/schema.py, read by the strict loader): generated and
hostile specs either parse into a valid sweep or are refused with one line naming file:line,
quickly; the strict parser's cases one by one."""

from __future__ import annotations

import copy
import time

import pytest
import yaml
from conftest import BAD_INPUT_CASES
from hostile import BASE, SETTINGS, junk
from hypothesis import given, settings, strategies as st

from orchestrator.errors import UserError
from orchestrator.spec import sweep as S

VALID = {"name": "ok", "models": ["BERT-Tiny", {"name": "BERT-Mini", "init": "random"}], "tasks": ["SST-2", "RTE"],
         "search": {"mode": "grid", "batch_size": [16, 32], "learning_rate": [1e-4, 5e-5]}, "epochs": 2,
         "seeds": [0], "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
         "resources": {"cpus_per_trial": 1}, "max_train_examples": 100}


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


@pytest.mark.bad_input
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


INT_PATHS = [("search", "batch_size", 0), ("max_train_examples",), ("seeds", 0), ("epochs",)]
BOOL_WORDS = ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "On"]
YAML11_NUMBERS = ["1:30", "0:20:00", "0b101", "1_000", "2026-01-01", "+.5e", "1e", "0x", "1,000"]


def _set(spec: dict, path: tuple, value) -> dict:
    spec = copy.deepcopy(spec)
    node = spec
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return spec


@st.composite
def hostile_specs(draw):
    """(class, YAML text) of a spec that must be refused."""
    kind = draw(st.sampled_from(["duplicate key", "empty value", "non-integer", "yaml 1.1 boolean", "yaml 1.1 number",
                                 "contradicting model", "absurd value", "unimplemented option", "bad name",
                                 "alias bomb", "recursive anchor", "huge grid"]))
    spec = copy.deepcopy(VALID)
    if kind == "duplicate key":
        key = draw(st.sampled_from(sorted(VALID)))
        return kind, yaml.safe_dump(spec, sort_keys=False) + yaml.safe_dump({key: spec[key]})
    if kind == "empty value":
        path = draw(st.sampled_from([p for p in _paths(VALID) if p[0] != "max_train_examples"]))
        return kind, yaml.safe_dump(_set(spec, path, draw(st.sampled_from([None, [], {}, ""]))))
    if kind == "non-integer":
        path = draw(st.sampled_from(INT_PATHS[:3]))
        return kind, yaml.safe_dump(_set(spec, path, draw(st.integers(1, 512)) + draw(st.sampled_from([0.0, 0.5]))))
    if kind == "yaml 1.1 boolean":
        key = draw(st.sampled_from(["keep_best_checkpoint", "trust_remote_code"]))
        return kind, yaml.safe_dump(spec) + f"{key}: {draw(st.sampled_from(BOOL_WORDS))}\n"
    if kind == "yaml 1.1 number":
        key = draw(st.sampled_from(["epochs", "max_train_examples", "max_length", "retries", "eval_every"]))
        text = yaml.safe_dump({k: v for k, v in spec.items() if k != key})
        return kind, text + f"{key}: {draw(st.sampled_from(YAML11_NUMBERS))}\n"
    if kind == "contradicting model":
        name, shape = draw(st.sampled_from([("BERT-Tiny", (2, 128)), ("BERT-Mini", (4, 256)), ("BERT-Small", (4, 512))]))
        layers = draw(st.sampled_from([2, 4, 6, 8]))
        hidden = draw(st.sampled_from([128, 256, 512, 768]).filter(lambda h: (layers, h) != shape))
        return kind, yaml.safe_dump(_set(spec, ("models",), [{"name": name, "layers": layers, "hidden": hidden}]))
    if kind == "absurd value":
        path, value = draw(st.sampled_from([
            (("search", "learning_rate", 0), draw(st.floats(1, 1e9))),
            (("search", "learning_rate", 0), -draw(st.floats(1e-9, 1))),
            (("epochs",), draw(st.integers(101, 10 ** 9))),
            (("search", "batch_size", 0), draw(st.integers(8193, 10 ** 12))),
            (("seeds",), draw(st.integers(1001, 10 ** 12)))]))
        return kind, yaml.safe_dump(_set(spec, path, value))
    if kind == "unimplemented option":
        return kind, yaml.safe_dump({**spec, "keep_best_checkpoint": True})
    if kind == "bad name":
        name = draw(st.sampled_from([True, False, None, "", " ", "a/b", "../x", "x" * draw(st.integers(101, 400)), 7]))
        return kind, yaml.safe_dump({**spec, "name": name})
    if kind == "alias bomb":
        levels, width = draw(st.integers(6, 12)), draw(st.integers(8, 12))
        doc = "name: &a0 [" + ", ".join(["x"] * width) + "]\n"
        for i in range(1, levels):
            doc += f"k{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]\n"
        return kind, doc
    if kind == "recursive anchor":
        key = draw(st.sampled_from(["models", "search", "tasks", "description"]))
        body = draw(st.sampled_from(["&r [*r]", "&r {a: *r}", "&r [1, [2, *r]]"]))
        return kind, yaml.safe_dump({k: v for k, v in spec.items() if k != key}) + f"{key}: {body}\n"
    n = draw(st.integers(240, 6000))   # huge grid: 24 miniatures x 9 tasks x 2 x n > 100,000 trials
    lrs = ", ".join(f"{i + 1}e-9" for i in range(n))
    return kind, f"name: g\nmodels: miniatures\ntasks: all\nsearch: {{batch_size: [8, 16], learning_rate: [{lrs}]}}\n"


@pytest.mark.bad_input
@settings(max_examples=300, **SETTINGS)
@given(hostile_specs())
def test_hostile_specs_are_refused_in_one_line_quickly(case):
    kind, text = case
    BAD_INPUT_CASES[f"hostile specs: {kind}"] = BAD_INPUT_CASES.get(f"hostile specs: {kind}", 0) + 1
    t0 = time.monotonic()
    with pytest.raises(UserError) as e:
        S.parse(text, "fuzz.yaml")
    msg = str(e.value)
    assert msg.startswith("fuzz.yaml") and "\n" not in msg and len(msg) < 600, (kind, msg)
    assert time.monotonic() - t0 < 10, kind


STRICT_CASES = [
    ("name: m\nname: n\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", "s.yaml:2", "duplicate key 'name'"),
    (BASE + "search: {batch_size: [16], batch_size: [32]}\n", "s.yaml:4", "duplicate key"),
    (BASE + "search: []\n", "s.yaml:4", "empty"),
    (BASE + "search:\n  batch_size:\n", "s.yaml:5", "empty"),
    (BASE + "seeds: []\n", "s.yaml:4", "empty"),
    (BASE + "data: {glue_dir: ''}\n", "s.yaml:4", "empty"),
    ("name:\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", "s.yaml:1", "empty"),
    ("name: true\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", "s.yaml:1", "must be letters"),
    ("name: yes\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", None, None),   # YAML 1.2: the string 'yes', a fine name
    ("name: " + "x" * 300 + "\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", "s.yaml:1", "at most 100"),
    ("name: m\nmodels: [{name: BERT-Tiny, layers: 4}]\ntasks: [SST-2]\n", "s.yaml:2", "contradicts"),
    ("name: m\nmodels: [{name: BERT-Mini, hidden: 128}]\ntasks: [SST-2]\n", "s.yaml:2", "contradicts"),
    ("name: m\nmodels: [{layers: [2], hidden: [128.0]}]\ntasks: [SST-2]\n", "s.yaml:2", "whole numbers"),
    (BASE + "max_train_examples: 100.0\n", "s.yaml:4", "whole number"),
    (BASE + "search: {batch_size: [32.0]}\n", "s.yaml:4", "whole number"),
    (BASE + "epochs: 1:30\n", "s.yaml:4", "expected a number"),
    (BASE + "trust_remote_code: yes\n", "s.yaml:4", "true or false"),
    (BASE + "keep_best_checkpoint: on\n", "s.yaml:4", "true or false"),
    (BASE + "keep_best_checkpoint: true\n", "s.yaml:4", "not implemented"),
    (BASE + "search: {learning_rate: [1000]}\n", "s.yaml:4", "must be below 1"),
    (BASE + "search: {learning_rate: [1]}\n", "s.yaml:4", "must be below 1"),
    (BASE + "search: {mode: optuna, learning_rate: {low: 1e-5, high: 2}}\n", "s.yaml:4", "between 0 and 1"),
    (BASE + "epochs: 1000\n", "s.yaml:4", "at most 100"),
    (BASE + "search: {batch_size: [100000]}\n", "s.yaml:4", "must be below"),
    (BASE + "seeds: 1000000000\n", "s.yaml:4", "between 1 and 1000"),
    (BASE + "distill: {teacher: t, temperature: 1e308}\n", "s.yaml:4", "at most 100"),
    (BASE + "distill: {teacher: t, temperature: 100.5}\n", "s.yaml:4", "at most 100"),
    (BASE + "distill: {teacher: t, alpha: 1.5}\n", "s.yaml:4", "between 0 and 1"),
    (BASE + "distill: {teacher: t, alpha: 1e308}\n", "s.yaml:4", "between 0 and 1"),
    ("a: &a [*a]\n", "s.yaml:1", "recursive anchor"),
    ("name: &n [m, *n]\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n", "s.yaml:1", "recursive anchor"),
]


@pytest.mark.hardening
@pytest.mark.parametrize("text, where, words", STRICT_CASES)
def test_strict_spec_parser(text, where, words):
    if where is None:
        assert S.parse(text, "s.yaml").name == "yes"
        return
    with pytest.raises(UserError) as e:
        S.parse(text, "s.yaml")
    msg = str(e.value)
    assert msg.startswith(where + ":") and words in msg and "\n" not in msg, msg


@pytest.mark.hardening
def test_long_value_lists_are_checked_linearly():
    vals = ", ".join(f"{i + 1}e-9" for i in range(4000))
    t0 = time.monotonic()
    with pytest.raises(UserError, match="repeats 1e-09"):
        S.parse(BASE + f"search: {{batch_size: [8], learning_rate: [{vals}, 1e-9]}}\n", "s.yaml")
    assert time.monotonic() - t0 < 20
