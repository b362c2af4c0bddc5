"""``glue-sweep submit``: a GLUE test-server submission (a zip of prediction files) from a
sweep's best configurations, and ``glue-sweep submit --check``, its validator.

For every task of one model, the configuration the leaderboard chose (``leaderboard.build``:
best batch size and learning rate, the epoch they were judged at) is re-trained with the
trial record's own settings (model_ref, init, batch size, learning rate, epochs, seed,
max_train_examples, max_length, eval_every). With several seeds, the seed that scored best at
the chosen epoch is used. Training keeps the trial's schedule (its ``epochs``: warm-up and
decay are unchanged) and stops at the chosen epoch, so the weights are the ones the leaderboard
scored; the re-trained dev score is printed beside the recorded one as a check. The model then
predicts its test split(s); AX is predicted with the MNLI model. The sweep keeps no weights
(``keep_best_checkpoint`` is not implemented), so every task is trained again.

The files follow :func:`submission_files`, derived from the task definitions: one per test
split (``MNLI-m.tsv``, ``MNLI-mm.tsv`` from the split tags), header ``index<TAB>prediction``,
one row per test example in the test file's order with its index; a classification prediction
is the task's file value ``Task.labels[class id]`` (0/1 for CoLA, SST-2, MRPC, QQP, WNLI;
entailment/neutral/contradiction for MNLI and AX; entailment/not_entailment for QNLI and RTE);
a regression prediction is clipped to ``Task.label_range`` with three decimals (STS-B).

A zip is written to a temporary file, validated, then renamed into place; one that fails the
validator is never written. When files are missing (no result for a task, or its test or
training data absent), the zip is named ``*_INCOMPLETE.zip``, the missing files and why are
listed, and the exit code is 1. The validator treats a zip whose name ends in
``_INCOMPLETE.zip`` the same way: missing files are listed, the rest is validated.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError
from .tasks import Task, all_tasks, get_task

HEADER = "index\tprediction"
INCOMPLETE_SUFFIX = "_INCOMPLETE"
EXIT_INCOMPLETE = 1
MAX_ROW_MESSAGES = 3          # per file and kind of problem; then "... and N more"


# ----------------------------------------------------------------------------- the files

@dataclass(frozen=True)
class SubmissionFile:
    """One file the GLUE server expects, and its conventions."""
    name: str                          # CoLA.tsv, MNLI-m.tsv, AX.tsv, ...
    task: Task                         # whose test split it answers
    split: str                         # that test split
    model_task: Task                   # whose fine-tuned model predicts it (MNLI for AX)
    kind: str                          # integer | label | score
    values: tuple[str, ...] = ()       # allowed predictions (integer, label)
    value_range: tuple[float, float] | None = None   # score

    def format(self, pred) -> str:
        """A model output (class id, or regression value) as the file writes it."""
        if self.kind == "score":
            lo, hi = self.value_range
            return f"{min(max(float(pred), lo), hi):.3f}"
        return self.model_task.labels[int(pred)]

    def problem(self, raw: str) -> str | None:
        """Why ``raw`` is not a valid prediction of this file, or None."""
        if self.kind == "score":
            lo, hi = self.value_range
            try:
                v = float(raw)
            except ValueError:
                return f"prediction {raw!r} is not a number"
            if not math.isfinite(v):
                return f"prediction {raw!r} is not a finite number"
            if not lo <= v <= hi:
                return f"prediction {raw} is outside [{lo:g}, {hi:g}]"
            return None
        if raw not in self.values:
            what = "an integer among" if self.kind == "integer" else "one of"
            return f"prediction {raw!r} is not {what} {', '.join(self.values)}"
        return None


def submission_files() -> list[SubmissionFile]:
    """The server's files, in GLUE table order, from the task definitions: one per test split
    (several test splits are told apart by their tags: MNLI-m, MNLI-mm)."""
    out = []
    for task in all_tasks().values():
        tests = task.test_splits
        if not tests:
            continue
        model_task = get_task(task.predict_with) if task.predict_with else task
        for s in tests:
            suffix = f"-{s.tag or s.name}" if len(tests) > 1 else ""
            if task.is_regression:
                f = SubmissionFile(f"{task.name}{suffix}.tsv", task, s.name, model_task, "score",
                                   value_range=tuple(float(x) for x in task.label_range))
            else:
                if model_task.is_regression or not set(model_task.labels) <= set(task.labels):
                    raise UserError(f"task {task.name}: its labels {list(task.labels)} do not cover those of "
                                    f"{model_task.name}, whose model predicts it")
                kind = "integer" if all(re.fullmatch(r"-?\d+", v) for v in task.labels) else "label"
                f = SubmissionFile(f"{task.name}{suffix}.tsv", task, s.name, model_task, kind, values=task.labels)
            out.append(f)
    return out


def incomplete_name(path: str | Path) -> Path:
    p = Path(path)
    return p if p.stem.endswith(INCOMPLETE_SUFFIX) else p.with_name(p.stem + INCOMPLETE_SUFFIX + p.suffix)


def is_incomplete_name(path: str | Path) -> bool:
    return Path(path).stem.endswith(INCOMPLETE_SUFFIX)


def _unavailable(source, task: Task, split: str) -> str | None:
    """Why a split cannot be read from the source (missing file), or None."""
    try:
        source.fingerprint(task, split)
    except UserError as e:
        return str(e)
    return None


# ----------------------------------------------------------------------------- the validator

@dataclass
class CheckReport:
    path: Path
    incomplete: bool                                   # missing files allowed (reported)
    problems: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)   # expected files absent from the zip
    rows: dict[str, int] = field(default_factory=dict)  # rows of every file checked

    @property
    def ok(self) -> bool:
        return not self.problems


def _expected_index(source, f: SubmissionFile) -> tuple[list[str] | None, str]:
    why = _unavailable(source, f.task, f.split)
    if why:
        return None, why
    data = source.load(f.task, f.split)
    return list(data.index), data.origin


def check_file(f: SubmissionFile, raw: bytes, expected: list[str], origin: str) -> list[str]:
    """Every problem of one prediction file against its test file's indices, each naming
    the file (and the line, where there is one)."""
    name = f.name
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        return [f"{name}:{line}: not valid UTF-8 (byte {e.start})"]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [l[:-1] if l.endswith("\r") else l for l in lines]
    if not lines:
        return [f"{name}: empty file (expected the header {HEADER!r} and {len(expected)} rows)"]
    problems = []
    if lines[0] != HEADER:
        problems.append(f"{name}:1: header must be {HEADER!r}, found {lines[0]!r}")
    got: list[str] = []
    value_msgs, n_bad_values, n_bad_shape = [], 0, 0
    for k, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 2:
            n_bad_shape += 1
            if n_bad_shape <= MAX_ROW_MESSAGES:
                problems.append(f"{name}:{k}: expected 2 tab-separated fields (index, prediction), found {len(fields)}")
            got.append(fields[0])
            continue
        got.append(fields[0])
        why = f.problem(fields[1])
        if why:
            n_bad_values += 1
            if n_bad_values <= MAX_ROW_MESSAGES:
                value_msgs.append(f"{name}:{k}: {why}")
    if n_bad_shape > MAX_ROW_MESSAGES:
        problems.append(f"{name}: ... and {n_bad_shape - MAX_ROW_MESSAGES} more rows without 2 fields")
    problems += value_msgs
    if n_bad_values > MAX_ROW_MESSAGES:
        problems.append(f"{name}: ... and {n_bad_values - MAX_ROW_MESSAGES} more rows with invalid predictions")

    # Rows against the test file: count, then the set of indices, then their order.
    first_line = {}
    dups = []
    for k, idx in enumerate(got, start=2):
        if idx in first_line:
            dups.append(f"{name}:{k}: index {idx!r} again (first at line {first_line[idx]})")
        else:
            first_line[idx] = k
    exp_set = set(expected)
    absent = [i for i in expected if i not in first_line]
    extra = [(i, first_line[i]) for i in first_line if i not in exp_set]
    if len(got) != len(expected):
        detail = []
        if absent:
            detail.append(f"no row for index {', '.join(repr(i) for i in absent[:5])}"
                          + (f" and {len(absent) - 5} more" if len(absent) > 5 else ""))
        if extra:
            detail.append(f"index {', '.join(repr(i) for i, _ in extra[:5])} not in the test file")
        problems.append(f"{name}: {len(got)} prediction rows, but the test file {origin} has {len(expected)}"
                        + (f" ({'; '.join(detail)})" if detail else ""))
    else:
        for i, line in extra[:MAX_ROW_MESSAGES]:
            problems.append(f"{name}:{line}: index {i!r} is not in the test file {origin}")
        if absent and not extra:
            problems.append(f"{name}: no row for index {', '.join(repr(i) for i in absent[:5])}")
    problems += dups[:MAX_ROW_MESSAGES]
    if len(dups) > MAX_ROW_MESSAGES:
        problems.append(f"{name}: ... and {len(dups) - MAX_ROW_MESSAGES} more repeated indices")
    if len(got) == len(expected) and not absent and not extra and not dups:
        wrong = [k for k, (g, e) in enumerate(zip(got, expected)) if g != e]
        if wrong:
            k = wrong[0]
            problems.append(f"{name}:{k + 2}: index {got[k]!r} out of order: the test file has index {expected[k]!r} "
                            f"in this position (rows must follow the test file's order; {len(wrong)} rows out of place)")
    return problems


def check_zip(path: str | Path, source, incomplete: bool | None = None) -> CheckReport:
    """Validate a submission zip against the test files of ``source``. With ``incomplete``
    (default: the file name ends in ``_INCOMPLETE.zip``) missing files are listed in
    ``missing`` instead of being problems; everything present is checked either way."""
    path = Path(path)
    rep = CheckReport(path, is_incomplete_name(path) if incomplete is None else incomplete)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{path} is not a readable zip file ({e})") from None
    files = submission_files()
    by_name = {f.name: f for f in files}
    with zf:
        entries = {}
        for info in zf.infolist():
            if info.is_dir():
                continue
            base = info.filename.rsplit("/", 1)[-1]
            if "/" in info.filename:
                if base in by_name:
                    rep.problems.append(f"{base}: is in the folder {info.filename.rsplit('/', 1)[0]!r} of the zip; "
                                        f"the server expects the files at its top level")
                else:
                    rep.problems.append(f"{info.filename}: unexpected file in the zip")
                continue
            if base not in by_name:
                rep.problems.append(f"{base}: unexpected file in the zip (the server expects {', '.join(by_name)})")
                continue
            entries[base] = info
        for f in files:
            if f.name not in entries:
                if rep.incomplete:
                    rep.missing.append(f.name)
                elif not any(p.startswith(f"{f.name}: is in the folder") for p in rep.problems):
                    rep.problems.append(f"{f.name}: missing (the server expects it; a zip named *{INCOMPLETE_SUFFIX}.zip "
                                        f"may lack files)")
                continue
            expected, origin = _expected_index(source, f)
            if expected is None:
                rep.problems.append(f"{f.name}: cannot be checked against its test data: {origin}")
                continue
            raw = zf.read(entries[f.name])
            rep.problems += check_file(f, raw, expected, origin)
            rep.rows[f.name] = max(0, raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1) - 1)
    return rep


# ----------------------------------------------------------------------------- choosing

@dataclass
class Choice:
    """How one task's model is obtained again: the leaderboard's configuration, one seed."""
    task: Task
    record: dict                 # the chosen seed's trial record
    stop_epoch: float            # train (on the trial's schedule) up to this epoch
    dev_score: float             # what the record says the dev score was there
    files: list[SubmissionFile]
    seeds: str                   # the configuration's seeds (comma-separated)

    def config(self):
        from .config import TrialConfig

        from dataclasses import fields

        r = self.record   # store.flat: the configuration at the top level, the model as model_ref
        return TrialConfig.from_dict({"model": r["model_ref"],
                                      **{f.name: r[f.name] for f in fields(TrialConfig) if f.name in r and f.name != "model"}})

    def describe(self) -> str:
        r = self.record
        epochs = float(r.get("epochs") or self.stop_epoch)
        seed_note = f"seed {r['seed']}" + (f" (best at that epoch of seeds {self.seeds})" if "," in self.seeds else "")
        return (f"batch size {r['batch_size']}, learning rate {float(r['learning_rate']):g}, {seed_note}, "
                f"epoch {self.stop_epoch:g} of {epochs:g}, "
                f"{r.get('max_train_examples') or 'all'} training examples, max length {r.get('max_length') or 128}")


@dataclass
class Plan:
    run: Path
    model: str                                            # the leaderboard's model label
    choices: list[Choice] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)   # file name -> why it is missing
    notes: list[str] = field(default_factory=list)
    dev_scores: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # task -> (recorded, re-trained)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9.\-]+", "-", s).strip("-")


def _match_model(lb, model: str) -> str:
    labels = list(lb.models["model"])
    want = model.strip().lower()
    exact = [l for l in labels if l.lower() == want or _slug(l).lower() == want]
    if len(exact) == 1:
        return exact[0]
    base = [r["model"] for r in lb.models.to_dict("records") if str(r["base_model"]).lower() == want
            or str(r.get("model_ref") or "").lower() == want]
    if len(base) == 1:
        return base[0]
    if len(base) > 1:
        raise UserError(f"model {model!r} is ambiguous in this run: give one of {', '.join(base)}")
    raise UserError(f"model {model!r} has no results in this run; its models: {', '.join(labels) or 'none'}")


def _eval_at(rec: dict, epoch: float | None) -> dict | None:
    from .leaderboard import _epoch_key, _usable_evals

    evs = sorted(_usable_evals(rec), key=lambda e: (float(e.get("epoch", 0)), e.get("step", 0)))
    if not evs:
        return None
    if epoch is None:
        return max(evs, key=lambda e: float(e["score"]))
    at = [e for e in evs if _epoch_key(e.get("epoch", 0)) == _epoch_key(epoch)]
    return at[-1] if at else None


def plan(run_dir: str | Path, model: str, source, final_epoch: bool = False) -> Plan:
    """What ``submit`` will train and write for ``model``, and which files will be missing
    and why. Reads the run and checks data files; trains nothing."""
    from . import store
    from .export import load_run
    from .leaderboard import _finite

    run = Path(run_dir)
    lb = load_run(run, final_epoch=final_epoch)
    label = _match_model(lb, model)
    records = {r["trial_id"]: store.flat(r) for r in store.read_records(run)[0]}
    results = {r["task"]: r for r in lb.results.to_dict("records") if r["model"] == label}
    out = Plan(run, label)
    by_model_task: dict[str, list[SubmissionFile]] = {}
    for f in submission_files():
        by_model_task.setdefault(f.model_task.name, []).append(f)

    for task_name, files in by_model_task.items():
        task = get_task(task_name)
        via = {f.name: (f" ({f.task.name} is predicted with the {task.name} model)" if f.task is not task else "")
               for f in files}
        row = results.get(task.name)
        if row is None or not _finite(row.get("score")):
            why = (f"no result for {label} on {task.name} in {run}" if row is None else
                   f"{label} has no usable {task.name} trial in {run} (only diverged or failed ones)")
            for f in files:
                out.missing[f.name] = why + via[f.name]
            continue
        if row.get("partial"):
            out.notes.append(f"{task.name}: trials are still running; the chosen configuration may still change")
        epoch = float(row["epoch"]) if _finite(row.get("epoch")) else None
        cands = []
        for tid in str(row["trial_ids"]).split(";"):
            rec = records.get(tid)
            ev = _eval_at(rec, epoch) if rec else None
            if ev is not None:
                cands.append((float(ev["score"]), -int(rec["seed"]), rec, ev))
        if not cands:
            for f in files:
                out.missing[f.name] = f"the trial records of {label}'s best {task.name} configuration are unreadable"
            continue
        score, _, rec, ev = max(cands, key=lambda c: (c[0], c[1]))
        # Data: every test file, and what re-training reads (train and dev splits).
        todo = []
        for f in files:
            why = _unavailable(source, f.task, f.split)
            if why:
                out.missing[f.name] = f"no test data: {why}"
            else:
                todo.append(f)
        if not todo:
            continue
        need = ["train"] + [s.name for s in task.eval_splits] if task.trainable else []
        why = next((w for w in (_unavailable(source, task, s) for s in need) if w), None)
        if not task.trainable:
            why = f"task {task.name} has no training split"
        if why:
            for f in todo:
                out.missing[f.name] = f"cannot re-train {task.name}: {why}" + via[f.name]
            continue
        out.choices.append(Choice(task, rec, float(ev.get("epoch", 0)) or float(rec.get("epochs") or 1),
                                  score, todo, str(row["seeds"])))
    return out


# ----------------------------------------------------------------------------- training, predicting

def predict(p, f: SubmissionFile, source, tokenizer) -> list[str]:
    """The rows (``index<TAB>prediction``) of one file, in the test file's order."""
    import contextlib

    import torch

    from . import features as feats
    from .runner import Collator

    enc = feats.features(f.task, f.split, source, tokenizer, p.config.max_length)
    model, device = p.model, p.device
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    collate = Collator(enc, p.use_token_types, device, pin=device.type == "cuda")
    order = np.argsort(enc.lengths, kind="stable")
    preds = np.zeros(len(enc), dtype=np.float64 if f.kind == "score" else np.int64)
    model.eval()
    with torch.inference_mode(), autocast():
        for i in range(0, len(order), p.config.eval_batch_size):
            rows = order[i:i + p.config.eval_batch_size]
            logits = model(**collate(rows)).logits.float()
            out = logits[:, 0] if f.kind == "score" else logits.argmax(-1)
            preds[rows] = out.cpu().numpy()
    return [f"{idx}\t{f.format(v)}" for idx, v in zip(enc.index, preds)]


def train_and_predict(choice: Choice, source, device=None, threads=None, trust_remote_code=False,
                      log=None) -> tuple[dict[str, str], float | None]:
    """Re-train a choice up to its epoch and predict its files: (file name -> text, the
    re-trained dev score at that epoch)."""
    from .leaderboard import _epoch_key
    from .models import load_tokenizer
    from .runner import run_trial

    log = log or (lambda msg: None)
    from .config import Runtime

    cfg = choice.config()
    if trust_remote_code and not cfg.trust_remote_code:
        cfg = cfg.replace(trust_remote_code=True)
    runtime = Runtime(device=device, threads=threads)
    stop = _epoch_key(choice.stop_epoch)
    seen = {}

    def after_prepare(prepared):
        seen.pop("score", None)
        seen["p"] = prepared

    def on_eval(ev):
        if _epoch_key(ev.epoch) >= stop - 1e-6:
            seen["score"] = ev.score
            return ev.epoch >= cfg.epochs - 1e-6   # else stop here: the weights the leaderboard scored
        return True

    def on_restart(new_cfg, why):
        log(f"  out of memory ({why}): again with gradient accumulation {new_cfg.grad_accum}")

    # run_trial: an out-of-memory error restarts with smaller micro-batches, as in the sweep.
    res = run_trial(cfg, source, on_eval=on_eval, after_prepare=after_prepare, on_restart=on_restart, runtime=runtime)
    p = seen.pop("p")
    if res.status == "diverged":
        raise _Diverged(res.note)
    if "score" not in seen:
        log(f"  note: the re-training never evaluated at epoch {choice.stop_epoch:g}; using its final weights")
    tokenizer = load_tokenizer(p.spec, cfg.init, cfg.trust_remote_code)
    out = {f.name: HEADER + "\n" + "\n".join(predict(p, f, source, tokenizer)) + "\n" for f in choice.files}
    del p
    return out, seen.get("score")


class _Diverged(Exception):
    pass


# ----------------------------------------------------------------------------- writing

def write_zip(texts: dict[str, str], out: Path, source, incomplete: bool) -> CheckReport:
    """Write the files to a temporary zip beside ``out``, validate it, rename it into place.
    A zip that fails validation is removed and UserError raised: nothing is written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    order = [f.name for f in submission_files() if f.name in texts]
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in order:
                zf.writestr(name, texts[name])
        rep = check_zip(tmp, source, incomplete=incomplete)
        if not rep.ok:
            raise UserError(f"the submission for {out} fails validation, nothing written: " + "; ".join(rep.problems))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    rep.path = out
    return rep


def submit(run_dir, model: str, source, out: str | Path | None = None, final_epoch: bool = False, device=None,
           threads=None, trust_remote_code: bool = False, log=None) -> tuple[Path, CheckReport, Plan]:
    """Re-train, predict, write and validate a submission zip (see the module doc).
    Returns the path written (``*_INCOMPLETE.zip`` when files are missing), its check report
    and the plan (``plan.missing``: file -> why)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    pl = plan(run_dir, model, source, final_epoch)
    target = Path(out) if out else Path(f"glue_submission_{_slug(pl.model)}.zip")
    if target.suffix.lower() != ".zip":
        raise UserError(f"--out {target}: the submission must be a .zip file")
    if target.exists() and target.is_dir():
        raise UserError(f"--out {target} is a directory")
    for n in pl.notes:
        log(f"note: {n}")
    if not pl.choices:
        raise UserError(f"nothing to submit for {pl.model}: " + "; ".join(f"{k}: {v}" for k, v in pl.missing.items()))
    texts: dict[str, str] = {}
    for c in pl.choices:
        log(f"{c.task.name}: re-training {pl.model} with {c.describe()}")
        try:
            got, score = train_and_predict(c, source, device, threads, trust_remote_code, log)
        except _Diverged as e:
            for f in c.files:
                pl.missing[f.name] = f"re-training {c.task.name} diverged ({e})"
            log(f"  diverged ({e}); {', '.join(f.name for f in c.files)} will be missing")
            continue
        pl.dev_scores[c.task.name] = (c.dev_score, score)
        if score is not None:
            log(f"  dev score {score:.2f} (the sweep recorded {c.dev_score:.2f})")
        for name, text in got.items():
            log(f"  {name}: {text.count(chr(10)) - 1} rows")
        texts.update(got)
    if not texts:
        raise UserError(f"nothing to submit for {pl.model}: " + "; ".join(f"{k}: {v}" for k, v in pl.missing.items()))
    incomplete = bool(pl.missing)
    final = incomplete_name(target) if incomplete else target
    rep = write_zip(texts, final, source, incomplete)
    return final, rep, pl


# ----------------------------------------------------------------------------- command line

def _print_missing(missing: dict[str, str] | list[str]) -> None:
    items = missing.items() if isinstance(missing, dict) else ((m, "") for m in missing)
    for name, why in items:
        print(f"  missing {name}" + (f": {why}" if why else ""), file=sys.stderr)


def cmd_submit(a) -> int:
    from .data import source_from

    source = source_from(a.glue_dir, a.hub)
    if a.check:
        if a.run or a.model:
            raise UserError("--check ZIP takes no RUN or --model")
        rep = check_zip(a.check, source)
        for p in rep.problems:
            print(f"{rep.path}: {p}", file=sys.stderr)
        if rep.missing:
            print(f"{rep.path}: incomplete: {len(rep.missing)} of {len(submission_files())} files missing:", file=sys.stderr)
            _print_missing(rep.missing)
        if not rep.ok:
            raise UserError(f"{rep.path}: not a valid GLUE submission ({len(rep.problems)} problem(s) above)")
        print(f"{rep.path}: {'valid but INCOMPLETE' if rep.missing else 'valid'}: {len(rep.rows)} file(s), "
              f"{sum(rep.rows.values())} rows checked against {source.describe()}")
        return EXIT_INCOMPLETE if rep.missing else 0
    if not a.run or not a.model:
        raise UserError("submit needs RUN and --model M (or --check ZIP)")
    path, rep, pl = submit(a.run, a.model, source, a.out, a.final_epoch, a.device, a.threads, a.trust_remote_code)
    if pl.missing:
        print(f"{path}: INCOMPLETE submission: {len(pl.missing)} of {len(submission_files())} files missing:",
              file=sys.stderr)
        _print_missing(pl.missing)
    print(f"wrote {path}: {len(rep.rows)} file(s), {sum(rep.rows.values())} rows, validated"
          + (" (incomplete)" if pl.missing else ""))
    return EXIT_INCOMPLETE if pl.missing else 0


def register(sub) -> None:
    p = sub.add_parser(
        "submit", help="a GLUE test-server zip from a run's best configurations (or --check a zip)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Re-train, for every task, model M's best configuration as the leaderboard chose it (batch\n"
                    "size, learning rate, the best of its seeds, up to the chosen epoch on the trial's own\n"
                    "schedule), predict the test sets (AX with the MNLI model) and write the zip the GLUE server\n"
                    "expects: CoLA.tsv SST-2.tsv MRPC.tsv STS-B.tsv QQP.tsv MNLI-m.tsv MNLI-mm.tsv QNLI.tsv\n"
                    "RTE.tsv WNLI.tsv AX.tsv, each 'index<TAB>prediction' in the test file's order. The zip is\n"
                    "validated before it is written; --check ZIP validates an existing one.",
        epilog="missing files:\n"
               "  When a task has no result for the model, or its test or training data are absent, its\n"
               "  files are left out, the zip is named <out>_INCOMPLETE.zip (e.g.\n"
               "  glue_submission_BERT-Tiny_INCOMPLETE.zip) and each missing file is listed with the reason.\n"
               "  --check treats a zip named *_INCOMPLETE.zip the same way (missing files listed, the rest\n"
               "  validated); any other zip must hold all 11 files.\n"
               "exit codes:\n"
               "  0 a complete, valid zip; 1 a valid but incomplete zip; 2 an error or an invalid zip")
    p.add_argument("run", metavar="RUN", nargs="?", help="a run directory (holding trials/*.json)")
    p.add_argument("--model", default=None, help="the model as the leaderboard names it (e.g. BERT-Tiny, "
                                                 "'BERT-Tiny (random init)')")
    p.add_argument("--out", default=None, help="the zip to write (default: glue_submission_<model>.zip)")
    p.add_argument("--check", default=None, metavar="ZIP", help="validate ZIP against the test files instead")
    p.add_argument("--glue-dir", default=None, help="GLUE data directory (default: $GLUE_DIR, else the hub)")
    p.add_argument("--hub", default=None, help="hub dataset id or a local directory in its parquet layout")
    p.add_argument("--final-epoch", action="store_true",
                   help="use the configurations the leaderboard picks with --final-epoch")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when there is one)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a checkpoint's own code to run")
    p.set_defaults(func=cmd_submit)
