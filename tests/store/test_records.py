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


# ----------------------------------------------------------------------------- records that lie

def _lb_cli(run: Path) -> tuple[int, str, str]:
    return cli(["leaderboard", run, "--out", run / "export"])


@pytest.mark.hardening
def test_a_record_whose_id_is_not_its_configuration_is_skipped_never_wins(tmp_path):
    good = make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0])
    liar = make_record("BERT-Tiny", "SST-2", 32, 1e-4, [99.0], seed=1)
    liar["trial"]["learning_rate"] = 0.3      # its id and file name still say lr1e-4
    _write(tmp_path, good)
    _write(tmp_path, liar)
    recs, problems = store.read_records(tmp_path, cache=True)
    assert [r["trial_id"] for r in recs] == [good["trial_id"]]
    assert len(problems) == 1 and "\n" not in problems[0]
    assert f"{liar['trial_id']}.json" in problems[0] and "lr3e-1" in problems[0], problems
    rc, out, err = _lb_cli(tmp_path)
    assert rc == 0 and "99.0" not in out and "80.0" in out
    assert [line for line in err.splitlines() if "skipped" in line] == [f"glue-sweep: skipped {problems[0]}"]


@pytest.mark.hardening
@pytest.mark.parametrize("task, metrics, score", [
    ("SST-2", {"accuracy": 52.7}, 1e6),                     # far above its own accuracy
    ("SST-2", {"accuracy": 52.7}, 52.9),                     # more than rounding
    ("MRPC", {"f1": 90.0, "accuracy": 80.0}, 90.0),          # one metric of the pair, not their mean
    ("MNLI", {"accuracy_m": 80.0}, 80.0),                    # a headline without all its metrics
    ("SST-2", {"accuracy": float("nan")}, 52.7)])             # a score beside metrics that are not numbers
def test_a_score_that_is_not_the_headline_of_its_metrics_is_skipped(tmp_path, task, metrics, score):
    good = make_record("BERT-Tiny", task, 32, 1e-4, [50.0])
    liar = make_record("BERT-Tiny", task, 16, 1e-4, [50.0, 51.0])
    liar["evals"][1].update(metrics=metrics, score=score)
    _write(tmp_path, good)
    _write(tmp_path, liar)
    recs, problems = store.read_records(tmp_path, cache=True)
    assert [r["trial_id"] for r in recs] == [good["trial_id"]]
    assert len(problems) == 1 and "\n" not in problems[0] and f"{liar['trial_id']}.json" in problems[0]
    assert "headline" in problems[0], problems
    rc, out, err = _lb_cli(tmp_path)
    assert rc == 0 and "50.0" in out and len([line for line in err.splitlines() if "skipped" in line]) == 1


def test_records_that_tell_the_truth_are_kept():
    from orchestrator.config import TrialConfig, make_trial

    within = make_record("BERT-Tiny", "MRPC", 32, 1e-4, [80.0])
    within["evals"][0]["score"] = 80.04                      # rounding
    sampled_twice = make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0])
    sampled_twice["trial_id"] += "_r2"                       # optuna's second sample of one configuration
    random = make_record("BERT-Tiny", "RTE", 32, 5.4e-5, [60.0], init="random")
    cfg = TrialConfig(model="google/bert_uncased_L-2_H-128_A-2", task="RTE", batch_size=32, learning_rate=5e-5,
                      epochs=4, init="random", training="distill", teacher="/t/teacher", transfer=("train",),
                      temperature=2.0)
    t = make_trial(cfg, "BERT-Tiny")
    distilled = {**store.new_record(t, "s", t.label), "status": "completed",
                 "evals": [{"epoch": 1.0, "step": 1, "metrics": {"accuracy": 61.0}, "score": 61.0}]}
    old_id = make_record("BERT-Tiny", "RTE", 32, 5.4e-5, [60.0], seed=2)
    old_id["trial_id"] = old_id["trial_id"].replace("lr5.4e-5", "lr5e-5")   # ids as written before exact rates
    for rec in (within, sampled_twice, random, distilled, old_id):
        assert store.check_record(rec) is None, (rec["trial_id"], store.check_record(rec))
    nan = make_record("BERT-Tiny", "RTE", 32, 1e-4, [float("nan")])   # never ranked: not a lie
    assert store.check_record(nan) is None


DEEP = "[" * 200_000


@pytest.mark.hardening
def test_deeply_nested_json_is_one_skipped_line_in_every_reader(tmp_path):
    from orchestrator.results.kinds import read_teachers

    good = make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0])
    _write(tmp_path, good)
    (store.trials_dir(tmp_path) / "BERT-Tiny__SST-2__bs16_lr1e-4_s0.json").write_text(DEEP)
    (tmp_path / "teachers.json").write_text(DEEP)
    (tmp_path / store.DATA_FILE).write_text(DEEP)
    recs, problems = store.read_records(tmp_path, cache=True)
    assert len(recs) == 1 and len(problems) == 1 and "nested too deeply" in problems[0], problems
    assert read_teachers(tmp_path) == [] and store.data_source(tmp_path) == (None, None)
    rc, out, err = cli(["status", tmp_path])
    assert rc == 0 and "BERT-Tiny" in out and "1 unreadable record(s) skipped" in out and "Traceback" not in err
    rc, out, err = _lb_cli(tmp_path)
    assert rc == 0 and "BERT-Tiny" in out and "Traceback" not in err
    assert [line for line in err.splitlines() if "skipped" in line] == [f"glue-sweep: skipped {problems[0]}"]
    store.record_path(tmp_path, good["trial_id"]).write_text(DEEP)   # nothing readable left: one line, exit 2
    for argv in (["status", tmp_path], ["leaderboard", tmp_path, "--out", tmp_path / "export"]):
        rc, out, err = cli(argv)
        assert rc == 2 and err.count("\n") == 1 and "nested too deeply" in err, (argv, err)


def test_a_speedups_file_nested_too_deeply_is_one_line(tmp_path):
    (tmp_path / "speedups.json").write_text(DEEP)
    _write(tmp_path, make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0]))
    rc, _, err = cli(["leaderboard", tmp_path, "--speedups", tmp_path / "speedups.json"])
    assert rc == 2 and err.count("\n") == 1 and "speedups.json" in err, err


# ----------------------------------------------------------------------------- the records' cache

def _counting_reads(monkeypatch) -> list:
    seen = []
    real = store._read_one

    def counted(path):
        seen.append(Path(str(path)).name)
        return real(path)

    monkeypatch.setattr(store, "_read_one", counted)
    return seen


def test_the_cache_reads_again_only_the_files_that_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "RACY_S", 0.0)
    recs = [make_record("BERT-Tiny", "SST-2", bs, 1e-4, [80.0 + bs / 100]) for bs in (8, 16, 32)]
    for r in recs:
        store.write_record(tmp_path, r)
    liar = {**make_record("BERT-Tiny", "RTE", 32, 1e-4, [60.0]), "status": "done"}
    _write(tmp_path, liar)
    first = store.read_records(tmp_path, cache=True)
    assert (tmp_path / store.CACHE_FILE).is_file()
    seen = _counting_reads(monkeypatch)
    assert store.read_records(tmp_path, cache=True) == first and seen == []           # all from the cache
    store.write_record(tmp_path, {**recs[0], "status": "stopped"})        # rewritten, as the recorder does
    store.record_path(tmp_path, recs[1]["trial_id"]).unlink()
    again, problems = store.read_records(tmp_path, cache=True)
    assert seen == [f"{recs[0]['trial_id']}.json"]
    assert [r["trial_id"] for r in again] == sorted([recs[0]["trial_id"], recs[2]["trial_id"]])
    assert {r["status"] for r in again} == {"stopped", "completed"} and problems == first[1] and len(problems) == 1
    moved = tmp_path.parent / "moved"
    tmp_path.rename(moved)   # a skipped file is named where it is now
    assert store.read_records(moved, cache=True)[1] == [problems[0].replace(str(tmp_path), str(moved))]


def test_a_cache_that_cannot_be_trusted_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "RACY_S", 0.0)
    rec = make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0])
    store.write_record(tmp_path, rec)
    want = store.read_records(tmp_path, cache=True)
    cache = tmp_path / store.CACHE_FILE
    seen = _counting_reads(monkeypatch)
    monkeypatch.setattr(store, "CACHE_VERSION", store.CACHE_VERSION + 1)   # other rules: every file again
    assert store.read_records(tmp_path, cache=True) == want and len(seen) == 1
    cache.write_text("not parquet")
    assert store.read_records(tmp_path, cache=True) == want and len(seen) == 2
    monkeypatch.setattr(store, "RACY_S", 3600.0)   # a file changed within the timestamps' granularity: read again
    store.read_records(tmp_path, cache=True)
    store.read_records(tmp_path, cache=True)
    assert len(seen) == 4


def test_status_and_leaderboard_read_each_record_once(tmp_path, monkeypatch):
    from orchestrator.cli.console import status_text
    from orchestrator.results.export import export

    for bs in (8, 16):
        store.write_record(tmp_path, make_record("BERT-Tiny", "SST-2", bs, 1e-4, [80.0]))
    seen = _counting_reads(monkeypatch)
    monkeypatch.setattr(store, "RACY_S", 3600.0)   # no help from the cache
    assert "BERT-Tiny" in status_text(tmp_path)
    assert sorted(seen) == sorted(p.name for p in store.trials_dir(tmp_path).glob("*.json"))
    seen.clear()
    export(tmp_path, ("csv", "md", "json"), tmp_path / "export")
    assert len(seen) == 2
