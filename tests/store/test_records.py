"""Result records (orchestrator/store/records.py): damaged records and records of the wrong types
are reported, never crash a reader; a record copied under another name is not a second result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import BAD_INPUT_CASES
from hostile import SETTINGS, cli, junk
from hypothesis import given, settings, strategies as st
from synthetic import make_record

from orchestrator.errors import UserError
from orchestrator.store import records as store

record_junk = st.one_of(junk, st.lists(junk, max_size=3), st.dictionaries(st.sampled_from(["score", "metrics", "epoch"]),
                                                                      junk, max_size=3))


@pytest.mark.bad_input
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


def _write(run: Path, rec: dict, name: str | None = None) -> None:
    d = store.trials_dir(run)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name or rec['trial_id']}.json").write_text(json.dumps(rec))


BAD_FIELDS = [("evals", [{"score": "high", "metrics": {}}]), ("evals", [{"score": 1.0, "metrics": {"acc": "x"}}]),
              ("evals", [{"score": 1.0, "metrics": [1]}]), ("status", ["completed"]), ("model", 7),
              ("group", None), ("attempts", "two"), ("error", 3), ("trial", {"model": 1}), ("evals", {"a": 1}),
              ("n_params", "many"), ("settings_hash", 5), ("evals", [{"score": True, "metrics": {}}])]


@pytest.mark.hardening
@pytest.mark.parametrize("key, value", BAD_FIELDS)
def test_records_of_the_wrong_types_are_reported_not_crashed_on(tmp_path, key, value):
    from orchestrator.cli.console import status_text
    from orchestrator.results.load import load_run

    good = make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0, 81.0])
    _write(tmp_path, good)
    bad = {**make_record("BERT-Tiny", "SST-2", 16, 1e-4, [70.0]), key: value}
    _write(tmp_path, bad)
    recs, problems = store.read_records(tmp_path)
    assert [r["trial_id"] for r in recs] == [good["trial_id"]] and len(problems) == 1, problems
    assert "\n" not in problems[0]
    assert "BERT-Tiny" in status_text(tmp_path)
    assert len(load_run(tmp_path).problems) == 1
    rc, _, err = cli(["leaderboard", tmp_path, "--out", tmp_path / "export"])
    assert rc == 0 and "skipped" in err, err


@pytest.mark.hardening
def test_a_record_copied_under_another_name_is_not_a_second_result(tmp_path):
    rec = make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0])
    _write(tmp_path, rec)
    _write(tmp_path, rec, name=rec["trial_id"].replace("_s0", "_s1"))
    recs, problems = store.read_records(tmp_path)
    assert len(recs) == 1 and len(problems) == 1 and "file name" in problems[0]
