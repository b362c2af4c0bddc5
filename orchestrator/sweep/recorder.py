"""The result store's only writer during a sweep: a Tune callback in the driver.

Each Tune event becomes the trial's record (``store.write_record``, atomic), so workers need no
shared filesystem and a crash of a worker or of the driver never leaves a torn record. It also
logs the sweep's progress and each group's new best score. Once the store cannot be written
(a full disk, say), ``StopOnWriteError`` stops every trial: results nobody can keep are not
worth computing.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path

from ray import tune

from ..config import fmt_lr
from ..store import outputs, records as store
from . import hooks
from .tune_jobs import members, trial_of

log = logging.getLogger(__name__)


class StoreRecorder(tune.Callback):
    def __init__(self, sweep_name: str, run_dir, prior_attempts: dict[str, int],
                 finished: set[str] = frozenset(), identity=None, view=None, to_run: int | None = None):
        self.sweep_name, self.run_dir, self.prior_attempts = sweep_name, run_dir, prior_attempts
        self.identity = identity               # TrialConfig -> the record's identity fields (identity.py)
        self.view = view   # a live.Screen on a terminal: the progress is drawn there, not printed
        self.to_run = to_run   # trials this run has to finish (Tune creates its trials as it goes)
        self.records: dict[tuple, dict] = {}   # by (Tune's own trial id, member of a fused unit)
        self.taken: set[str] = set(finished)   # record ids that must not be overwritten
        self.best: dict[str, tuple[float, str]] = {}
        self.last_print = 0.0
        self.write_error: str | None = None   # set when the store cannot be written: stop all
        self.writes = 0
        self.outputs: dict[str, dict] = {}     # by record id: each evaluation's outputs so far (store.outputs)

    @property
    def counts(self) -> dict[str, int]:
        """This run's trials by final status, from their records (a fused unit's member counts
        the moment its record is final, not when its unit ends)."""
        c = {"completed": 0, "stopped": 0, "diverged": 0, "failed": 0}
        for r in self.records.values():
            if r["status"] in c:
                c[r["status"]] += 1
        return c

    def _write(self, rec: dict) -> None:
        if self.write_error:
            return
        try:
            hooks.call("before_record_write", rec, self.writes)
            store.write_record(self.run_dir, rec)
            self.writes += 1
        except OSError as e:
            self.write_error = f"cannot write {store.record_location(self.run_dir, rec['trial_id'])}: {e.strerror or e}"

    def _rec(self, trial, member: int = 0) -> dict:
        """The record of a Tune trial (of one member, for a fused unit). Its id follows from the
        configuration; should that id already belong to a finished record (optuna can sample a
        configuration twice), the new trial gets a suffix: a finished record is never overwritten."""
        rec = self.records.get((trial.trial_id, member))
        if rec is None:
            t = trial_of({**trial.config, "trial": members(trial.config["trial"])[member]})
            tid, n = t.id, 2
            while tid in self.taken:
                tid, n = f"{t.id}_r{n}", n + 1
            self.taken.add(tid)
            rec = store.new_record(t._replace(id=tid), self.sweep_name, t.label)
            if self.identity is not None:
                rec.update(self.identity(t.config))
            rec["attempts"] = self.prior_attempts.get(tid, 0)
            self.records[(trial.trial_id, member)] = rec
        return rec

    def _all(self, trial) -> list[dict]:
        """The records of a Tune trial: one, or one per member of a fused unit."""
        return [self._rec(trial, m) for m in range(len(members(trial.config["trial"])))]

    def _live(self, trial) -> list[dict]:
        """The records of a Tune trial still in its hands: not a fused unit's member that ended
        before its unit (stopped early, diverged, or failed on its own: its record is final, and a
        retried unit neither resets nor overwrites it)."""
        return [r for r in self._all(trial) if r["status"] not in store.FINAL]

    def _unfinished(self, trial) -> int:
        """How many of a Tune trial's members (one for a solo trial) have no final record yet."""
        n = len(members(trial.config["trial"]))
        return sum(1 for m in range(n) if (r := self.records.get((trial.trial_id, m))) is None
                   or r["status"] not in store.FINAL)

    def on_trial_start(self, iteration, trials, trial, **info):
        for rec in self._live(trial):
            self._forget_outputs(rec)
            rec.update(status="running", evals=[], error=None, attempts=rec["attempts"] + 1, unit=trial.trial_id,
                       started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            self._write(rec)
        self._progress(trials)

    def on_trial_recover(self, iteration, trials, trial, **info):
        for rec in self._live(trial):
            rec["error"] = error_line(trial)
            self._write(rec)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        outs = result.pop("outputs", None)   # in place: Tune's loggers and state never see the arrays
        rec = self._rec(trial, result.get("member", 0))
        if "member" in result and rec["status"] in ("diverged", "failed"):
            return   # a member that ended before (a retried unit trains it again): its record stays
        rec["n_params"], rec["train_examples"] = result.get("n_params"), result.get("train_examples")
        rec["node"] = result.get("node", rec.get("node"))
        accum, restarts = result.get("grad_accum", 1), result.get("restarts", 0)
        if (accum, restarts) != (rec.get("grad_accum", 1), rec.get("restarts", 0)):
            rec["evals"], rec["grad_accum"] = [], accum   # restarted after out-of-memory: evaluations afresh
            self._forget_outputs(rec)
            rec["restarts"] = restarts
            if not restarts:
                del rec["restarts"]
        if result.get("trial_status") == "test":   # its kept weights' test outputs, after its last evaluation
            if outs:
                for key, splits in outs.items():
                    self._keep_outputs(rec, key, splits)
        elif result.get("trial_status") == "diverged":
            rec.update(status="diverged", error=result.get("note"))
        elif result.get("trial_status") == "failed":   # a unit's member failed on its own; the others go on
            rec.update(status="failed", error=result.get("note"))
            self._say(f"trial {rec['trial_id']} failed after {rec['attempts']} attempt(s): {rec['error']}")
        elif result.get("trial_status") == "note":
            rec["note"] = result.get("note")
        elif "eval_json" in result:
            ev = json.loads(result["eval_json"])
            rec["evals"].append(ev)
            if outs:
                self._keep_outputs(rec, ev["epoch"], outs)
            self._best(rec, ev)
            if result.get("trial_status") == "stopped":   # grouped ASHA stopped it (a unit's member: now)
                rec["status"] = ended(rec)
        self._write(rec)
        self._progress(trials)

    def _keep_outputs(self, rec: dict, epoch, outs: dict) -> None:
        """An evaluation's outputs (``epoch``: its epoch), or test outputs (``epoch``: their key,
        ``test@<epoch>``), beside the record, written before the record names them."""
        kept = self.outputs.setdefault(rec["trial_id"], {})
        key = epoch if isinstance(epoch, str) else outputs.epoch_key(epoch)
        kept[key] = outs
        if self.write_error:
            return
        try:
            outputs.write(self.run_dir, rec["trial_id"], kept)
            rec["outputs"] = [k for k in kept if not k.startswith(outputs.TEST_PREFIX)]
            tests = [k[len(outputs.TEST_PREFIX):] for k in kept if k.startswith(outputs.TEST_PREFIX)]
            if tests:
                rec["test_outputs"] = tests
        except OSError as e:
            self.write_error = f"cannot write {outputs.outputs_location(self.run_dir, rec['trial_id'])}: {e.strerror or e}"

    def _forget_outputs(self, rec: dict) -> None:
        self.outputs.pop(rec["trial_id"], None)
        rec.pop("outputs", None)
        rec.pop("test_outputs", None)

    def _best(self, rec: dict, ev: dict) -> None:
        g = rec["group"]
        if ev["score"] > self.best.get(g, (-math.inf, ""))[0]:
            self.best[g] = (ev["score"], rec["trial_id"])
            t = rec["trial"]
            if self.view:
                return
            log.info(f"[{time.strftime('%H:%M:%S')}] best so far, {g.replace('|', ' / ')}: {ev['score']:.2f} "
                     f"(bs {t['batch_size']}, lr {fmt_lr(t['learning_rate'])}, epoch {ev['epoch']:g})")

    def on_trial_complete(self, iteration, trials, trial, **info):
        for rec in self._all(trial):
            if rec["status"] in ("diverged", "failed"):
                continue   # final, and written when it ended: left as it is
            rec["status"] = ended(rec)
            self._write(rec)
        self._progress(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        for rec in self._live(trial):
            rec.update(status="failed", error=error_line(trial))
            self._write(rec)
            self._say(f"trial {rec['trial_id']} failed after {rec['attempts']} attempt(s): {rec['error']}")
        self._progress(trials, force=True)

    def _say(self, line: str) -> None:
        if self.view:
            self.view.log(line)
        else:
            log.warning(line)

    def _progress(self, trials, force=False):
        if self.view:
            self.view.update(list(self.records.values()))
            return
        now = time.monotonic()
        if not force and now - self.last_print < 10:
            return
        self.last_print = now
        # counted in trials, a fused unit as its members: a member the recorder has finished is not
        # running, even before Tune marks its unit so, so the counts add up to the sweep
        counts = self.counts
        running = sum(self._unfinished(t) for t in trials if t.status == "RUNNING")
        pending = sum(self._unfinished(t) for t in trials if t.status == "PENDING")
        if self.to_run is not None:
            pending = max(0, self.to_run - sum(counts.values()) - running)
        done = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        log.info(f"[{time.strftime('%H:%M:%S')}] trials: {done or '0 finished'}; {running} running, {pending} pending")

    def summary(self) -> str:
        return "\n".join(f"  {g.replace('|', ' / ')}: best dev score {s:.2f} ({tid})"
                         for g, (s, tid) in sorted(self.best.items()))


class StopOnWriteError(tune.Stopper):
    """Stops every trial once the recorder cannot write the result store."""

    def __init__(self, recorder: StoreRecorder):
        self.recorder = recorder

    def __call__(self, trial_id, result):
        return self.recorder.write_error is not None

    def stop_all(self):
        return self.recorder.write_error is not None


def ended(rec: dict) -> str:
    """The status of a trial that ran to its end: ``completed`` once its evaluations reached
    its epochs, else ``stopped`` (early, by the scheduler)."""
    last = rec["evals"][-1]["epoch"] if rec["evals"] else 0.0
    return "completed" if last >= float(rec["trial"]["epochs"]) - 1e-6 else "stopped"


def error_line(trial) -> str:
    """The last line of a failed trial's error file (the exception), at most 500 characters."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return (lines[-1].strip() if lines else "trial failed")[:500]
