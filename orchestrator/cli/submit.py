"""``glue-sweep submit``: the GLUE test-server zip of a run's best configurations (re-trained,
distilled students included: their teacher's soft labels come from the soft-label cache, or are
computed again from the teacher their records name), and ``submit --check ZIP``."""

from __future__ import annotations

import argparse
import sys

from ..data.features import check_cache_dir
from ..data.sources import source_from
from ..errors import UserError
from ..store import records as store
from .args import data_arguments, device_arguments


def add_submit_command(sub) -> None:
    p = sub.add_parser(
        "submit", help="a GLUE test-server zip from a run's best configurations (or --check a zip)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="For every task, model M's best configuration as the leaderboard chose it (batch size,\n"
                    "learning rate, the best of its seeds, its chosen epoch) predicts the test sets (AX with the\n"
                    "MNLI model): from the test outputs the trial stored when it ended (the very weights whose\n"
                    "dev score was chosen: no training), else, or with --retrain, by re-training it up to that\n"
                    "epoch on the trial's own schedule. Then it writes the zip the GLUE server\n"
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
    p.add_argument("run", metavar="RUN", nargs="?", help="a run directory (holding trials/*.json) or a storage URI; "
                                                         "its data are the ones the sweep read unless --glue-dir/--hub")
    p.add_argument("--model", default=None, help="the model as the leaderboard names it (e.g. BERT-Tiny, "
                                                 "'BERT-Tiny (random init)')")
    p.add_argument("--out", default=None, help="the zip to write (default: glue_submission_<model>.zip)")
    p.add_argument("--check", default=None, metavar="ZIP", help="validate ZIP against the test files instead")
    data_arguments(p)
    p.add_argument("--final-epoch", action="store_true",
                   help="use the configurations the leaderboard picks with --final-epoch")
    p.add_argument("--retrain", action="store_true",
                   help="re-train every chosen configuration instead of using its stored test outputs")
    device_arguments(p)
    p.set_defaults(func=cmd_submit)


def _print_missing(missing: dict[str, str] | list[str]) -> None:
    items = missing.items() if isinstance(missing, dict) else ((m, "") for m in missing)
    for name, why in items:
        print(f"  missing {name}" + (f": {why}" if why else ""), file=sys.stderr)


def cmd_submit(args) -> int:
    from .. import submit as submission
    source = source_from(args.glue_dir, args.hub)
    if args.check:
        if args.run or args.model:
            raise UserError("--check ZIP takes no RUN or --model")
        rep = submission.check_zip(args.check, source)
        for p in rep.problems:
            print(f"{rep.path}: {p}", file=sys.stderr)
        if rep.missing:
            print(f"{rep.path}: incomplete: {len(rep.missing)} of {len(submission.submission_files())} files missing:", file=sys.stderr)
            _print_missing(rep.missing)
        if not rep.ok:
            raise UserError(f"{rep.path}: not a valid GLUE submission ({len(rep.problems)} problem(s) above)")
        print(f"{rep.path}: {'valid but INCOMPLETE' if rep.missing else 'valid'}: {len(rep.rows)} file(s), "
              f"{sum(rep.rows.values())} rows checked against {source.describe()}")
        return submission.EXIT_INCOMPLETE if rep.missing else 0
    if not args.run or not args.model:
        raise UserError("submit needs RUN and --model M (or --check ZIP)")
    check_cache_dir()   # re-training fills it (features, soft labels)
    if not (args.glue_dir or args.hub):   # the data the run itself read, unless told otherwise
        glue_dir, hub = store.data_source(args.run)
        if glue_dir or hub:
            source = source_from(glue_dir, hub)
    path, rep, pl = submission.submit(args.run, args.model, source, args.out, args.final_epoch, args.device,
                                      args.threads, args.trust_remote_code, retrain=args.retrain)
    if pl.missing:
        print(f"{path}: INCOMPLETE submission: {len(pl.missing)} of {len(submission.submission_files())} files missing:",
              file=sys.stderr)
        _print_missing(pl.missing)
    print(f"wrote {path}: {len(rep.rows)} file(s), {sum(rep.rows.values())} rows, validated"
          + (" (incomplete)" if pl.missing else ""))
    return submission.EXIT_INCOMPLETE if pl.missing else 0
