"""Fused units in a sweep: which trials are grouped (``units.plan_units``), the ``fuse`` key,
the recorder writing one record per member (a member stopped early keeping its record), a real
sweep with ``fuse: auto``, and grouped ASHA stopping the same members of fused units as of
solo trials."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.errors import UserError
from orchestrator.spec.units import plan_units
from orchestrator.spec import sweep as S
from orchestrator.store import records as store

REPO = Path(__file__).resolve().parents[2]


def sweep_text(glue_dir, results, extra="", models="[{name: BERT-Tiny, init: random}]") -> str:
    return (f"name: fz\nmodels: {models}\ntasks: [SST-2, MRPC]\nsearch: {{batch_size: [16, 32], learning_rate: "
            f"[1e-4, 5e-5, 3e-5]}}\nepochs: 1\nmax_train_examples: 96\nresults: {results}\n"
            f"data: {{glue_dir: {glue_dir}}}\n{extra}")


def test_units_are_the_learning_rates_of_one_cell(real_glue_dir, tmp_path):
    sw = S.parse(sweep_text(real_glue_dir, tmp_path, "fuse: auto\n"))
    units = plan_units(sw.trials(), sw.fuse)
    assert sorted(len(u) for u in units) == [3, 3, 3, 3]          # 2 tasks x 2 batch sizes
    for u in units:
        cfgs = [t.config for t in u]
        assert len({(c.task, c.batch_size, c.seed) for c in cfgs}) == 1
        assert sorted(c.learning_rate for c in cfgs) == [3e-5, 5e-5, 1e-4]
    assert sorted(t.id for u in units for t in u) == sorted(t.id for t in sw.trials())
    assert all(len(u) == 1 for u in plan_units(sw.trials(), "off"))
    assert sorted(len(u) for u in plan_units(sw.trials(), "auto", max_members=2)) == [1, 1, 1, 1, 2, 2, 2, 2]


def test_a_three_seed_grid_fuses_one_unit_per_model_task_and_batch_size(real_glue_dir, tmp_path):
    """seeds: 3 -> the learning rates x seeds of a (model, task, batch size) cell are one unit;
    a cell over ``max_members`` is cut into near-equal units in seed order; compiled trials keep
    one seed a unit; fuse: off stacks nothing, as before."""
    text = (f"name: fz\nmodels: [{{name: BERT-Tiny, init: random}}]\ntasks: [SST-2, MRPC]\nsearch: {{batch_size: [16, 32], "
            f"learning_rate: [1e-4, 3e-5]}}\nepochs: 1\nmax_train_examples: 96\nseeds: 3\nresults: {tmp_path}\n"
            f"data: {{glue_dir: {real_glue_dir}}}\nfuse: on\n")
    sw = S.parse(text)
    units = plan_units(sw.trials(), sw.fuse)
    assert len(units) == 4 and sorted(len(u) for u in units) == [6, 6, 6, 6]   # 2 tasks x 2 batch sizes
    for u in units:
        cfgs = [t.config for t in u]
        assert len({(c.model, c.task, c.batch_size) for c in cfgs}) == 1
        assert sorted((c.learning_rate, c.seed) for c in cfgs) == [(lr, s) for lr in (3e-5, 1e-4) for s in (0, 1, 2)]
    assert sorted(t.id for u in units for t in u) == sorted(t.id for t in sw.trials())
    cut = plan_units(sw.trials(), "on", max_members=4)
    assert sorted(len(u) for u in cut) == [3] * 8                               # 6 a cell -> 3 + 3, not 4 + 2
    assert all([t.config.seed for t in u] == sorted(t.config.seed for t in u) for u in cut)
    assert {tuple(sorted({t.config.seed for t in u})) for u in cut} == {(0, 1), (1, 2)}
    compiled = S.parse(text.replace("fuse: on", "fuse: on\ncompile: true"))
    assert sorted(len(u) for u in plan_units(compiled.trials(), "on")) == [2] * 12   # the learning rates of one seed
    assert all(len({t.config.seed for t in u}) == 1 for u in plan_units(compiled.trials(), "on"))
    assert all(len(u) == 1 for u in plan_units(sw.trials(), "off"))


def test_only_bert_architecture_models_fuse(real_glue_dir, tmp_path):
    sw = S.parse(sweep_text(real_glue_dir, tmp_path, "fuse: auto\n", models="[DistilBERT]"))
    assert all(len(u) == 1 for u in plan_units(sw.trials(), "auto"))


def test_auto_on_cpu_workers_stacks_only_the_models_it_speeds_up(real_glue_dir, tmp_path):
    """fuse: auto on CPU-only workers stacks BERT-Tiny (2 x 128: measured 1.67x stacked) but not
    all-MiniLM-L6-v2 (6 x 384: 1.05x); on GPU workers, and with fuse: on, both stack; off stacks
    nothing."""
    from orchestrator.spec.units import fuses, pays_on_cpu

    sw = S.parse(sweep_text(real_glue_dir, tmp_path, models="[all-MiniLM-L6-v2, {name: BERT-Tiny, init: random}]"))
    assert pays_on_cpu("BERT-Tiny") and pays_on_cpu("BERT-Mini") and pays_on_cpu("BERT-Small")
    assert pays_on_cpu("google/bert_uncased_L-8_H-256_A-4") and pays_on_cpu("google/bert_uncased_L-12_H-128_A-2")
    assert not pays_on_cpu("all-MiniLM-L6-v2") and not pays_on_cpu("BERT-Medium") and not pays_on_cpu("BERT-Base")
    assert not pays_on_cpu("no-such-model")

    def sizes(fuse, gpu):
        out = {}
        for u in plan_units(sw.trials(), fuse, gpu=gpu):
            out.setdefault(u[0].config.model.split("/")[-1], []).append(len(u))
        return {m: sorted(v) for m, v in out.items()}

    tiny = next(m for m in sizes("off", True) if "MiniLM" not in m)
    mini = next(m for m in sizes("off", True) if "MiniLM" in m)
    assert sizes("auto", False) == {tiny: [3, 3, 3, 3], mini: [1] * 12}
    assert sizes("auto", True) == sizes("on", False) == sizes("on", True) == {tiny: [3, 3, 3, 3], mini: [3, 3, 3, 3]}
    assert sizes("off", False) == {tiny: [1] * 12, mini: [1] * 12}
    t = sw.trials()[0].config
    assert fuses(t, "on", gpu=False) and not fuses(t, "off", gpu=True)


def test_the_fuse_key(real_glue_dir, tmp_path):
    """auto unless a grid says off; an optuna sweep runs one trial per process (auto refused there)."""
    assert S.parse(sweep_text(real_glue_dir, tmp_path)).fuse == "auto"
    assert S.parse(sweep_text(real_glue_dir, tmp_path, "fuse: off\n")).fuse == "off"
    assert S.parse(sweep_text(real_glue_dir, tmp_path, "fuse: on\n")).fuse == "on"
    with pytest.raises(UserError, match=r"<sweep>:9: fuse must be auto, on or off, not 'sometimes'"):
        S.parse(sweep_text(real_glue_dir, tmp_path, "fuse: sometimes\n"))
    optuna = sweep_text(real_glue_dir, tmp_path).replace(
        "{batch_size: [16, 32], learning_rate: [1e-4, 5e-5, 3e-5]}",
        "{mode: optuna, trials: 4, batch_size: [16, 32], learning_rate: {low: 1e-5, high: 1e-4}}")
    assert S.parse(optuna).fuse == S.parse(optuna + "fuse: off\n").fuse == "off"
    for fuse in ("auto", "on"):
        with pytest.raises(UserError, match=rf"^<sweep>:9: fuse: {fuse} fuses a grid's learning rates; an optuna sweep "
                                            r"runs one trial per process \(leave fuse out\)$"):
            S.parse(optuna + f"fuse: {fuse}\n")


def test_the_recorder_writes_one_record_per_member(real_glue_dir, tmp_path):
    from orchestrator.sweep.recorder import StoreRecorder
    from orchestrator.sweep.tune_jobs import grid_jobs

    sw = S.parse(sweep_text(real_glue_dir, tmp_path, "fuse: auto\n"))
    job = grid_jobs(sw, [])[0][0]
    unit = next(t for t in job.trials if t.get("members"))
    trial = SimpleNamespace(trial_id="u1", config={"trial": unit, "runtime": {}}, status="RUNNING", error_file=None)
    rec = StoreRecorder(sw.name, sw.run_dir, {})
    rec.on_trial_start(0, [trial], trial)
    for i in range(len(unit["members"])):
        ev = {"epoch": 1.0, "step": 6, "metrics": {"accuracy": 50.0 + i}, "score": 50.0 + i, "train_loss": 0.7,
              "elapsed_s": 1.0}
        rec.on_trial_result(0, [trial], trial, {"member": i, "trial_status": "running", "eval_json": json.dumps(ev),
                                                "n_params": 10, "train_examples": 96})
    rec.on_trial_complete(0, [trial], trial)
    recs = {r["trial_id"]: r for r in store.read_records(sw.run_dir)[0]}
    ids = [m["config"]["learning_rate"] for m in unit["members"]]
    assert len(recs) == len(ids) == 3 and job.expected >= set(recs)
    for r in recs.values():
        assert r["status"] == "completed" and len(r["evals"]) == 1 and r["attempts"] == 1
    assert sorted(r["evals"][0]["score"] for r in recs.values()) == [50.0, 51.0, 52.0]


def test_the_progress_counts_a_unit_as_its_members(real_glue_dir, tmp_path, caplog):
    """Running and pending count trials, a fused unit as its members not yet finished, so the
    counts add up to the sweep (they counted units, and added up to less)."""
    from orchestrator.sweep.recorder import StoreRecorder
    from orchestrator.sweep.tune_jobs import grid_jobs

    sw = S.parse(sweep_text(real_glue_dir, tmp_path, "fuse: auto\n"))
    job = grid_jobs(sw, [])[0][0]
    units = [t for t in job.trials if t.get("members")][:2]
    a, b = (SimpleNamespace(trial_id=f"u{i}", config={"trial": u, "runtime": {}}, status="PENDING", error_file=None)
            for i, u in enumerate(units))
    caplog.set_level(logging.INFO, logger="orchestrator.sweep.recorder")
    rec = StoreRecorder(sw.name, sw.run_dir, {})
    n = len(units[0]["members"])
    assert n == len(units[1]["members"]) == 3

    def line():
        rec._progress([a, b], force=True)
        return caplog.messages[-1].split("trials: ")[1]
    assert line() == "0 finished; 0 running, 6 pending"
    a.status = "RUNNING"
    rec.on_trial_start(0, [a, b], a)
    assert line() == "0 finished; 3 running, 3 pending"
    ev = {"epoch": 1.0, "step": 6, "metrics": {"accuracy": 50.0}, "score": 50.0, "train_loss": 0.7, "elapsed_s": 1.0}
    rec.on_trial_result(0, [a, b], a, {"member": 0, "trial_status": "stopped", "eval_json": json.dumps(ev),
                                       "n_params": 10, "train_examples": 96})
    assert line() == "1 completed; 2 running, 3 pending"   # stopped at its last epoch: it completed


def test_a_member_that_starts_again_after_out_of_memory_keeps_only_its_new_evaluations(real_glue_dir, tmp_path):
    from orchestrator.sweep.recorder import StoreRecorder
    from orchestrator.sweep.tune_jobs import grid_jobs

    sw = S.parse(sweep_text(real_glue_dir, tmp_path, "fuse: auto\n"))
    unit = next(t for t in grid_jobs(sw, [])[0][0].trials if t.get("members"))
    trial = SimpleNamespace(trial_id="u1", config={"trial": unit, "runtime": {}}, status="RUNNING", error_file=None)
    rec = StoreRecorder(sw.name, sw.run_dir, {})
    rec.on_trial_start(0, [trial], trial)

    def report(score, restarts, accum=1, status="running"):
        ev = {"epoch": 0.5, "step": 3, "metrics": {"accuracy": score}, "score": score, "train_loss": 0.7,
              "elapsed_s": 1.0}
        rec.on_trial_result(0, [trial], trial, {"member": 1, "trial_status": status, "eval_json": json.dumps(ev),
                                                "n_params": 10, "train_examples": 96, "grad_accum": accum,
                                                "restarts": restarts})
    report(50.0, 0)
    report(51.0, 1)            # the unit was split: member 1 trains again from the start
    report(52.0, 1)
    report(53.0, 2, accum=2)   # alone, out of memory again: half the micro-batch
    r = rec._rec(trial, 1)
    assert [e["score"] for e in r["evals"]] == [53.0] and r["grad_accum"] == 2 and r["restarts"] == 2
    assert [e["score"] for e in rec._rec(trial, 0)["evals"]] == []


def test_a_member_stopped_early_keeps_its_record_when_its_unit_is_retried(real_glue_dir, tmp_path):
    """Member 1 is stopped after epoch 1 (its record says so at once); the unit then fails and
    is retried (without member 1), and at last fails for good: member 1's record stays stopped
    with its evaluation, the others are failed."""
    from orchestrator.sweep.recorder import StoreRecorder
    from orchestrator.sweep.tune_jobs import grid_jobs

    sw = S.parse(sweep_text(real_glue_dir, tmp_path, "fuse: auto\n").replace("epochs: 1", "epochs: 2"))
    unit = next(t for t in grid_jobs(sw, [])[0][0].trials if t.get("members"))
    trial = SimpleNamespace(trial_id="u1", config={"trial": unit, "runtime": {}}, status="RUNNING", error_file=None)
    rec = StoreRecorder(sw.name, sw.run_dir, {})
    rec.on_trial_start(0, [trial], trial)
    for i, status in enumerate(["running", "stopped", "running"]):
        ev = {"epoch": 1.0, "step": 6, "metrics": {"accuracy": 50.0 + i}, "score": 50.0 + i, "train_loss": 0.7,
              "elapsed_s": 1.0}
        rec.on_trial_result(0, [trial], trial, {"member": i, "trial_status": status, "eval_json": json.dumps(ev)})
    by_lr = lambda: {r["trial"]["learning_rate"]: r for r in store.read_records(sw.run_dir)[0]}   # noqa: E731
    lrs = [m["config"]["learning_rate"] for m in unit["members"]]
    assert [by_lr()[lr]["status"] for lr in lrs] == ["running", "stopped", "running"]
    rec.on_trial_recover(0, [trial], trial)
    rec.on_trial_start(0, [trial], trial)
    assert [len(by_lr()[lr]["evals"]) for lr in lrs] == [0, 1, 0]
    rec.on_trial_error(0, [trial], trial)
    recs = by_lr()
    assert [recs[lr]["status"] for lr in lrs] == ["failed", "stopped", "failed"]
    assert recs[lrs[1]]["evals"][0]["score"] == 51.0 and recs[lrs[1]]["error"] is None and rec.counts["failed"] == 2
    assert rec.counts["stopped"] == 1


def test_a_sweep_with_fuse_auto_writes_the_records_fuse_off_would(real_glue_dir, tmp_path):
    spec = tmp_path / "fz.yaml"
    spec.write_text(sweep_text(real_glue_dir, tmp_path / "results", "fuse: auto\nresources: {max_concurrent: 1}\n")
                    .replace("[SST-2, MRPC]", "[MRPC]").replace("[16, 32]", "[32]"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "run", str(spec)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    # no GPU here: the driver plans for CPU workers, where BERT-Tiny's cell still stacks
    assert "fuse auto on CPU workers: 1 fused unit(s), 0 solo trial(s)" in r.stderr, r.stderr[-3000:]
    recs = {x["trial_id"]: x for x in store.read_records(tmp_path / "results" / "fz")[0]}
    assert set(recs) == {t.id for t in S.load(spec).trials()} and len(recs) == 3
    for x in recs.values():
        assert x["status"] == "completed" and x["attempts"] == 1 and x["n_params"] > 4_000_000
        assert [e["epoch"] for e in x["evals"]] == [1.0] and "accuracy" in x["evals"][0]["metrics"]
    from orchestrator.results.load import load_run
    board = load_run(tmp_path / "results" / "fz")
    assert len(board.configs) == 3 and len(board.results) == 1 and not board.problems
    # Tune's logs: one TensorBoard run and progress.csv per member, named by its trial id, its own score
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    (attempt,) = (tmp_path / "results" / "fz" / "ray").glob("attempt-*")
    for tid, x in recs.items():
        acc = EventAccumulator(str(attempt / tid))
        acc.Reload()
        (point,) = acc.Scalars("ray/tune/score")
        assert point.value == pytest.approx(x["evals"][0]["score"], abs=1e-4) and point.step == 1
        rows = (attempt / tid / "progress.csv").read_text().splitlines()
        assert len(rows) == 2 and tid in rows[1]
    # each member's outputs stored beside its record, re-scoring to its own score
    from orchestrator.data.sources import GlueDir
    from orchestrator.registry.tasks import get_task
    from orchestrator.results import uncertainty
    from orchestrator.store import outputs
    labels = {"dev": GlueDir(real_glue_dir).load(get_task("MRPC"), "dev").labels}
    scored = {}
    for tid, x in recs.items():
        outs = outputs.read(tmp_path / "results" / "fz", tid)["1"]
        assert x["outputs"] == ["1"] and outs["dev"].shape == (len(labels["dev"]), 2)
        scored[tid] = uncertainty.score(get_task("MRPC"), outs, labels)
        assert scored[tid] == pytest.approx(x["evals"][0]["score"], abs=0.5)
    (unit,) = [d for d in attempt.iterdir() if d.is_dir() and d.name.startswith("unit-")]
    assert not list(unit.glob("events.out.tfevents.*")) and not (unit / "progress.csv").exists()
    # the unit's worker is labelled with every member (its Repr and :actor_name: line), and each
    # evaluation line of its log with the member it scores
    session = Path(json.loads((tmp_path / "results" / "fz" / "dashboard.json").read_text())["session_dir"])
    logs = "".join(p.read_text(errors="replace") for p in (session / "logs").glob("worker-*.err"))
    assert ":actor_name:BERT-Tiny (random init) / MRPC / bs 32 / lr 1e-4/5e-5/3e-5 / seed 0\n" in logs
    for lr in ("1e-4", "5e-5", "3e-5"):
        assert f"[BERT-Tiny (random init) / MRPC / bs 32 / lr {lr} / seed 0] epoch 1 step" in logs, lr


def asha_sweep(tmp_path, glue_dir, fuse: str) -> tuple[Path, subprocess.Popen]:
    """BERT-Tiny (random init, dropout off), STS-B, 200 rows, 2 learning rates x 2 batch sizes,
    2 epochs, grouped ASHA (grace 1, rf 2), one trial or unit at a time; started, not waited
    for. (STS-B's correlations tell every configuration apart; on SST-2 so little training
    leaves them all at the majority class's accuracy, and nothing is stopped.)"""
    spec = tmp_path / f"asha-{fuse}.yaml"
    spec.write_text(sweep_text(glue_dir, tmp_path / fuse, f"fuse: {fuse}\nresources: {{max_concurrent: 1}}\n"
                               "scheduler: {type: asha, grace_period: 1, reduction_factor: 2}\n")
                    .replace("[SST-2, MRPC]", "[STS-B]").replace("[1e-4, 5e-5, 3e-5]", "[1e-3, 1e-4]")
                    .replace("epochs: 1", "epochs: 2").replace("max_train_examples: 96", "max_train_examples: 200"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "token",
           "GLUE_SWEEP_HOOKS": str(REPO / "tests" / "faults" / "plugin.py"), "GLUE_SWEEP_FAULTS": "nodropout:"}
    env.pop("RAY_ADDRESS", None)
    return tmp_path / fuse / "fz", subprocess.Popen([sys.executable, "-m", "orchestrator.cli.main", "run", str(spec)],
                                                    cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.PIPE, text=True)


def finished(run: tuple[Path, subprocess.Popen]) -> tuple[dict, str]:
    """(the records by trial id, stderr) of a sweep ``asha_sweep`` started, once it has ended well."""
    _, err = run[1].communicate(timeout=600)
    assert run[1].returncode == 0, err[-3000:]
    return {x["trial_id"]: x for x in store.read_records(run[0])[0]}, err


def test_grouped_asha_stops_the_same_members_of_fused_units_as_solo_trials(real_glue_dir, tmp_path):
    """The same sweep with ``fuse: auto`` (two units of two learning rates) and ``fuse: off``
    (four trials, in the grid's order): the same trials stop at the same epoch with the same
    scores, and a resumed fused sweep runs nothing again."""
    runs = [asha_sweep(tmp_path, real_glue_dir, fuse) for fuse in ("auto", "off")]   # two clusters at once
    (fused, fused_err), (solo, _) = [finished(r) for r in runs]
    assert set(fused) == set(solo) and len(solo) == 4
    counts = [sum(int(n) for n in re.findall(r"(\d+) [a-z]+", line.split("trials: ", 1)[1]))
              for line in fused_err.splitlines() if "] trials: " in line]
    assert counts and all(c == 4 for c in counts), counts   # a unit counts as its members, always adding up
    for tid, s in solo.items():
        f = fused[tid]
        assert (f["status"], [e["epoch"] for e in f["evals"]]) == (s["status"], [e["epoch"] for e in s["evals"]]), tid
        assert [e["score"] for e in f["evals"]] == pytest.approx([e["score"] for e in s["evals"]], abs=0.01), tid
        assert f["attempts"] == 1 and f["error"] is None
        if s["status"] == "stopped":
            assert [e["epoch"] for e in s["evals"]] == [1.0]
    statuses = sorted(x["status"] for x in solo.values())
    assert "stopped" in statuses and "completed" in statuses, statuses
    again, err = finished(asha_sweep(tmp_path, real_glue_dir, "auto"))
    assert "0 to run" in err and again == fused


def test_members_that_end_on_their_own_keep_their_records_when_their_unit_is_retried(real_glue_dir, tmp_path):
    """Member 0 diverges (reported the moment it leaves the stack), member 2 fails on its own (its
    start raised; the others train): both records are final at once. The unit is retried (Tune
    restarts it after an error of the stacked step) and trains them again: their records are
    neither reset nor overwritten, and when the unit completes member 1 is completed."""
    from orchestrator.sweep.recorder import StoreRecorder
    from orchestrator.sweep.tune_jobs import grid_jobs

    sw = S.parse(sweep_text(real_glue_dir, tmp_path, "fuse: auto\n"))
    unit = next(t for t in grid_jobs(sw, [])[0][0].trials if t.get("members"))
    trial = SimpleNamespace(trial_id="u1", config={"trial": unit, "runtime": {}}, status="RUNNING", error_file=None)
    rec = StoreRecorder(sw.name, sw.run_dir, {})
    rec.on_trial_start(0, [trial], trial)
    rec.on_trial_result(0, [trial], trial, {"member": 2, "trial_status": "failed", "step": 0,
                                            "note": "RuntimeError: injected fault"})
    rec.on_trial_result(0, [trial], trial, {"member": 0, "trial_status": "diverged", "step": 2,
                                            "note": "loss became nan at step 3"})
    by_lr = lambda: {r["trial"]["learning_rate"]: r for r in store.read_records(sw.run_dir)[0]}   # noqa: E731
    lrs = [m["config"]["learning_rate"] for m in unit["members"]]
    assert [by_lr()[lr]["status"] for lr in lrs] == ["diverged", "running", "failed"]
    assert by_lr()[lrs[2]]["error"] == "RuntimeError: injected fault" and rec.counts["failed"] == 1
    before = {lr: by_lr()[lr] for lr in (lrs[0], lrs[2])}
    rec.on_trial_recover(0, [trial], trial)
    rec.on_trial_start(0, [trial], trial)
    for i in range(3):   # the retried unit trains every member again
        ev = {"epoch": 1.0, "step": 6, "metrics": {"accuracy": 50.0 + i}, "score": 50.0 + i, "train_loss": 0.7,
              "elapsed_s": 1.0}
        rec.on_trial_result(0, [trial], trial, {"member": i, "trial_status": "running", "eval_json": json.dumps(ev)})
    rec.on_trial_complete(0, [trial], trial)
    recs = by_lr()
    assert [recs[lr]["status"] for lr in lrs] == ["diverged", "completed", "failed"]
    assert {lr: recs[lr] for lr in (lrs[0], lrs[2])} == before
    assert [e["score"] for e in recs[lrs[1]]["evals"]] == [51.0]
    assert rec.counts == {"completed": 1, "stopped": 0, "diverged": 1, "failed": 1}
