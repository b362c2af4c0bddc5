"""A submission's files: each task's chosen configuration's test predictions, from the test
outputs its trial stored when it ended (``train.test_outputs``: the very weights whose dev
score was chosen), else (or with ``--retrain``) by re-training it; the validated zip."""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..config import Runtime
from ..data import features as feats
from ..errors import UserError
from ..registry.models import load_tokenizer
from ..store import outputs as stored
from ..results.select import epoch_key
from ..train import teacher as teachers
from ..train.runner import predict as model_predict, run_trial
from .choose import Choice, Plan, plan, slug
from .files import HEADER, SubmissionFile, incomplete_name, submission_files
from .validate import CheckReport, check_zip

log = logging.getLogger(__name__)


def predict(p, f: SubmissionFile, source, tokenizer) -> list[str]:
    """The rows (``index<TAB>prediction``) of one file, in the test file's order."""
    enc = feats.features(f.task, f.split, source, tokenizer, p.config.max_length)
    preds = model_predict(p, enc, regression=f.kind == "score")
    return [f"{idx}\t{f.format(v)}" for idx, v in zip(enc.index, preds)]


def train_and_predict(choice: Choice, source, device=None, threads=None,
                      trust_remote_code=False) -> tuple[dict[str, str], float | None]:
    """Re-train a choice up to its epoch and predict its files: (file name -> text, the
    re-trained dev score at that epoch). A distilled student learns again from its teacher's soft
    labels (the soft-label cache's, or computed again from the teacher its record names)."""
    cfg = choice.config()
    if trust_remote_code and not cfg.trust_remote_code:
        cfg = cfg.replace(trust_remote_code=True)
    soft = str(teachers.for_config(cfg, source)[0]) if cfg.distilled else None
    runtime = Runtime(device=device, threads=threads, soft_labels=soft)
    stop = epoch_key(choice.stop_epoch)
    seen = {}

    def after_prepare(prepared):
        seen.pop("score", None)
        seen["p"] = prepared

    def on_eval(ev):
        if epoch_key(ev.epoch) >= stop - 1e-6:
            seen["score"] = ev.score
            return ev.epoch >= cfg.epochs - 1e-6   # else stop here: the weights the leaderboard scored
        return True

    def on_restart(new_cfg, why):
        log.info(f"  out of memory ({why}): again with gradient accumulation {new_cfg.grad_accum}")

    # run_trial: an out-of-memory error restarts with smaller micro-batches, as in the sweep.
    res = run_trial(cfg, source, on_eval=on_eval, after_prepare=after_prepare, on_restart=on_restart, runtime=runtime)
    p = seen.pop("p")
    if res.status == "diverged":
        raise Diverged(res.note)
    if "score" not in seen:
        log.info(f"  note: the re-training never evaluated at epoch {choice.stop_epoch:g}; using its final weights")
    tokenizer = load_tokenizer(p.spec, cfg.init, cfg.trust_remote_code)
    out = {f.name: HEADER + "\n" + "\n".join(predict(p, f, source, tokenizer)) + "\n" for f in choice.files}
    del p
    return out, seen.get("score")


class Diverged(Exception):
    pass


def stored_texts(run_dir, choice: Choice, source) -> dict[str, str] | None:
    """The files of a choice from the test outputs its trial stored when it ended (the weights of
    the chosen epoch: the very model whose dev score the leaderboard shows), or None when they are
    not all there or no longer fit the test files (another row count)."""
    outs = stored.of_test(run_dir, choice.record, choice.stop_epoch)
    if outs is None:
        return None
    texts = {}
    for f in choice.files:
        arr = outs.get(f"{f.task.name}/{f.split}")
        index = source.load(f.task, f.split).index if arr is not None else None
        if arr is None or len(index) != len(arr):
            return None
        preds = arr.astype(np.float64) if f.kind == "score" else arr.astype(np.int64)   # scores or class ids
        texts[f.name] = HEADER + "\n" + "\n".join(f"{i}\t{f.format(v)}" for i, v in zip(index, preds)) + "\n"
    return texts


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
           threads=None, trust_remote_code: bool = False, retrain: bool = False) -> tuple[Path, CheckReport, Plan]:
    """Predict (from the stored test outputs of the chosen trials, else by re-training; always
    re-training with ``retrain``), write and validate a submission zip (see the module doc).
    Returns the path written (``*_INCOMPLETE.zip`` when files are missing), its check report
    and the plan (``plan.missing``: file -> why)."""
    pl = plan(run_dir, model, source, final_epoch)
    target = Path(out) if out else Path(f"glue_submission_{slug(pl.model)}.zip")
    if target.suffix.lower() != ".zip":
        raise UserError(f"--out {target}: the submission must be a .zip file")
    if target.exists() and target.is_dir():
        raise UserError(f"--out {target} is a directory")
    for n in pl.notes:
        log.info(f"note: {n}")
    if not pl.choices:
        raise UserError(f"nothing to submit for {pl.model}: " + "; ".join(f"{k}: {v}" for k, v in pl.missing.items()))
    texts: dict[str, str] = {}
    for c in pl.choices:
        got = None if retrain else stored_texts(run_dir, c, source)
        if got is not None:
            log.info(f"{c.task.name}: the stored test outputs of {c.record['trial_id']} at epoch {c.stop_epoch:g} "
                     f"(dev score {c.dev_score:.2f}; no re-training)")
            pl.dev_scores[c.task.name] = (c.dev_score, None)
            texts.update(got)
            continue
        if not retrain:
            log.info(f"{c.task.name}: no stored test outputs of {c.record['trial_id']} at epoch {c.stop_epoch:g} "
                     f"(a run from before they were kept, or a test file that changed): re-training")
        log.info(f"{c.task.name}: re-training {pl.model} with {c.describe()}")
        try:
            got, score = train_and_predict(c, source, device, threads, trust_remote_code)
        except Diverged as e:
            for f in c.files:
                pl.missing[f.name] = f"re-training {c.task.name} diverged ({e})"
            log.warning(f"  diverged ({e}); {', '.join(f.name for f in c.files)} will be missing")
            continue
        pl.dev_scores[c.task.name] = (c.dev_score, score)
        if score is not None:
            log.info(f"  dev score {score:.2f} (the sweep recorded {c.dev_score:.2f})")
        for name, text in got.items():
            log.info(f"  {name}: {text.count(chr(10)) - 1} rows")
        texts.update(got)
    if not texts:
        raise UserError(f"nothing to submit for {pl.model}: " + "; ".join(f"{k}: {v}" for k, v in pl.missing.items()))
    incomplete = bool(pl.missing)
    final = incomplete_name(target) if incomplete else target
    rep = write_zip(texts, final, source, incomplete)
    return final, rep, pl


