"""``glue-sweep train``: one model, one task, one configuration, fine-tuned on the gold labels
or, with ``--teacher DIR``, trained by Pre-trained Distillation on the teacher's soft labels
(read from, or computed once into, the same soft-label cache a sweep uses), printing the
per-epoch table and writing ``metrics.json`` (which records the kind of training and the teacher)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..config import Runtime, TrialConfig, make_trial
from ..data.features import check_cache_dir
from ..data.sources import source_from
from ..data.transfer import TRAIN, teacher_directory_problem, user_path
from ..errors import UserError
from ..fileio import atomic_write_json, check_writable_dir
from ..registry.models import resolve
from ..registry.tasks import all_tasks
from .args import config_arguments, config_values, data_arguments, device_arguments
from .console import Progress, evaluation_table
from .preflight import check_device

TEACHER_RECORD = ("directory", "fingerprint", "score", "metrics", "rows", "transfer")   # metrics.json's "teacher"


def add_train_command(sub) -> None:
    t = sub.add_parser("train", help="fine-tune (or distil) one model on one task with one configuration")
    d = t.add_argument_group("Pre-trained Distillation (train on a fine-tuned teacher's soft labels)")
    t.set_defaults(settings=config_arguments(t, TrialConfig, groups={"distillation": d}, helps={"task": _task_help()}))
    data_arguments(t)
    device_arguments(t, trust_remote_code=False)   # a TrialConfig field: its flag is made above
    d.add_argument("--teacher", default=None, metavar="DIR",
                   help="a fine-tuned model directory (saved with its tokenizer): the student learns its soft labels "
                        "on the training inputs (computed once, cached like a sweep's) (default: none, fine-tuning on "
                        "the gold labels)")
    d.add_argument("--transfer-file", action="append", default=[], metavar="TSV",
                   help="extra unlabelled transfer data (a TSV whose header names the task's text columns); repeatable (default: none)")
    d.add_argument("--then-finetune", action="store_true", help="then train the same epochs on the gold labels")
    t.add_argument("--save-model", action="store_true", help="also write the trained model (safetensors)")
    t.add_argument("--out", default=None, help="where metrics.json goes (default: results/train/<trial>)")
    t.add_argument("--quiet", action="store_true", help="no progress line")
    t.set_defaults(func=cmd_train)


def _task_help() -> str:
    """The trainable tasks of the task registry (a broken task file is reported when a task is looked up)."""
    try:
        return ", ".join(t.name for t in all_tasks().values() if t.trainable) + " (or an alias)"
    except UserError:
        return "a task name or alias"


def distillation(args: argparse.Namespace) -> dict:
    """The distillation settings of a ``train`` command besides ``--temperature`` and ``--alpha``
    (TrialConfig's flags): {} without ``--teacher``; bad ones are one line."""
    if not args.teacher:
        given = [f for f, v in (("--temperature", args.temperature), ("--alpha", args.alpha),
                                ("--then-finetune", args.then_finetune or None),
                                ("--transfer-file", args.transfer_file or None))
                 if v is not None]
        if given:
            raise UserError(f"{', '.join(given)}: distillation settings need --teacher DIR")
        return {}
    why = teacher_directory_problem(args.teacher)
    if why:
        raise UserError(why)
    files = []
    for f in args.transfer_file:
        p = user_path(f)
        if not p.is_file():
            raise UserError(f"--transfer-file {f} does not exist")
        files.append(str(p.resolve()))
    return dict(training="distill+fine-tune" if args.then_finetune else "distill",
                teacher=str(user_path(args.teacher).resolve()), transfer=[TRAIN, *files])


def cmd_train(args) -> int:
    from ..train import teacher
    from ..train.distill import run_stages
    from ..train.runner import prepare, run

    t0 = time.perf_counter()
    spec = resolve(args.model)
    cfg = TrialConfig(**{**config_values(args, args.settings), "model": spec.ref}, **distillation(args))
    source = source_from(args.glue_dir, args.hub)
    trial = make_trial(cfg, spec.name)
    out = Path(args.out) if args.out else Path("results") / "train" / trial.id
    check_writable_dir(out, "--out directory")   # before an epoch is spent on results nobody can keep
    check_cache_dir()
    check_device(args.device)
    record = {"trial_id": trial.id, "group": trial.group, "trial": cfg.to_dict(), "data": source.describe(),
              "training": cfg.training, "status": "running", "evals": []}
    soft = None
    if cfg.distilled:   # the teacher's soft labels: from the cache, or predicted now (once)
        soft, meta = teacher.for_config(cfg, source)
        record["teacher"] = {"teacher": cfg.teacher, **{k: meta[k] for k in TEACHER_RECORD if k in meta},
                             "soft_labels": str(soft)}
        print(f"teacher {cfg.teacher}: dev score {meta['score']:.2f}; soft labels of {meta['rows']} rows "
              f"({soft})", file=sys.stderr)
    runtime = Runtime(device=args.device, threads=args.threads,
                      save_dir=str(out / "model") if args.save_model else None,
                      soft_labels=str(soft) if soft else None)
    p = prepare(cfg, source, runtime=runtime)   # every input check happens here, before anything is written
    print(f"{trial.id}: {len(p.train)} training examples{' (transfer set)' if cfg.distilled else ''}, "
          f"{p.model.num_parameters():,} parameters, device {p.device}, data from {source.describe()}", file=sys.stderr)

    def on_eval(ev):
        print(("\n" if sys.stderr.isatty() and not args.quiet else ""), end="", file=sys.stderr)
        print(f"epoch {ev.epoch:g}: " + "  ".join(f"{k} {v:.2f}" for k, v in ev.metrics.items())
              + f"  score {ev.score:.2f}", file=sys.stderr)
        record["evals"].append(ev.as_dict())
        atomic_write_json(out / "metrics.json", record)

    res = run_stages(run, p, on_eval, Progress(args.quiet, cfg.epochs, cfg.batch_size), t0)   # distill+fine-tune: two
    record.update(status=res.status, note=res.note, n_params=res.n_params, train_examples=res.train_examples,
                  steps=res.steps, startup_s=res.startup_s, train_s=res.train_s, eval_s=res.eval_s,
                  examples_per_s=res.examples_per_s)
    atomic_write_json(out / "metrics.json", record)
    print(evaluation_table(p.task, res.evals))
    print(f"status {res.status}{(': ' + res.note) if res.note else ''}; "
          f"{res.examples_per_s:.0f} training examples/s; metrics in {out / 'metrics.json'}")
    return 0 if res.status == "completed" else 1
