"""Faults inside a fused unit (`make faults`): the plugin's faults name single members of a unit of
three learning rates. A member that goes NaN or raises ends alone (its record final at once), the
others' records are kept; Ctrl-C mid-unit exits 130 and keeps every finished record; the same
command then runs exactly what is missing. And Ctrl-C while a distillation sweep's driver
re-trains its teacher: exit 130, nothing cached, nothing recorded, and the same command finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from orchestrator.config import TrialConfig, make_trial
from orchestrator.registry.models import resolve
from orchestrator.store import records as store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sweep"))
from test_driver import CLI, REPO, _wait_for, env, records, run_cli  # noqa: E402

ID = "BERT-Tiny-random__SST-2__bs16_lr{}_s0"
LRS = ("1e-4", "5e-5", "3e-5")


def unit_spec(tmp: Path, name: str, glue_dir: Path, extra: str = "") -> Path:
    """One cell of three learning rates: with ``fuse: auto``, one fused unit."""
    p = tmp / f"{name}.yaml"
    p.write_text(f"""name: {name}
models: [{{name: BERT-Tiny, init: random}}]
tasks: [SST-2]
search: {{batch_size: [16], learning_rate: [{", ".join(LRS)}]}}
epochs: 2
max_train_examples: 160
results: {tmp / "results"}
data: {{glue_dir: {glue_dir}}}
fuse: auto
{extra}
""")
    return p


def files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in store.trials_dir(run_dir).glob("*.json")}


def test_a_member_that_goes_nan_or_raises_ends_alone_and_the_rerun_runs_only_the_failed_one(tmp_path,
                                                                                             real_glue_dir):
    spec = unit_spec(tmp_path, "unit", real_glue_dir, "retries: 1")
    run_dir = tmp_path / "results" / "unit"
    r = run_cli(["run", str(spec)], GLUE_SWEEP_FAULTS="nan:lr5e-5,raise:lr3e-5")
    assert r.returncode == 3, r.stderr[-3000:]   # ran to its end with a failed trial (docs/faults.md)
    assert r.stderr.rstrip().splitlines()[-2:] == [
        "1 trial(s) failed (run the same command again to retry them):",
        f"  {ID.format('3e-5')}: RuntimeError: injected fault in {ID.format('3e-5')}"]
    recs = records(run_dir)
    assert set(recs) == {ID.format(lr) for lr in LRS}
    ok, nan, bad = (recs[ID.format(lr)] for lr in LRS)
    assert ok["status"] == "completed" and [e["epoch"] for e in ok["evals"]] == [1.0, 2.0]
    assert nan["status"] == "diverged" and "nan" in nan["error"].lower() and not nan["evals"]
    # failed alone, in the unit (a trial failing on its own is retried by Tune: 2 attempts)
    assert bad["status"] == "failed" and bad["attempts"] == 1 and "injected fault" in bad["error"]
    kept = {k: v for k, v in files(run_dir).items() if not k.startswith(ID.format("3e-5"))}
    assert len(kept) == 2

    r = run_cli(["run", str(spec)])   # the cause is gone: exactly the failed member runs
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 already finished, 1 to run (1 failed before: retried" in r.stderr
    after = files(run_dir)
    assert {k: after[k] for k in kept} == kept
    rec = records(run_dir)[ID.format("3e-5")]
    assert rec["status"] == "completed" and [e["epoch"] for e in rec["evals"]] == [1.0, 2.0]


def test_ctrl_c_mid_unit_keeps_the_ended_member_and_the_rerun_finishes_the_others(tmp_path, real_glue_dir):
    """One member diverges early; the unit then waits before its second evaluation (``stall``),
    the driver gets SIGINT: exit 130, the diverged member's record is kept, the others are
    unfinished, and the same command trains only those two."""
    spec = unit_spec(tmp_path, "unit", real_glue_dir)
    run_dir = tmp_path / "results" / "unit"
    proc = subprocess.Popen(CLI + ["run", str(spec)], cwd=REPO, env=env(GLUE_SWEEP_FAULTS="nan:lr5e-5,stall:lr1e-4:30"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def mid_unit() -> bool:
        recs = {r["trial_id"]: r for r in store.read_records(run_dir)[0]}
        first = recs.get(ID.format("1e-4"))
        return (recs.get(ID.format("5e-5"), {}).get("status") == "diverged" and first is not None
                and len(first["evals"]) == 1)
    try:
        _wait_for(mid_unit, 240, "a diverged member and the others' first evaluation")
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert "run the same command again" in err and "Traceback" not in err
    recs = records(run_dir)
    assert recs[ID.format("5e-5")]["status"] == "diverged"
    assert all(recs[ID.format(lr)]["status"] not in store.FINAL for lr in ("1e-4", "3e-5"))
    kept = {k: v for k, v in files(run_dir).items() if k.startswith(ID.format("5e-5"))}

    r = run_cli(["run", str(spec)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 already finished, 2 to run" in r.stderr
    after = files(run_dir)
    assert {k: after[k] for k in kept} == kept
    recs = records(run_dir)
    for lr in ("1e-4", "3e-5"):
        assert recs[ID.format(lr)]["status"] == "completed"
        assert [e["epoch"] for e in recs[ID.format(lr)]["evals"]] == [1.0, 2.0]


def teacher_run(run_dir: Path) -> str:
    """A finished teacher run: one BERT-Tiny SST-2 trial of two epochs (so that its re-training
    evaluates twice, and ``stall`` can hold it before the second); returns the model's label."""
    cfg = TrialConfig(model=resolve("BERT-Tiny").ref, task="SST-2", batch_size=8, learning_rate=1e-4, epochs=2,
                      init="random", max_train_examples=48)
    trial = make_trial(cfg, "BERT-Tiny")
    rec = store.new_record(trial, "teacher-run", trial.label)
    rec.update(status="completed", evals=[{"epoch": e, "step": 6 * e, "metrics": {"accuracy": 50.0 + e},
                                           "score": 50.0 + e, "train_loss": 0.7, "elapsed_s": 1.0} for e in (1, 2)])
    store.write_record(run_dir, rec)
    return trial.label


def test_ctrl_c_while_the_teacher_is_re_trained_caches_nothing_and_the_same_command_finishes(tmp_path,
                                                                                             real_glue_dir):
    label = teacher_run(tmp_path / "teacher-run")
    cache = tmp_path / "cache"
    spec = tmp_path / "students.yaml"
    spec.write_text(f"""name: students
models: [{{name: BERT-Tiny, init: random}}]
tasks: [SST-2]
search: {{batch_size: [16], learning_rate: [1e-4]}}
epochs: 1
max_train_examples: 64
results: {tmp_path / "results"}
data: {{glue_dir: {real_glue_dir}}}
distill:
  teacher: {{run: {tmp_path / "teacher-run"}, model: {label}}}
  transfer: train
  baseline: false
""")
    proc = subprocess.Popen(CLI + ["run", str(spec)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            env=env(GLUE_SWEEP_FAULTS="stall:SST-2__bs8_lr1e-4:60", GLUE_SWEEP_CACHE=str(cache),
                                    GLUE_SWEEP_FAULT_DIR=str(tmp_path)))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        # the teacher's re-training waits before its second evaluation (the plugin's stall, in the driver)
        _wait_for(lambda: any(tmp_path.glob("stall-*SST-2__bs8_lr1e-4*")), 240, "the teacher's re-training")
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = "".join(lines)
    assert proc.returncode == 130, err[-3000:]
    assert err.rstrip().splitlines()[-1] == "glue-sweep: interrupted" and "Traceback" not in err
    teachers = cache / "teachers"
    assert not teachers.exists() or not any(teachers.iterdir())   # no teacher, not even a temporary directory
    assert not list(cache.rglob("soft_labels/*"))             # no soft labels, not even a temporary file
    assert not store.read_records(tmp_path / "results" / "students")[0]

    r = run_cli(["run", str(spec)], GLUE_SWEEP_CACHE=str(cache))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "re-training" in r.stderr and "1 trials, 0 already finished, 1 to run" in r.stderr
    recs = records(tmp_path / "results" / "students")
    assert len(recs) == 1 and all(r["status"] == "completed" for r in recs.values())
    assert len(list((cache / "teachers").iterdir())) == 1 and len(list(cache.rglob("soft_labels/*.npz"))) == 1
