"""Sweeps on clusters: the result store on any storage (a local path, an S3-compatible server on
loopback), what travels to the workers (features, vocabulary, absolute paths), GPU placement,
Ray Job staging, cluster addresses refused with one line, and two sweeps started at once.

The two-node Ray Job test (a worker node that sees no data) is in tests/faults/test_cluster_job.py.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import BAD_INPUT_CASES
from hostile import BASE, SETTINGS, _cli, cli, one_line
from hypothesis import given, settings, strategies as st
from test_driver import REPO, run_cli, write_spec

from orchestrator.config import TrialConfig, make_trial
from orchestrator.errors import UserError
from orchestrator.registry import models
from orchestrator.results.load import load_run
from orchestrator.store import location as storage, records as store


def _record(tid_lr: float, status="completed", score=80.0) -> dict:
    cfg = TrialConfig(model="google/bert_uncased_L-2_H-128_A-2", task="SST-2", batch_size=32, learning_rate=tid_lr,
                      epochs=1)
    rec = store.new_record(make_trial(cfg, "BERT-Tiny"), "s", "BERT-Tiny")
    rec.update(status=status, evals=[{"epoch": 1.0, "step": 10, "metrics": {"accuracy": score}, "score": score,
                                      "train_loss": 0.5, "elapsed_s": 1.0}])
    return rec


# --- storage ----------------------------------------------------------------------------------

def test_local_storage_writes_whole_files_and_lists_records_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loc = storage.at("store/run")            # relative: made absolute at once
    assert loc.local and loc.path == str(tmp_path / "store" / "run")
    store.write_record(loc, _record(1e-4))
    store.write_record(loc, _record(5e-5, score=70.0))
    (tmp_path / "store" / "run" / "trials" / ".partial.json.tmp").write_text("{")
    recs, problems = store.read_records("store/run")
    assert [r["evals"][0]["score"] for r in recs] == [80.0, 70.0] and not problems
    assert sorted(p.name for p in (tmp_path / "store" / "run" / "trials").iterdir()) == [
        ".partial.json.tmp", recs[0]["trial_id"] + ".json", recs[1]["trial_id"] + ".json"]


def test_s3_storage_holds_the_store_and_the_leaderboard_reads_it(s3_server):
    run = s3_server("unit/sweep")
    loc = storage.at(run)
    assert not loc.local and str(loc) == "s3://sweeps/unit/sweep"
    assert store.read_records(run) == ([], [])                  # nothing there yet: empty, no error
    store.write_record(run, _record(1e-4))
    store.write_record(run, _record(5e-5, status="running", score=85.0))
    store.write_record(run, _record(1e-4, score=82.0))          # rewritten whole (one PUT)
    loc.join("trials", "torn.json").write_text('{"trial_id": ')
    store.write_data_source(run, "/data/glue", None)
    recs, problems = store.read_records(run)
    assert len(recs) == 2 and len(problems) == 1 and "torn.json" in problems[0]
    assert {r["status"]: r["evals"][0]["score"] for r in recs} == {"completed": 82.0, "running": 85.0}
    assert store.data_source(run) == ("/data/glue", None)
    lb = load_run(run)
    assert lb.results.iloc[0]["score"] == pytest.approx(85.0)
    with pytest.raises(UserError, match=r"^run s3://sweeps/unit/empty does not exist$"):
        load_run(s3_server("unit/empty"))


def test_absolute_paths_travel_and_uris_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.absolute("glue") == str(tmp_path / "glue")
    assert storage.absolute("s3://b/p?scheme=http") == "s3://b/p?scheme=http"
    assert storage.absolute(None) is None


# --- what travels to the workers ---------------------------------------------------------------

def test_a_worker_with_no_data_cache_or_vocabulary_trains_from_the_shipment(tmp_path, monkeypatch, real_glue_dir,
                                                                            one_thread):
    from orchestrator.sweep.shipping import ShippedSource, pack, use_vocab
    from orchestrator.train.runner import prepare

    cfg = TrialConfig(model="google/bert_uncased_L-2_H-128_A-2", task="SST-2", batch_size=32, learning_rate=1e-4,
                      epochs=1, init="random", max_train_examples=64)
    ship = pack([cfg], str(real_glue_dir), None)
    assert ship.vocab and len(ship.encoded) == 3      # train, dev and test (the kept weights predict it), once each
    # the worker: no GLUE files, an empty feature cache, no vocabulary of its own
    ship.glue_dir = str(tmp_path / "no-such-glue")
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(models, "packaged_minilm", lambda: None)
    with pytest.raises(UserError, match="no uncased WordPiece vocabulary"):
        models.uncased_vocab()
    use_vocab(ship)
    p = prepare(cfg, ShippedSource(ship))
    assert p.cache_stats == {"shipped": 2} and len(p.train) == 64
    assert not (tmp_path / "empty-cache").exists()    # nothing read or written there


def test_a_worker_without_the_model_loads_the_shipped_weights(tmp_path, monkeypatch, real_glue_dir, one_thread):
    """A local pretrained model (here the packaged all-MiniLM-L6-v2) travels with the trials; a
    worker that has no copy writes the shipped files once, named by their content, and loads them."""
    import tempfile

    from orchestrator.sweep.shipping import ShippedSource, pack, use_models
    from orchestrator.train.runner import prepare

    cfg = TrialConfig(model="all-MiniLM-L6-v2", task="SST-2", batch_size=32, learning_rate=1e-4, epochs=1,
                      max_train_examples=32)
    original = models.local_path(models.resolve(cfg.model))
    ship = pack([cfg], str(real_glue_dir), None)
    assert set(ship.models) == {"all-MiniLM-L6-v2"} and "model.safetensors" in ship.models["all-MiniLM-L6-v2"]
    # the worker: no packaged model, no MODELS_DIR, no GLUE files
    monkeypatch.setattr(models, "packaged_minilm", lambda: None)
    monkeypatch.delenv("MODELS_DIR", raising=False)
    monkeypatch.setenv(models.SHIPPED_MODELS_ENV, "")   # so that what use_models sets is undone after the test
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ship.glue_dir = str(tmp_path / "no-such-glue")
    assert models.local_path(models.resolve(cfg.model)) is None
    use_models(ship)
    use_models(ship)                                   # a second trial on the node reuses the files
    shipped = models.local_path(models.resolve(cfg.model))
    assert shipped is not None and shipped.parent.parent == tmp_path
    assert len(list(tmp_path.glob("glue-sweep-models-*"))) == 1
    assert (shipped / "model.safetensors").read_bytes() == (original / "model.safetensors").read_bytes()
    p = prepare(cfg, ShippedSource(ship))
    assert p.cache_stats == {"shipped": 2} and p.model.config.hidden_size == 384


def test_a_trial_without_a_reserved_gpu_runs_on_the_cpu(monkeypatch):
    import ray

    from orchestrator.sweep import trainable

    class Ctx:
        def get_assigned_resources(self):
            return {"CPU": 2.0}

    monkeypatch.setattr(ray, "get_runtime_context", lambda: Ctx())
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    assert trainable.placement().device == "cpu" and trainable.placement().threads == 2
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [0])
    assert trainable.placement().device is None       # the GPU Ray gave it


def test_gpu_trials_follow_gpus_joining_the_cluster_or_declared_in_the_spec():
    from orchestrator.spec import sweep as S
    from orchestrator.sweep.driver import _resources
    from orchestrator.sweep.tune_jobs import as_tune

    base = "name: g\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nsearch: {batch_size: [32], learning_rate: [1e-4]}\n"
    sweep = S.parse(base)
    config = {"trial": as_tune(sweep.trials()[0], "BERT-Tiny")}
    gpus = [False]
    resources = _resources(sweep, lambda: gpus[0])
    assert resources(config) == {"cpu": 1}
    gpus[0] = True                                    # a GPU node joined
    assert 0 < resources(config)["gpu"] <= 1
    unit = {"trial": {**config["trial"], "members": [config["trial"]] * 4}}   # a fused unit of 4
    # BERT-Tiny is bound by host time: a trial takes 1/8, and so does a unit of 4 (one step's host time for all)
    assert resources(unit)["gpu"] == resources(config)["gpu"] == 0.125
    declared = S.parse(base + "resources: {gpus_per_trial: 0.5}\n")
    assert _resources(declared, lambda: False)(config) == {"cpu": 1.0, "gpu": 0.5}


# --- Ray Jobs and addresses ----------------------------------------------------------------------

def test_job_working_dir_carries_the_package_tasks_and_an_absolute_spec(tmp_path, monkeypatch, real_glue_dir):
    from orchestrator.spec import sweep as S
    from orchestrator.sweep import ray_job as job

    monkeypatch.chdir(tmp_path)
    (tmp_path / "glue").symlink_to(real_glue_dir)
    sweep = S.parse("name: j\nmodels: [BERT-Tiny]\ntasks: [SST-2]\ndata: {glue_dir: glue}\nresults: out\n")
    wd = job.stage(job.absolute_spec(sweep), tmp_path / "wd")
    assert (wd / "orchestrator" / "cli" / "main.py").is_file() and (wd / "tasks" / "sst2.yaml").is_file()
    assert not list(wd.rglob("__pycache__"))
    shipped = S.load(wd / "sweep.yaml")
    assert shipped.glue_dir == str(tmp_path / "glue") and shipped.results == str(tmp_path / "out")
    monkeypatch.setenv("GLUE_DIR", "glue")
    monkeypatch.setenv("GLUE_SWEEP_CACHE", "/somewhere/local")
    monkeypatch.setenv("GLUE_SWEEP_FAULTS", "x")
    e = job.job_env()
    assert e["GLUE_DIR"] == str(tmp_path / "glue") and e["GLUE_SWEEP_FAULTS"] == "x" and "GLUE_SWEEP_CACHE" not in e


@pytest.mark.parametrize("how", ["--address", "RAY_ADDRESS"])
def test_ray_client_and_dashboard_addresses_give_one_line(tmp_path, real_glue_dir, how):
    spec = write_spec(tmp_path, "client", tmp_path / "results", real_glue_dir)
    for address, words in (("ray://127.0.0.1:10001", "submit it as a Ray Job"),
                           ("http://127.0.0.1:8265", "is a Ray dashboard address")):
        args, extra = (["--address", address], {}) if how == "--address" else ([], {"RAY_ADDRESS": address})
        r = run_cli(["run", str(spec)] + args, timeout=120, **extra)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and not (tmp_path / "results").exists()


def test_submit_uses_the_runs_own_data_source(tmp_path, monkeypatch):
    from orchestrator import submit
    from orchestrator.cli import main as cli

    run = tmp_path / "run"
    store.write_data_source(run, str(tmp_path), None)
    seen = {}

    def fake_submit(run_dir, model, source, *a, **k):
        seen["source"] = source.describe()
        raise UserError("stop here")

    monkeypatch.setattr(submit, "submit", fake_submit)
    monkeypatch.delenv("GLUE_DIR", raising=False)
    assert cli.main(["submit", str(run), "--model", "BERT-Tiny"]) == 2
    assert seen["source"] == f"GLUE directory {tmp_path}"
    cli.main(["submit", str(run), "--model", "BERT-Tiny", "--hub", "nyu-mll/glue"])   # told otherwise
    assert seen["source"] == "hub dataset nyu-mll/glue"


# --- bad input (marker bad_input), hardening (marker hardening), safety (marker safety) -----

@pytest.mark.bad_input
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


@pytest.mark.hardening
@pytest.mark.parametrize("address", ["127.0.0.1:notaport", "127.0.0.1:99999", "ray://host:-1", "[::1", ":"])
def test_malformed_addresses_are_one_line(tmp_path, address, real_glue_dir):
    spec = tmp_path / "s.yaml"
    spec.write_text(BASE + f"results: {tmp_path / 'results'}\ndata: {{glue_dir: {real_glue_dir}}}\n")
    rc, _, err = cli(["run", spec, "--address", address])
    assert rc == 2, err
    one_line(err)
    assert not (tmp_path / "results").exists()


@pytest.mark.hardening
def test_address_auto_with_a_stale_cluster_file_fails_at_once(tmp_path, monkeypatch, real_glue_dir):
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    (tmp_path / "ray").mkdir()
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}\n")
    from orchestrator.sweep.cluster import auto_address

    t0 = time.monotonic()
    with pytest.raises(UserError, match="stale"):
        auto_address()
    (tmp_path / "ray" / "ray_current_cluster").unlink()
    with pytest.raises(UserError, match="no running Ray cluster"):
        auto_address()
    assert time.monotonic() - t0 < 15


@pytest.mark.hardening
def test_disk_full_at_lock_time_is_one_line_and_leaves_no_lock(tmp_path, monkeypatch):
    from orchestrator.sweep.cluster import RunLock

    def full(*a):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(UserError, match="cannot lock .*No space left"):
        with RunLock(tmp_path / "results" / "m"):
            pass
    assert not (tmp_path / "results").exists()


@pytest.mark.hardening
def test_cpus_per_trial_beyond_every_node_is_one_line(monkeypatch):
    from orchestrator.sweep import cluster

    monkeypatch.setattr(cluster.ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 2.0}},
                                                       {"Alive": False, "Resources": {"CPU": 64.0}}])
    cluster.check_fits("s.yaml", 2, "auto")
    with pytest.raises(UserError, match="cpus_per_trial 3 is more than any node .* 2 CPUs"):
        cluster.check_fits("s.yaml", 3, "auto")
    with pytest.raises(UserError, match="gpus_per_trial 1"):
        cluster.check_fits("s.yaml", 1, 1.0)


PROBE = r"""
import json, os, stat, sys, urllib.request, urllib.error
os.environ["RAY_AUTH_MODE"] = "token"
from orchestrator.cli.preflight import LOCAL_ONLY_ENV   # what `glue-sweep run` sets for a local Ray (no Ray import)
os.environ.update(LOCAL_ONLY_ENV)
import psutil
from orchestrator.sweep.cluster import start_ray, dashboard_info
import ray
ctx, url = start_ray(None, 1, secure=True)
mine = {p.pid: p.name() for p in psutil.Process().children(recursive=True)}   # this Ray's processes only
listeners = sorted({(c.laddr.ip, mine[c.pid]) for c in psutil.net_connections("tcp")
                    if c.status == "LISTEN" and c.pid in mine})
info = dashboard_info(url, True)
token = open(info["token_file"]).read().strip()
def get(headers):
    req = urllib.request.Request(url + "/api/version", headers=headers)
    try:
        return urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
port = int(url.rsplit(":", 1)[1])
binds = sorted({c.laddr.ip for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port})
print(json.dumps({"url": url, "no_token": get({}), "bad_token": get({"Authorization": "Bearer nope"}),
                  "token": get({"Authorization": "Bearer " + token}), "binds": binds, "listeners": listeners,
                  "token_mode": stat.S_IMODE(os.stat(info["token_file"]).st_mode)}))
ray.shutdown()
"""


@pytest.mark.safety
def test_local_ray_listens_on_loopback_only_and_the_dashboard_needs_the_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["url"].startswith("http://127.0.0.1:")
    assert got["binds"] == ["127.0.0.1"]
    assert got["no_token"] == 401 and got["bad_token"] in (401, 403)   # refused either way
    assert got["token"] == 200
    # every listener of the local Ray (GCS, raylet, workers, agents, both Prometheus metrics
    # exporters) is on loopback, and the login token is readable by its owner only
    names = {n for _, n in got["listeners"]}
    assert {"gcs_server", "raylet"} <= names, got["listeners"]
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip, _ in got["listeners"]), got["listeners"]
    assert got["token_mode"] == 0o600
