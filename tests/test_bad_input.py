"""A bad-input corpus, generated: sweep specs, GLUE TSV files and command lines. Every case
must end in one clear line (UserError / exit code 2), never a traceback, and write nothing."""

from __future__ import annotations

import copy
import io
import time
from contextlib import redirect_stderr, redirect_stdout

import pytest
import yaml
from conftest import BAD_INPUT_CASES
from hypothesis import HealthCheck, given, settings, strategies as st

from orchestrator.cli.main import main
from orchestrator.data.sources import GlueDir
from orchestrator.errors import UserError
from orchestrator.registry.tasks import get_task
from orchestrator.spec import sweep as S

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


# --- hostile specs, one class at a time ------------------------------------------------------
# Each class of mistake the strict parser refuses (yamlstrict, spec): every generated case must
# be refused with one line naming the file, quickly; none may be accepted.

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


# --- result records ------------------------------------------------------------------------

record_junk = st.one_of(junk, st.lists(junk, max_size=3), st.dictionaries(st.sampled_from(["score", "metrics", "epoch"]),
                                                                      junk, max_size=3))


@settings(max_examples=200, **SETTINGS)
@given(st.lists(st.tuples(st.sampled_from(["trial_id", "group", "model", "trial", "status", "evals", "attempts",
                                           "error", "n_params", "settings_hash", "schema", "evals.0", "evals.0.metrics",
                                           "evals.0.score", "trial.learning_rate", "trial.batch_size", "eval_every"]), record_junk),
                min_size=1, max_size=3), st.booleans())
def test_damaged_records_are_reported_never_crash_a_reader(tmp_path_factory, damage, rename):
    from synthetic import make_record

    from orchestrator.cli.console import status_text
    from orchestrator.results.load import load_run
    from orchestrator.store import records as store

    BAD_INPUT_CASES["result records"] = BAD_INPUT_CASES.get("result records", 0) + 1
    run = tmp_path_factory.mktemp("run")
    rec = make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0, 81.5])
    if any(p == "eval_every" for p, _ in damage):   # an old (schema 1) record: the configuration at the top
        rec = {**{k: v for k, v in rec.items() if k not in ("trial", "schema")}, **rec["trial"]}
    for path, value in damage:
        node, keys = rec, path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) and k.isdigit() and int(k) < len(node) else (
                node.get(k) if isinstance(node, dict) else None)
            if not isinstance(node, (dict, list)):
                break
        else:
            if isinstance(node, dict):
                node[keys[-1]] = value
            elif isinstance(node, list) and keys[-1].isdigit() and int(keys[-1]) < len(node):
                node[int(keys[-1])] = value
    (run / "trials").mkdir()
    tid = rec.get("trial_id")
    name = ("other" if rename or not isinstance(tid, str) or "/" in tid or not tid else tid) + ".json"
    (run / "trials" / name).write_text(__import__("json").dumps(rec, default=str))
    recs, problems = store.read_records(run)
    assert len(recs) + len(problems) == 1 and all("\n" not in p for p in problems)
    for read in (load_run, status_text):   # a table of what is usable, or one line saying nothing is
        try:
            read(run)
        except UserError as e:
            assert not recs and "\n" not in str(e)


# --- submission zips -----------------------------------------------------------------------

@settings(max_examples=100, **SETTINGS)
@given(st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=6), st.integers(0, 10 ** 6))
def test_damaged_zips_are_refused_in_one_line(tmp_path_factory, real_glue_dir, flips, cut):
    import zipfile

    BAD_INPUT_CASES["submission zips"] = BAD_INPUT_CASES.get("submission zips", 0) + 1
    p = tmp_path_factory.mktemp("zip") / "sub_INCOMPLETE.zip"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("WNLI.tsv", "index\tprediction\n" + "".join(f"{i}\t{i % 2}\n" for i in range(146)))
    raw = bytearray(p.read_bytes())
    for at, value in flips:
        raw[at % len(raw)] = value
    p.write_bytes(bytes(raw[:max(1, len(raw) - cut % (len(raw) + 1))] if cut % 3 == 0 else raw))
    rc, out, err = _cli(["submit", "--check", str(p), "--glue-dir", str(real_glue_dir)])
    assert rc in (0, 1, 2) and "Traceback" not in err, err
    if rc == 2:
        assert err.rstrip().splitlines()[-1].startswith("glue-sweep: error:"), err


# --- cluster addresses ---------------------------------------------------------------------

@settings(max_examples=50, **SETTINGS)
@given(st.sampled_from(["", "ray://", "tcp://", "http://"]), st.sampled_from(["127.0.0.1", "[::1]", "", "[::1", ":"]),
       st.text(alphabet="0123456789-+:abx[]", max_size=8))
def test_malformed_addresses_are_refused_in_one_line(tmp_path_factory, monkeypatch, scheme, host, port):
    BAD_INPUT_CASES["cluster addresses"] = BAD_INPUT_CASES.get("cluster addresses", 0) + 1
    root = tmp_path_factory.mktemp("addr")
    (root / "glue" / "SST-2").mkdir(parents=True)
    (root / "glue" / "SST-2" / "train.tsv").write_text("sentence\tlabel\nbad\t9\n")   # refused at the latest here
    spec = root / "s.yaml"
    spec.write_text(f"name: a\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nresults: {root / 'results'}\n"
                    f"data: {{glue_dir: {root / 'glue'}}}\n")
    rc, out, err = _cli(["run", str(spec), "--address", f"{scheme}{host}:{port}" if port or host else scheme or "x:"])
    assert rc == 2 and err.count("\n") == 1 and err.startswith("glue-sweep: error:"), err
    assert not (root / "results").exists()
