"""Runs a sweep's trials as a Ray Tune experiment.

* One Tune trial per expanded ``spec.Trial``; the trainable is a thin function around the
  trial runner that reports every dev evaluation (``tune.report``).
* Early stopping (ASHA) is applied per (model, task) group: ``GroupedScheduler`` keeps one
  ASHA per group, so a CoLA score is never compared with an SST-2 score.
* Only the driver writes the result store (a Tune callback turns each report into the
  trial's record), so workers need no shared filesystem and a crash of a worker or of the
  driver never leaves a torn record. A re-run skips every finished trial.
* No model checkpoints: Tune keeps metrics only.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from . import store
from .errors import UserError
from .spec import Sweep, Trial

# Keep Tune from writing its own per-trial loggers (CSV/JSON/TensorBoard): the store has it all.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

FORWARD_ENV = ("GLUE_DIR", "MODELS_DIR", "GLUE_SWEEP_CACHE", "GLUE_SWEEP_VOCAB", "HF_HOME", "HF_HUB_OFFLINE",
               "TRANSFORMERS_OFFLINE", "HF_DATASETS_CACHE", "GLUE_SWEEP_FAULTS",
               "GLUE_SWEEP_FAULT_DIR")


# --- resources -------------------------------------------------------------------------

def approx_params(trial: dict) -> int:
    """Parameter count from the shape (miniature name or local config), no model load."""
    from .models import approx_params as params, resolve

    p = params(resolve(trial["model_ref"]))
    return p[0] if p else 110_000_000   # unknown: treat as BERT-Base


def trial_memory_bytes(trial: dict, batch_size: int) -> float | None:
    """A rough upper bound on a training trial's GPU memory: fp32 weights, gradients and the two
    AdamW moments (16 bytes a parameter), the activations of one full-length batch under bf16
    autocast (s*b*h*(34 + 5*heads*s/h) bytes a layer, Korthikanti et al. 2022, heads = h/64) and
    the worker's CUDA context (0.5 GB). None when the model's shape is unknown."""
    from .models import approx_params as params, resolve, shape_of

    spec = resolve(trial["model_ref"])
    shape, p = shape_of(spec), params(spec)
    if shape is None or p is None:
        return None
    layers, hidden = shape
    s, b = trial.get("max_length") or 128, batch_size
    act = layers * s * b * hidden * (34 + 5 * (hidden / 64) * s / hidden)
    return 16 * p[0] + act + 0.5e9


def gpu_share(n_params: int, mem_bytes: float | None = None, gpu_mem_bytes: float | None = None) -> float:
    """Fraction of one GPU a trial takes: by size, eight BERT-Tiny-sized trials (up to 6M
    parameters) share a GPU, four up to 12M, two up to 45M, BERT-Base gets one; then doubled
    until the trial's memory estimate fits in 90% of its share of the GPU's memory."""
    share = 0.125 if n_params <= 6e6 else 0.25 if n_params <= 12e6 else 0.5 if n_params <= 45e6 else 1.0
    if mem_bytes and gpu_mem_bytes:
        while share < 1 and mem_bytes > 0.9 * share * gpu_mem_bytes:
            share *= 2
    return share


def gpu_memory_bytes() -> float:
    """Memory of the driver machine's first GPU (nvidia-smi, no CUDA context in the driver),
    else 16 GB, the smallest common training GPU: too small a guess only packs less."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout.split()
            if out:
                return float(out[0]) * 2**20
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
    return 16 * 2**30


# --- the trainable (runs in a Ray worker) ----------------------------------------------

def trainable(config: dict) -> None:
    from ray import tune

    from .data import source_from
    from .runner import TrialConfig, run_trial

    t, rt = trial_of(config), config["runtime"]
    cfg = TrialConfig(model=t["model_ref"], task=t["task"], batch_size=t["batch_size"],
                      learning_rate=t["learning_rate"], epochs=t["epochs"], seed=t["seed"], init=t["init"],
                      max_train_examples=t["max_train_examples"], max_length=t["max_length"],
                      eval_every_epochs=t["eval_every"], threads=rt["threads"],
                      trust_remote_code=rt["trust_remote_code"])
    faults = _inject_faults(t)
    import ray

    node = ray.get_runtime_context().get_node_id()
    state = {"last": None, "n_params": 0, "n_train": 0, "accum": 1}

    def after_prepare(p):
        state["n_params"] = sum(x.numel() for x in p.model.parameters())
        state["n_train"] = len(p.train)
        if "nan" in faults:
            _nan_after(p.model, steps=2)
        if "oom" in faults:
            _oom_above(p.model, faults["oom"])

    def base() -> dict:
        return {"n_params": state["n_params"], "train_examples": state["n_train"], "node": node,
                "grad_accum": state["accum"]}

    def on_eval(ev):
        state["last"] = ev
        tune.report({"score": ev.score, "epoch": ev.epoch, "step": ev.step, "trial_status": "running",
                     "eval_json": json.dumps(vars(ev)), **base()})

    def on_restart(new_cfg, why):
        state["accum"] = new_cfg.grad_accum   # the callback starts the record's evaluations afresh

    res = run_trial(cfg, source_from(rt["glue_dir"], rt["hub"]), on_eval=on_eval, after_prepare=after_prepare,
                    on_restart=on_restart)
    if res.status == "diverged" or res.grad_accum > 1:
        last = state["last"]
        tune.report({"score": float("-inf") if res.status == "diverged" else last.score,
                     "epoch": last.epoch if last else 0.0, "step": res.steps,
                     "trial_status": res.status if res.status == "diverged" else "note", "note": res.note, **base()})


def _oom_above(model, max_rows: int) -> None:
    """Raise an out-of-memory error for training batches above max_rows (fault injection)."""
    import torch

    forward = model.forward

    def oom_forward(*args, **kwargs):
        ids = kwargs.get("input_ids")
        if model.training and ids is not None and ids.shape[0] > max_rows:
            raise torch.OutOfMemoryError(f"injected: out of memory for a batch of {ids.shape[0]}")
        return forward(*args, **kwargs)

    model.forward = oom_forward


def _nan_after(model, steps: int) -> None:
    """Make the training loss NaN from the given step on (fault injection)."""
    forward, calls = model.forward, [0]

    def nan_forward(*args, **kwargs):
        out = forward(*args, **kwargs)
        if model.training and getattr(out, "loss", None) is not None:
            calls[0] += 1
            if calls[0] > steps:
                out.loss = out.loss * float("nan")
        return out

    model.forward = nan_forward


def _inject_faults(t: dict) -> dict:
    """Test hook, off unless GLUE_SWEEP_FAULTS is set: a comma-separated list of
    ``raise:<substring>`` (matching trials raise), ``sleep:<substring>:<seconds>`` (matching
    trials wait first, so a test can act mid-sweep) and ``nan:<substring>`` (the loss of
    matching trials becomes NaN after two steps) and ``oom:<substring>:<rows>`` (training
    batches above that many rows raise an out-of-memory error). Returns the kinds left to
    apply to the model, with their argument."""
    spec = os.environ.get("GLUE_SWEEP_FAULTS", "")
    later: dict = {}
    for item in filter(None, spec.split(",")):
        kind, _, rest = item.partition(":")
        pattern, _, arg = rest.partition(":")
        arg = arg.partition(":")[0]   # anything after a further ':' is a tag for the tests
        if pattern not in t["trial_id"]:
            continue
        if kind == "raise":
            raise RuntimeError(f"injected fault in {t['trial_id']}")
        if kind == "flaky":   # raise on the first attempt only (a marker file remembers it)
            marker = Path(os.environ.get("GLUE_SWEEP_FAULT_DIR", "/tmp")) / f"flaky-{t['trial_id']}"
            if not marker.exists():
                marker.touch()
                raise RuntimeError(f"injected one-off fault in {t['trial_id']}")
        if kind == "sleep":
            time.sleep(float(arg or 1))
        if kind == "nan":
            later["nan"] = True
        if kind == "oom":
            later["oom"] = int(arg or 8)
    return later


# --- grouped early stopping ------------------------------------------------------------

def grouped_asha(sweep: Sweep):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    class GroupedScheduler(FIFOScheduler):
        """One ASHA per (model, task) group: trials only ever compete within their group."""

        def __init__(self):
            super().__init__()
            self.groups: dict[str, ASHAScheduler] = {}
            self._props = None

        def _of(self, trial):
            g = trial.config["trial"]["group"]
            if g not in self.groups:
                s = ASHAScheduler(time_attr="epoch", max_t=sweep.epochs, grace_period=sweep.grace_period,
                                  reduction_factor=sweep.reduction_factor, stop_last_trials=False)
                s.set_search_properties("score", "max")
                self.groups[g] = s
            return self.groups[g]

        def set_search_properties(self, metric, mode, **spec):
            return True

        def on_trial_add(self, tc, trial):
            self._of(trial).on_trial_add(tc, trial)

        def on_trial_result(self, tc, trial, result):
            if result.get("trial_status") == "diverged":
                return self.STOP
            return self._of(trial).on_trial_result(tc, trial, result)

        def on_trial_complete(self, tc, trial, result):
            self._of(trial).on_trial_complete(tc, trial, result)

        def on_trial_remove(self, tc, trial):
            self._of(trial).on_trial_remove(tc, trial)

        def on_trial_error(self, tc, trial):
            self._of(trial).on_trial_error(tc, trial)

        def debug_string(self):
            return f"GroupedScheduler: {len(self.groups)} groups of ASHA"

    return GroupedScheduler()


# --- the store writer and progress (runs in the driver) --------------------------------

def _record_base(trial: dict, sweep_name: str) -> dict:
    keep = ("trial_id", "model", "model_ref", "init", "task", "batch_size", "learning_rate", "epochs", "seed",
            "max_train_examples", "max_length", "eval_every")
    return {"sweep": sweep_name, **{k: trial[k] for k in keep}, "status": "running", "attempts": 0,
            "error": None, "evals": []}


def make_callback(sweep: Sweep, run_dir: Path, prior_attempts: dict[str, int], finished: set[str] = frozenset(),
                  out=sys.stderr):
    from ray import tune

    class StoreWriter(tune.Callback):
        def __init__(self):
            self.records: dict[str, dict] = {}     # by Tune's own trial id
            self.taken: set[str] = set(finished)   # record ids that must not be overwritten
            self.best: dict[str, tuple[float, str]] = {}
            self.counts = {"completed": 0, "stopped": 0, "diverged": 0, "failed": 0}
            self.last_print = 0.0
            self.write_error: str | None = None   # set when the store cannot be written: stop all
            self.writes = 0

        def _write(self, rec: dict) -> None:
            if self.write_error:
                return
            try:
                _maybe_disk_full(self.writes)
                store.write_record(run_dir, rec)
                self.writes += 1
            except OSError as e:
                self.write_error = f"cannot write {store.record_path(run_dir, rec['trial_id'])}: {e.strerror or e}"

        def _rec(self, trial) -> dict:
            """The record of a Tune trial. Its id follows from the configuration; should that
            id already belong to a finished record (optuna can sample a configuration twice),
            the new trial gets a suffix: a finished record is never overwritten."""
            rec = self.records.get(trial.trial_id)
            if rec is None:
                t = trial_of(trial.config)
                tid, n = t["trial_id"], 2
                while tid in self.taken:
                    tid, n = f"{t['trial_id']}_r{n}", n + 1
                self.taken.add(tid)
                rec = _record_base({**t, "trial_id": tid}, sweep.name)
                rec["attempts"] = prior_attempts.get(tid, 0)
                self.records[trial.trial_id] = rec
            return rec

        def on_trial_start(self, iteration, trials, trial, **info):
            rec = self._rec(trial)
            rec.update(status="running", evals=[], error=None, attempts=rec["attempts"] + 1)
            self._write(rec)

        def on_trial_recover(self, iteration, trials, trial, **info):
            rec = self._rec(trial)
            rec["error"] = _error_line(trial)
            self._write(rec)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            rec = self._rec(trial)
            rec["n_params"], rec["train_examples"] = result.get("n_params"), result.get("train_examples")
            rec["node"] = result.get("node", rec.get("node"))
            accum = result.get("grad_accum", 1)
            if accum != rec.get("grad_accum", 1):   # restarted after out-of-memory: evaluations afresh
                rec["evals"], rec["grad_accum"] = [], accum
            if result.get("trial_status") == "diverged":
                rec.update(status="diverged", error=result.get("note"))
            elif result.get("trial_status") == "note":
                rec["note"] = result.get("note")
            elif "eval_json" in result:
                ev = json.loads(result["eval_json"])
                rec["evals"].append(ev)
                g = trial.config["trial"]["group"]
                if ev["score"] > self.best.get(g, (-math.inf, ""))[0]:
                    self.best[g] = (ev["score"], rec["trial_id"])
                    print(f"[{time.strftime('%H:%M:%S')}] best so far, {g.replace('|', ' / ')}: {ev['score']:.2f} "
                          f"(bs {rec['batch_size']}, lr {rec['learning_rate']:g}, epoch {ev['epoch']:g})",
                          file=out, flush=True)
            self._write(rec)
            self._progress(trials)

        def on_trial_complete(self, iteration, trials, trial, **info):
            rec = self._rec(trial)
            if rec["status"] != "diverged":
                last = rec["evals"][-1]["epoch"] if rec["evals"] else 0.0
                rec["status"] = "completed" if last >= float(rec["epochs"]) - 1e-6 else "stopped"
            self.counts[rec["status"]] += 1
            self._write(rec)
            self._progress(trials, force=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            rec = self._rec(trial)
            rec.update(status="failed", error=_error_line(trial))
            self.counts["failed"] += 1
            self._write(rec)
            print(f"trial {rec['trial_id']} failed after {rec['attempts']} attempt(s): {rec['error']}", file=out)
            self._progress(trials, force=True)

        def _progress(self, trials, force=False):
            now = time.monotonic()
            if not force and now - self.last_print < 10:
                return
            self.last_print = now
            running = sum(1 for t in trials if t.status == "RUNNING")
            pending = sum(1 for t in trials if t.status == "PENDING")
            done = ", ".join(f"{v} {k}" for k, v in self.counts.items() if v)
            print(f"[{time.strftime('%H:%M:%S')}] trials: {done or '0 finished'}; {running} running, {pending} pending",
                  file=out, flush=True)

        def summary(self) -> str:
            lines = [f"  {g.replace('|', ' / ')}: best dev score {s:.2f} ({tid})" for g, (s, tid) in sorted(self.best.items())]
            return "\n".join(lines)

    return StoreWriter()


def _maybe_disk_full(writes_so_far: int) -> None:
    """Fault injection: GLUE_SWEEP_FAULTS='enospc:<n>' fails every record write after n."""
    for item in filter(None, os.environ.get("GLUE_SWEEP_FAULTS", "").split(",")):
        kind, _, n = item.partition(":")
        if kind == "enospc" and writes_so_far >= int(n.partition(":")[0] or 0):
            import errno

            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def make_stopper(callback):
    from ray import tune

    class StopOnWriteError(tune.Stopper):
        """Stops every trial once the result store cannot be written (a full disk, say):
        running on would produce results nobody can keep."""

        def __call__(self, trial_id, result):
            return callback.write_error is not None

        def stop_all(self):
            return callback.write_error is not None

    return StopOnWriteError()


def _error_line(trial) -> str:
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return (lines[-1].strip() if lines else "trial failed")[:500]


# --- cluster, dashboard, lock ----------------------------------------------------------

def check_address(address: str) -> None:
    """Fail fast, with one line, when a cluster address cannot be reached."""
    if address in ("auto", "local"):
        return
    url = urlparse(address if "://" in address else f"tcp://{address}")
    host, port = url.hostname, url.port or (10001 if url.scheme == "ray" else 6379)
    if not host:
        raise UserError(f"cluster address {address!r} is not host:port or ray://host:port")
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as e:
        raise UserError(f"cannot reach the Ray cluster at {address} ({e.strerror or e})") from None


class RunLock:
    """One driver per sweep directory: a second ``run`` on it refuses, it never interleaves."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self.fd = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(self.fd, 64, 0).decode(errors="replace").strip()
            os.close(self.fd)
            raise UserError(f"sweep directory {self.path.parent} is in use by another glue-sweep run"
                            f"{' (pid ' + other + ')' if other else ''}") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def start_ray(address: str | None, num_cpus: int | None, secure: bool, out=sys.stderr):
    import ray

    if secure:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    env = {k: os.environ[k] for k in FORWARD_ENV if os.environ.get(k)}
    env["TOKENIZERS_PARALLELISM"] = "false"
    repo = str(Path(__file__).resolve().parent.parent)
    runtime_env = {"env_vars": env}
    kw = dict(runtime_env=runtime_env, log_to_driver=False, logging_level="ERROR")
    try:
        if address:
            check_address(address)
            ctx = ray.init(address=address, **kw)
        else:
            # address="local": always a new local instance, never a stale one that a
            # `ray start` left in /tmp/ray/ray_current_cluster.
            ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                           _node_ip_address="127.0.0.1", **kw)
    except UserError:
        raise
    except Exception as e:
        first = next((l for l in str(e).splitlines() if l.strip()), type(e).__name__)
        raise UserError(f"could not {'connect to the Ray cluster at ' + address if address else 'start Ray'}: "
                        f"{first[:300]}") from None
    url = getattr(ctx, "dashboard_url", None) or ""
    return ctx, (f"http://{url}" if url and not url.startswith("http") else url), repo


def dashboard_info(url: str, secure: bool) -> dict:
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    return {"url": url, "auth": "token" if secure else "none", "token_file": str(token_file) if secure else None,
            "pid": os.getpid(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def print_dashboard(info: dict, out=sys.stderr) -> None:
    if not info.get("url"):
        return
    print(f"Ray dashboard: {info['url']}", file=out)
    if info["auth"] == "token":
        print(f"  token auth on: log in with the token in {info['token_file']} (or `ray get-auth-token`; "
              f"`make dashboard` prints both)", file=out)
    port = urlparse(info["url"]).port or 8265
    print(f"  on a remote head node: ssh -N -L {port}:127.0.0.1:{port} <you>@<head>, then open http://127.0.0.1:{port}",
          file=out)


# --- the driver ------------------------------------------------------------------------

def _check_compatible(sweep: Sweep, trials: list[Trial], records: list[dict]) -> None:
    """A finished record is only reused if it was run with the settings the spec asks for now."""
    want = {t.trial_id: t for t in trials}
    for r in records:
        t = want.get(r["trial_id"])
        if t is None or r["status"] not in store.FINAL:
            continue
        for key in ("model_ref", "init", "epochs", "max_train_examples", "max_length"):
            if r.get(key) != getattr(t, key) and not (key == "epochs" and float(r.get(key)) == float(t.epochs)):
                raise UserError(f"{sweep.run_dir}: trial {t.trial_id} was run with {key}={r.get(key)!r}, the spec now "
                                f"says {getattr(t, key)!r}; give the sweep a new name (or move the old results)")


def warm_cache(sweep: Sweep, trials: list[Trial], out=sys.stderr) -> None:
    """Tokenise every (task, vocabulary) the sweep needs once, before any trial starts."""
    from .data import source_from
    from .features import features
    from .models import load_tokenizer, resolve
    from .tasks import get_task

    source = source_from(sweep.glue_dir, sweep.hub)
    done = set()
    t0 = time.perf_counter()
    stats: dict = {}
    for t in trials:
        key = (t.model_ref, t.init, t.task)
        if key in done:
            continue
        done.add(key)
        task = get_task(t.task)
        tok = load_tokenizer(resolve(t.model_ref), t.init, sweep.trust_remote_code)
        for split in ["train"] + [s.name for s in task.eval_splits]:
            features(task, split, source, tok, t.max_length, stats=stats)
    print(f"features ready in {time.perf_counter() - t0:.1f}s ({stats.get('misses', 0)} tokenised, "
          f"{stats.get('hits', 0)} from cache)", file=out)


def run(sweep: Sweep, address: str | None = None, storage: str | None = None, resume: bool = True,
        secure: bool = True, out=sys.stderr) -> int:
    """Run (or finish) a sweep. Returns the process exit code."""
    if address:
        check_address(address)   # before anything is written
    run_dir = sweep.run_dir
    with RunLock(run_dir):
        records, problems = store.read_records(run_dir)
        for p in problems:
            print(f"warning: ignoring unreadable record {p}", file=out)
        if Path(sweep.path).is_file():
            (run_dir / "sweep.yaml").write_text(Path(sweep.path).read_text())
        if sweep.mode == "grid":
            all_trials = sweep.trials()
            _check_compatible(sweep, all_trials, records)
            finished = {r["trial_id"] for r in records if r["status"] in store.FINAL}
            todo = [t for t in all_trials if t.trial_id not in finished]
            print(f"sweep {sweep.name}: {len(all_trials)} trials, {len(all_trials) - len(todo)} already finished, "
                  f"{len(todo)} to run; results in {run_dir}/trials/", file=out)
            jobs = [Job([{**t.to_dict(), "group": t.group} for t in todo])] if todo else []
            warm = todo
        else:
            jobs, warm = _optuna_jobs(sweep, records, out)
        if not jobs:
            return 0
        if not address:
            warm_cache(sweep, warm, out)
        attempts = {r["trial_id"]: r.get("attempts", 0) for r in records}
        return _tune(sweep, jobs, run_dir, attempts, address, storage, secure, out)


class Job:
    """One Tuner run: a fixed list of trials (grid), or an optuna study over one group."""

    def __init__(self, trials: list[dict] | None = None, static: dict | None = None, samples: int = 0,
                 seen: list[tuple[dict, float]] | None = None):
        self.trials, self.static, self.samples, self.seen = trials, static, samples, seen or []


def trial_of(config: dict) -> dict:
    """The trial a Tune config stands for. Optuna samples batch size and learning rate, and
    the trial id follows from them."""
    from .spec import trial_id

    t = dict(config["trial"])
    if "batch_size" in config:
        t["batch_size"], t["learning_rate"] = int(config["batch_size"]), float(config["learning_rate"])
        t["trial_id"] = trial_id(t["model_name"], t["init"], t["task"], t["batch_size"], t["learning_rate"],
                                 t["seed"], precise=True)
    return t


def _optuna_jobs(sweep: Sweep, records: list[dict], out) -> tuple[list[Job], list[Trial]]:
    """One optuna study per (model, task, seed): its budget minus the trials already
    finished, which are handed to the study as evaluated points instead of being re-run."""
    from .spec import display_name

    jobs, warm = [], []
    total = left = 0
    for (spec, init) in sweep.models:
        for task in sweep.tasks:
            for seed in sweep.seeds:
                name = display_name(spec, init)
                done = [r for r in records if r["model"] == name and r["task"] == task.name and r["seed"] == seed
                        and r["status"] in store.FINAL]
                total += sweep.optuna_trials
                n = max(0, sweep.optuna_trials - len(done))
                left += n
                if not n:
                    continue
                static = {"trial_id": None, "model": name, "model_name": spec.name, "model_ref": spec.ref,
                          "init": init, "task": task.name, "batch_size": None, "learning_rate": None, "seed": seed,
                          "epochs": sweep.epochs, "max_train_examples": sweep.max_train_examples,
                          "max_length": sweep.max_length, "eval_every": sweep.eval_every,
                          "group": f"{name}|{task.name}"}
                seen = [({"batch_size": r["batch_size"], "learning_rate": r["learning_rate"]},
                         max(e["score"] for e in r["evals"])) for r in done if r["evals"] and r["status"] in store.VALID]
                jobs.append(Job(static=static, samples=n, seen=seen))
                warm.append(Trial(trial_id="", model=name, model_ref=spec.ref, init=init, task=task.name,
                                  batch_size=0, learning_rate=0.0, seed=seed, epochs=sweep.epochs,
                                  max_train_examples=sweep.max_train_examples, max_length=sweep.max_length,
                                  eval_every=sweep.eval_every))
    print(f"sweep {sweep.name}: optuna, {total} trials in all, {total - left} already finished, {left} to run; "
          f"results in {sweep.run_dir}/trials/", file=out)
    return jobs, warm


def _tune(sweep: Sweep, jobs: list[Job], run_dir: Path, attempts: dict, address, storage, secure, out) -> int:
    import ray
    from ray import tune

    ctx, url, _ = start_ray(address, None, secure, out)
    from .fileio import atomic_write_json

    info = dashboard_info(url, secure)
    atomic_write_json(run_dir / "dashboard.json", info)
    print_dashboard(info, out)
    interrupted = False
    try:
        cluster = ray.cluster_resources()
        has_gpu = cluster.get("GPU", 0) > 0
        cpus = sweep.cpus_per_trial if not has_gpu else max(1.0, min(sweep.cpus_per_trial, 2.0))

        gpu_mem = gpu_memory_bytes() if has_gpu else None

        def resources(config):
            if not has_gpu:
                return {"cpu": cpus}
            g, t = sweep.gpus_per_trial, config["trial"]
            batch = t.get("batch_size") or config.get("batch_size") or max(sweep.batch_sizes)   # optuna: drawn
            share = gpu_share(approx_params(t), trial_memory_bytes(t, batch), gpu_mem) if g == "auto" else float(g)
            return {"cpu": cpus, "gpu": share}

        runtime = {"glue_dir": sweep.glue_dir, "hub": sweep.hub, "threads": max(1, int(cpus)),
                   "trust_remote_code": sweep.trust_remote_code}
        finished = {r["trial_id"] for r in store.read_records(run_dir)[0] if r["status"] in store.FINAL}
        callback = make_callback(sweep, run_dir, attempts, finished, out)
        storage_path = storage or str((run_dir / "ray").resolve())
        for k, job in enumerate(jobs):
            if job.trials is not None:
                param_space = {"trial": tune.grid_search(job.trials), "runtime": runtime}
                search_alg, samples = None, 1
            else:
                import optuna
                from ray.tune.search.optuna import OptunaSearch

                optuna.logging.set_verbosity(optuna.logging.WARNING)

                param_space = {"trial": job.static, "runtime": runtime,
                               "batch_size": tune.choice(sweep.batch_sizes),
                               "learning_rate": tune.loguniform(sweep.learning_rates[0], sweep.learning_rates[1])}
                # a resumed study is seeded anew, so that it does not re-draw the first run's samples
                search_alg = OptunaSearch(metric="score", mode="max", seed=1000 * job.static["seed"] + len(job.seen),
                                          points_to_evaluate=[c for c, _ in job.seen] or None,
                                          evaluated_rewards=[r for _, r in job.seen] or None)
                samples = job.samples
                print(f"optuna study {job.static['group'].replace('|', ' / ')} seed {job.static['seed']}: "
                      f"{samples} trial(s), {len(job.seen)} known", file=out)
            tuner = tune.Tuner(
                tune.with_resources(trainable, resources),
                param_space=param_space,
                tune_config=tune.TuneConfig(metric="score", mode="max", search_alg=search_alg, num_samples=samples,
                                            scheduler=grouped_asha(sweep) if sweep.scheduler == "asha" else None,
                                            max_concurrent_trials=sweep.max_concurrent, reuse_actors=True,
                                            trial_name_creator=lambda t: trial_of(t.config)["trial_id"],
                                            trial_dirname_creator=lambda t: trial_of(t.config)["trial_id"][:120]),
                run_config=tune.RunConfig(name=f"attempt-{time.strftime('%Y%m%d-%H%M%S')}-{k}",
                                          storage_path=storage_path,
                                          failure_config=tune.FailureConfig(max_failures=sweep.retries),
                                          checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
                                          callbacks=[callback], stop=make_stopper(callback), verbose=0),
            )
            tuner.fit()
            if callback.write_error:
                raise UserError(f"{callback.write_error}; the sweep stopped. Finished records are kept: "
                                f"free space and run the same command again")
            records, _ = store.read_records(run_dir)
            final = {r["trial_id"] for r in records if r["status"] in store.FINAL}
            expected = {t["trial_id"] for t in job.trials} if job.trials is not None else set()
            if any(r["status"] == "running" for r in records) or not expected <= final:
                interrupted = True
                break
        print(f"sweep {sweep.name} {'stopped' if interrupted else 'finished'}: "
              + (", ".join(f"{v} {k}" for k, v in callback.counts.items() if v) or "no trial finished"), file=out)
        if callback.best:
            print(callback.summary(), file=out)
        if interrupted:
            print("the sweep is unfinished (interrupted): run the same command again to finish it", file=out)
            return 130
        return 0
    finally:
        ray.shutdown()
