"""The result store of a sweep: one JSON record per trial under ``<run>/trials/``.

A record holds the trial's configuration, its status and every dev evaluation so far. It is
rewritten atomically after each evaluation (a crash leaves the previous version, never a
torn file), so a running sweep can be read at any time and a resumed sweep knows exactly
which trials are finished. Readers ignore, and report, files that do not parse.

Record (schema 2)::

    {"schema": 2, "trial_id": "BERT-Tiny__SST-2__bs32_lr1e-4_s0", "sweep": "quickstart",
     "group": "BERT-Tiny|SST-2", "model": "BERT-Tiny",
     "trial": {"model": "google/bert_uncased_L-2_H-128_A-2", "task": "SST-2", "batch_size": 32,
               "learning_rate": 0.0001, "epochs": 4.0, "seed": 0, "init": "pretrained", ...},
     "status": "completed", "attempts": 1, "error": null,
     "evals": [{"epoch": 1.0, "step": 2105, "metrics": {"accuracy": 83.1}, "score": 83.1,
                "train_loss": 0.41, "elapsed_s": 35.2}, ...],
     "n_params": 4386178, "updated_at": "2026-11-21T12:00:00+00:00",
     "settings_hash": "3f1c...", "data_fingerprint": "9ab2..."}

``settings_hash`` is the trial's identity beyond its id (``identity.py``: every setting that
changes results, and the data's content); a re-run reuses a finished record only when it
matches. Records without one (written before it existed) are reused only when their
configuration matches in full, with a warning. A record whose ``trial_id`` is not its file
name, or whose fields have the wrong types, is reported and ignored (its trial runs again); so
is a record that contradicts itself: its id not the id of its own configuration (``lr1e-4`` in
the name, 0.3 in the configuration), or an evaluation's score not its task's headline of its
own metrics within rounding (``SCORE_ROUNDING``). JSON nested too deeply to parse is unreadable,
like any other malformed file.

``trial`` is ``TrialConfig.to_dict()``; ``TrialConfig.from_dict(record["trial"])`` is the way
back. Records of schema 1 (the configuration flat at the top level) are upgraded on reading.

Status: ``running`` (not finished), ``completed`` (ran every epoch), ``stopped`` (stopped
early by the scheduler: its evaluations are valid), ``diverged`` (NaN/inf loss) or
``failed`` (crashed after its retries). Only the last two never count as results.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..config import KIND_MARKS, Trial, TrialConfig, display_name, fmt_lr, kind_suffix, trial_id
from ..errors import UserError
from ..fileio import JSONTooDeep, read_json
from ..registry import tasks as task_registry
from ..registry.metrics import headline
from . import location as storage

log = logging.getLogger(__name__)

SCHEMA = 2
FINAL = frozenset({"completed", "stopped", "diverged", "failed"})
VALID = frozenset({"completed", "stopped", "running"})   # whose evaluations may be ranked
STATUSES = FINAL | {"running"}
REQUIRED = ("trial_id", "group", "model", "trial", "status", "evals")
# Schema 1 kept the configuration at the top level under these names (model_ref: the loaded model).
# How far an evaluation's score may lie from the headline of its metrics: rounding (half the
# tables' last digit), never a different result.
SCORE_ROUNDING = 0.05
V1_TRIAL_KEYS = ("task", "batch_size", "learning_rate", "epochs", "seed", "init", "max_train_examples", "max_length")


def trials_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "trials"


def record_path(run_dir: str | Path, trial_id: str) -> Path:
    return trials_dir(run_dir) / f"{trial_id}.json"


def record_location(run_dir: str | Path | storage.Location, trial_id: str) -> storage.Location:
    """Where a record lives, on any storage (``record_path`` is the local path)."""
    return storage.at(run_dir).join("trials", f"{trial_id}.json")


def write_record(run_dir: str | Path | storage.Location, record: dict) -> None:
    """Write a record whole: a crash leaves the old version or the new one (a local or shared
    disk: temporary file and rename; an object store: one PUT of the whole object)."""
    rec = dict(record)
    rec["schema"] = SCHEMA
    rec["updated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record_location(run_dir, rec["trial_id"]).write_text(json.dumps(rec, indent=2, sort_keys=False) + "\n")


def new_record(trial: Trial, sweep: str, model_label: str) -> dict:
    """The record of a trial not yet started."""
    return {"schema": SCHEMA, "trial_id": trial.id, "sweep": sweep, "group": trial.group, "model": model_label,
            "trial": trial.config.to_dict(), "status": "running", "attempts": 0, "error": None, "evals": []}


def config_of(rec: dict) -> TrialConfig:
    return TrialConfig.from_dict(rec["trial"])


def flat(rec: dict) -> dict:
    """A record with its configuration also at the top level (``model_ref``: the model loaded),
    the shape tables are built from; ``trial`` stays, so ``config_of`` still reads it."""
    out = dict(rec)
    trial = rec["trial"]
    out.update({k: v for k, v in trial.items() if k != "model"}, model_ref=trial["model"])
    return out


def upgrade(rec: dict) -> dict:
    """A schema-1 record in today's shape (the file is left as it is)."""
    if not isinstance(rec, dict) or rec.get("schema", 1) != 1 or "trial" in rec:
        return rec
    out = {k: v for k, v in rec.items() if k not in V1_TRIAL_KEYS + ("model_ref", "eval_every")}
    trial = {"model": rec.get("model_ref") or rec.get("model"), **{k: rec[k] for k in V1_TRIAL_KEYS if k in rec}}
    if rec.get("eval_every") is not None and float(rec["eval_every"]) < 1:
        trial["eval_every"] = rec["eval_every"]
    out.update(schema=SCHEMA, trial=trial, group=f"{rec.get('model')}|{rec.get('task')}")
    return out


_JSON_NUMBERS = frozenset((int, float))


def _number(v) -> bool:
    # JSON's own int and float first (the common case, fast), then their subclasses but bool
    return type(v) in _JSON_NUMBERS or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _eval_problem(e) -> str | None:
    if not isinstance(e, dict) or "score" not in e or "metrics" not in e:
        return "malformed evals"
    if not _number(e["score"]) or not _number(e.get("epoch", 0)):
        return "an evaluation's score or epoch is not a number"
    m = e["metrics"]
    if not isinstance(m, dict) or not all(map(_number, m.values())) or not all(type(k) is str for k in m):
        return "an evaluation's metrics are not numbers by name"
    return None


def check_record(rec) -> str | None:
    """Why a parsed record cannot be used (a missing field, a field of the wrong type), or None."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        return f"missing {', '.join(missing)}"
    for key in ("trial_id", "group", "model"):
        if not isinstance(rec[key], str) or not rec[key]:
            return f"{key} is not a name"
    if not isinstance(rec["status"], str) or rec["status"] not in STATUSES:
        return f"unknown status {str(rec['status'])[:40]!r}"
    if not isinstance(rec["evals"], list):
        return "malformed evals"
    why = next((w for w in map(_eval_problem, rec["evals"]) if w), None)
    if why:
        return why
    for key, ok in (("attempts", lambda v: isinstance(v, int) and not isinstance(v, bool)),
                    ("error", lambda v: isinstance(v, str)), ("n_params", _number), ("settings_hash", lambda v: isinstance(v, str))):
        if rec.get(key) is not None and not ok(rec[key]):
            return f"{key} has the wrong type"
    try:
        cfg = config_of(rec)
    except UserError as e:
        return f"bad trial configuration ({e})"
    return _id_problem(rec, cfg) or next((w for w in (_score_problem(e, cfg) for e in rec["evals"]) if w), None)


def _legacy_lr(lr: float) -> str:
    """The learning rate as trial ids wrote it before ``fmt_lr`` (one significant digit)."""
    return f"{lr:.0e}".replace("e-0", "e-")


def _id_problem(rec: dict, cfg: TrialConfig) -> str | None:
    """Why a record's trial id is not the id of its own configuration (an edited record), or
    None. The model's name is the record's row label without its marks; ``_r<n>`` is the
    suffix of a configuration sampled twice; ids of before ``fmt_lr`` (one digit) are accepted."""
    label, mark = rec["model"], display_name("", cfg.init, cfg.training)
    name = label[:-len(mark)] if mark and label.endswith(mark) else label.removesuffix(KIND_MARKS[cfg.training])
    want = trial_id(name, cfg.init, cfg.task, cfg.batch_size, cfg.learning_rate, cfg.seed, kind_suffix(cfg))
    lr = f"_lr{fmt_lr(cfg.learning_rate)}_s"
    forms = {want, want.replace(lr, f"_lr{_legacy_lr(cfg.learning_rate)}_s", 1)}
    tid = rec["trial_id"]
    if tid in forms or any(re.fullmatch(re.escape(f) + r"_r\d+", tid) for f in forms):
        return None
    return (f"its id says {tid[:120]!r} but its configuration is trial {want!r} (an edited record?)")


_KEYS: dict[tuple[str, str], list[str] | None] = {}


def _metric_keys(task: str) -> list[str] | None:
    """A task's metric keys (None: no such task), looked up once per task and task directory."""
    key = (str(task_registry.TASKS_DIR), task)
    if key not in _KEYS:
        try:
            _KEYS[key] = task_registry.get_task(task).metric_keys()
        except UserError:
            _KEYS[key] = None
    return _KEYS[key]


def _score_problem(e: dict, cfg: TrialConfig) -> str | None:
    """Why an evaluation's (finite) score is not its task's headline of its own metrics within
    rounding (``SCORE_ROUNDING``), or None. A non-finite score is never ranked anyway."""
    score = float(e["score"])
    if not math.isfinite(score):
        return None
    metrics = e["metrics"]
    keys = _metric_keys(cfg.task) or list(metrics)   # an unknown task: the leaderboard reports it
    try:
        want = headline({k: float(metrics[k]) for k in keys})
    except (KeyError, ValueError):   # a metric missing, or none at all
        missing = [k for k in keys if k not in metrics]
        return f"an evaluation's score {score:g} has no {', '.join(missing) or 'metrics'} to be the headline of"
    if not (math.isfinite(want) and abs(score - want) <= SCORE_ROUNDING):
        return (f"an evaluation's score {score:g} (epoch {e.get('epoch', '?')}) is not the headline of its metrics "
                f"({want:.2f}, the mean of {', '.join(keys)})")
    return None


def read_record(path: Path | storage.Location) -> tuple[dict | None, str | None]:
    rec, why = _read_one(path)[:2]
    return (rec, None) if why is None else (None, f"{path}: {why}")


def _read_one(path: Path | storage.Location | str) -> tuple[dict | None, str | None, str | None]:
    """(record, None, its JSON text) or (None, why it cannot be used: a line without the path, None).
    A ``str`` or ``Path`` is a local file's path."""
    try:
        if isinstance(path, (str, Path)):
            with open(path, encoding="utf-8") as f:
                text = f.read()
        else:
            text = storage.at(path).read_text()
        raw = read_json(text)
    except JSONTooDeep:
        return None, "unreadable (JSON nested too deeply)", None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"unreadable ({type(e).__name__})", None
    try:
        rec = upgrade(raw)
    except (TypeError, ValueError, KeyError):
        return None, "an old record that cannot be read", None
    why = check_record(rec)
    if why is None and rec["trial_id"] != os.path.basename(str(path)).removesuffix(".json"):
        why = f"holds trial {rec['trial_id'][:120]!r}, not the one its file name says (a copied record?)"
    if why is not None:
        return None, why, None
    return rec, None, (text if rec is raw else json.dumps(rec))   # an upgraded record: its new shape


def read_records(run_dir: str | Path | storage.Location, cache: bool = False) -> tuple[list[dict], list[str]]:
    """Every usable record of a run (sorted by trial id) and a line per file skipped; the run
    is a local directory or any storage location (``storage.at``). ``cache``: a local run's
    records are read through its cache (``CACHE_FILE``, the readers of results use it; the
    driver does not, and leaves a run's files as they were): only files that changed are read."""
    tdir = storage.at(run_dir).join("trials")
    if cache and tdir.local:
        return _read_local(Path(tdir.path))
    records, problems = [], []
    for path in tdir.files(".json"):
        rec, why = read_record(path)
        if rec is None:
            problems.append(why)
        else:
            records.append(rec)
    return records, problems


# ----------------------------------------------------------------------------- the records' cache
# A local run keeps its records, read and checked, in one Parquet file (``<run>/.records.parquet``,
# hidden, outside ``trials/``: never taken for a record): a row per trial file, keyed by its
# name, size, modification and change times (ns) and inode, holding the record (JSON) or why it was skipped.
# A file whose key changed (a record rewritten: the store's atomic writes give it a new inode), a
# new file, or one modified in the last RACY_S seconds (a timestamp's granularity could hide a
# second write) is read and checked again; files gone are dropped. The cache is rewritten
# atomically when anything changed, and ignored when it cannot be read or was made by other rules
# (``CACHE_VERSION``, the tasks' metric keys); where it cannot be written, records are read as
# always. Bump CACHE_VERSION whenever what ``check_record`` accepts changes.
CACHE_FILE = ".records.parquet"
CACHE_VERSION = 1
RACY_S = 2.0
_CACHE_SCHEMA = pa.schema([("name", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
                           ("ctime_ns", pa.int64()), ("ino", pa.int64()), ("record", pa.string()),
                           ("problem", pa.string())])


def _rules() -> str:
    """What a cached verdict depends on besides the file: the reader's rules and the tasks' metric keys."""
    tasks = [(t.name, list(t.aliases), t.metric_keys()) for t in task_registry.all_tasks().values()]
    digest = hashlib.sha256(json.dumps(tasks, sort_keys=True).encode()).hexdigest()[:16]
    return f"{CACHE_VERSION}:{SCHEMA}:{digest}"


def _load_cache(path: Path, rules: str) -> dict[str, tuple]:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException, ValueError):
        return {}
    meta = table.schema.metadata or {}
    if meta.get(b"rules") != rules.encode() or table.schema.remove_metadata() != _CACHE_SCHEMA:
        return {}
    cols = table.to_pydict()
    return {n: (k, r, p) for n, *k, r, p in zip(cols["name"], cols["size"], cols["mtime_ns"], cols["ctime_ns"],
                                               cols["ino"], cols["record"], cols["problem"])}


def _write_cache(path: Path, rows: list[tuple], rules: str) -> None:
    cols = list(zip(*rows)) if rows else [[] for _ in _CACHE_SCHEMA.names]
    table = pa.table(dict(zip(_CACHE_SCHEMA.names, cols)), schema=_CACHE_SCHEMA.with_metadata({"rules": rules}))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except OSError as e:   # a read-only store: read as always
        log.debug(f"records cache {path} not written: {e}")
        tmp.unlink(missing_ok=True)


def _read_local(tdir: Path) -> tuple[list[dict], list[str]]:
    try:
        entries = sorted((e for e in os.scandir(tdir) if e.name.endswith(".json") and not e.name.startswith(".")
                          and e.is_file()), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    rules, cache_path = _rules(), tdir.parent / CACHE_FILE
    cached = _load_cache(cache_path, rules)
    records, problems, rows, changed = [], [], [], len(cached) != len(entries)
    racy = time.time_ns() - int(RACY_S * 1e9)
    for e in entries:
        try:
            st = e.stat()
        except OSError:
            continue   # gone since the listing
        key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = cached.get(e.name)
        if hit is not None and hit[0] == key and max(st.st_mtime_ns, st.st_ctime_ns) < racy:
            text, why = hit[1], hit[2]
            rec = json.loads(text) if text is not None else None
        else:
            rec, why, text = _read_one(e.path)
            changed = True
        if max(st.st_mtime_ns, st.st_ctime_ns) < racy:
            rows.append((e.name, *key, text, why))
        if rec is None:
            problems.append(f"{e.path}: {why}")
        else:
            records.append(rec)
    if changed or len(rows) != len(cached):
        _write_cache(cache_path, rows, rules)
    return records, problems


def finished_ids(run_dir: str | Path) -> set[str]:
    """Trials that need no more work: a resumed sweep skips them."""
    recs, _ = read_records(run_dir)
    return {r["trial_id"] for r in recs if r["status"] in FINAL}


# The run's data source, recorded by the driver (``<run>/data.json``) so that later commands
# (``submit``) read the same data as the sweep did without being told again.
DATA_FILE = "data.json"


def write_data_source(run_dir: str | Path | storage.Location, glue_dir: str | None, hub: str | None) -> None:
    storage.at(run_dir).join(DATA_FILE).write_text(json.dumps({"glue_dir": glue_dir, "hub": hub}) + "\n")


def data_source(run_dir: str | Path | storage.Location) -> tuple[str | None, str | None]:
    """(glue_dir, hub) the run's sweep read, as absolute paths or hub ids; (None, None) when
    the run recorded none (a run from before this file existed)."""
    f = storage.at(run_dir).join(DATA_FILE)
    try:
        d = read_json(f.read_text())
    except (OSError, ValueError):
        return None, None
    if not isinstance(d, dict):
        return None, None
    return d.get("glue_dir") or None, d.get("hub") or None
