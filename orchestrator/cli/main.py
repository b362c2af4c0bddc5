"""The ``glue-sweep`` command line. Bad input ends in one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..data.features import check_cache_dir
from ..errors import UserError
from ..results.compare import compare_table, run_names
from ..results.export import export, write_comparison, write_text
from ..results.formats import FORMATS, parse_formats, read_speedups
from ..results.load import load_run
from ..results.render import to_markdown
from ..results.tables import glue_table
from ..spec.plan import render
from ..spec.sweep import load
from ..store import location as storage
from ..sweep.address import is_loopback, jobs_address, resolve as resolve_address
from ..train import speed
from . import logs
from .args import positive_float, positive_int
from .console import dashboard_lines, dashboard_state, error_line, graph_scores, newest_run, status_text, watch
from .preflight import LOCAL_ONLY_ENV
from .submit import add_submit_command
from .train import add_train_command

EXIT_USAGE = 2

log = logging.getLogger("orchestrator.cli.main")   # by name: python -m runs this module as __main__


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + error
        self.exit(EXIT_USAGE, f"glue-sweep: error: {self.prog.split(' ', 1)[-1] + ': ' if ' ' in self.prog else ''}"
                              f"{message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="glue-sweep", description="Fine-tune compact BERT models on GLUE, sweep the paper's grid, "
                                               "build the leaderboards.")
    talk = p.add_mutually_exclusive_group()   # before the command: glue-sweep -q run ...
    talk.add_argument("-v", "--verbose", dest="log_verbose", action="store_true", help="also the debugging lines")
    talk.add_argument("-q", "--quiet", dest="log_quiet", action="store_true",
                      help="warnings and errors only, no progress lines (results are still printed)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (add_train_command, add_plan_command, add_run_command, add_job_command, add_dashboard_command,
                add_status_command,
                add_leaderboard_command, add_speed_command, add_submit_command):
        add(sub)
    return p


RUN_EXIT_CODES = """exit codes:
  0    every trial finished
  2    bad input (one line says what and where); nothing run
  3    the sweep ran to its end but some trials failed (named at the end; the same command retries them)
  4    the result store stopped taking records mid-sweep (every record written is whole; the same command resumes)
  130  interrupted (the same command finishes the sweep)"""


def add_plan_command(sub) -> None:
    pl = sub.add_parser("plan", help="validate a sweep and print its trials and compute, start nothing")
    pl.add_argument("sweep", help="a sweep spec, e.g. sweeps/paper.yaml")
    pl.set_defaults(func=cmd_plan)


def add_run_command(sub) -> None:
    r = sub.add_parser("run", help="run a sweep with Ray Tune (re-running finishes what is unfinished)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=RUN_EXIT_CODES)
    r.add_argument("sweep", help="a sweep spec, e.g. sweeps/quickstart.yaml")
    r.add_argument("--address", default=os.environ.get("RAY_ADDRESS") or None,
                   help="an existing Ray cluster (host:port or auto; default $RAY_ADDRESS, else a local Ray); for "
                        "a remote cluster prefer submit-job")
    r.add_argument("--resume", action="store_true", help="finish an existing sweep (the default behaviour, explicit)")
    r.add_argument("--storage", default=None, metavar="PATH_OR_URI",
                   help="where the result store lives: <storage>/<sweep>/trials/*.json (a path, NFS, s3://, gs://, "
                        "anything pyarrow.fs opens); default: the spec's results directory")
    r.add_argument("--results", default=None, help="results root (default: the spec's, usually results/)")
    r.add_argument("--retry-failed", action=argparse.BooleanOptionalAction, default=True,
                   help="run the trials that failed before again (default; --no-retry-failed keeps them failed)")
    r.add_argument("--insecure-dashboard", action="store_true",
                   help="start the local Ray without token authentication (not recommended)")
    r.add_argument("--no-job", action="store_true",
                   help="run the driver in this process, not as a Ray Job of the local Ray (then the dashboard's "
                        "Jobs page has no driver log); also GLUE_SWEEP_NO_JOB=1")
    r.set_defaults(func=cmd_run)


def add_job_command(sub) -> None:
    j = sub.add_parser("submit-job", help="submit a sweep to a Ray cluster as a Ray Job and return")
    j.add_argument("sweep", help="a sweep spec, e.g. sweeps/paper.yaml")
    j.add_argument("--address", default=None,
                   help="the cluster's dashboard, e.g. http://<head>:8265 (default: $RAY_ADDRESS, else the local one)")
    j.add_argument("--storage", default=None, metavar="PATH_OR_URI",
                   help="where the result store lives, reachable from the head node (a shared path, s3://, gs://, ...); "
                        "default: the spec's results directory made absolute")
    j.add_argument("--python", default="python",
                   help="the interpreter that runs the job on the head node, with the project's dependencies "
                        "(default: the python first on the PATH of the head's Ray); the job's log names it")
    j.add_argument("--wait", action="store_true", help="wait for the job to end and print its log")
    j.set_defaults(func=cmd_submit_job)


def add_dashboard_command(sub) -> None:
    d = sub.add_parser("dashboard", help="the Ray dashboard address and login token of a running sweep; "
                                         "Prometheus graphing its trials' dev scores while it runs")
    d.add_argument("run", nargs="?", default=None, help="results/<sweep> (default: the newest)")
    d.add_argument("--no-prometheus", action="store_true",
                   help="print the address and token only (default: also start Prometheus, when installed, on "
                        "127.0.0.1 with Ray's scrape configuration, until the sweep ends or Ctrl-C)")
    d.set_defaults(func=cmd_dashboard)


def add_status_command(sub) -> None:
    st = sub.add_parser("status", help="the live leaderboard of a sweep (running or finished)")
    st.add_argument("run", nargs="?", default=None, help="results/<sweep> (default: the newest)")
    st.add_argument("--watch", type=positive_float, default=None, metavar="SECONDS",
                    help="the live view (running trials, best per group, ETA), redrawn every SECONDS until the "
                         "sweep ends")
    st.set_defaults(func=cmd_status)


def _formats_arg(s: str) -> tuple[str, ...]:
    try:
        return parse_formats(s)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_leaderboard_command(sub) -> None:
    p = sub.add_parser("leaderboard", help="a run's leaderboards: CSV, Markdown, LaTeX, JSON, pictures, HTML report",
                       description="Best configuration per (model, task) of a run's result store, the GLUE Score, "
                                   "the miniature grid, best hyperparameters and the comparison with published figures.")
    p.add_argument("run", metavar="RUN", nargs="*",
                   help="a run directory (holding trials/*.json; default: the newest under results/); several: "
                        "their results side by side")
    p.add_argument("--format", type=_formats_arg, default=("csv",),
                   help=f"{', '.join(FORMATS)} or all; several comma-separated (default: csv)")
    p.add_argument("--out", default=None, help="output directory (default: RUN/export; several runs: "
                                               "the comparison is printed, and written here when given)")
    p.add_argument("--final-epoch", action="store_true",
                   help="judge each configuration at its last epoch instead of its best one")
    p.add_argument("--speedups", default=None, metavar="JSON",
                   help="measured inference speed-ups over BERT-Base, a JSON object model -> factor")
    p.add_argument("--uncertainty", action="store_true",
                   help="also each best cell's 95%% bootstrap interval over dev rows, its difference from the task's "
                        "best model (paired bootstrap; * where p < 0.05) and the held-out score of choosing the "
                        "configuration on half the dev rows (uncertainty.csv), from the stored outputs")
    p.add_argument("--ensemble", type=positive_int, default=None, metavar="K",
                   help="also the score of averaging each (model, task)'s K best configurations' stored outputs "
                        "(ensemble.csv)")
    p.set_defaults(func=cmd_leaderboard)


def _batch_sizes(s: str) -> list[int]:
    try:
        out = [int(x) for x in str(s).split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a comma-separated list of integers") from None
    if not out or any(b <= 0 for b in out):
        raise argparse.ArgumentTypeError(f"{s!r}: batch sizes must be positive")
    return out


def add_speed_command(sub) -> None:
    """``glue-sweep speed`` (orchestrator/train/speed.py)."""
    p = sub.add_parser("speed", help="measure parameters and inference speed-up over BERT-Base on this machine",
                       description="Parameter counts and inference throughput (random weights, same architecture) "
                                   "at each batch size; BERT-Base is measured in the same run for the speed-ups. "
                                   "Cached per model and machine.")
    p.add_argument("models", nargs="+", metavar="MODEL", help="model names (BERT-Tiny, DistilBERT, TinyBERT-4, ...)")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=list(speed.BATCH_SIZES), metavar="B,B",
                   help="comma-separated batch sizes (default: 1,128)")
    p.add_argument("--seq-len", type=int, default=speed.SEQ_LEN, help="sequence length (default: 128)")
    p.add_argument("--quick", action="store_true", help="fewer timed passes (noisier)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when there is one)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--refresh", action="store_true", help="measure again even when cached")
    p.add_argument("--out", default=None, metavar="JSON",
                   help="write {model: speed-up} for glue-sweep leaderboard --speedups")
    p.add_argument("--speedup-batch", type=int, default=None, metavar="B",
                   help="the batch size whose speed-up --out writes (default: the largest)")
    p.add_argument("--json", default=None, metavar="FILE", help="write every figure (and the machine) as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_speed)


def cmd_speed(args) -> int:
    if args.quiet:
        logs.quiet_progress()
    check_cache_dir()   # measured speeds are kept there
    result = speed.run(args.models, batch_sizes=args.batch_sizes, seq_len=args.seq_len, quick=args.quick,
                       device=args.device, threads=args.threads, refresh=args.refresh, out=args.out,
                       speedup_batch=args.speedup_batch, json_out=args.json)
    print(speed.render(result))
    if args.out:
        log.info(f"wrote speed-ups at batch size {args.speedup_batch or max(result['batch_sizes'])} to {args.out} "
                 f"(glue-sweep leaderboard RUN --speedups {args.out})")
    return 0


def cmd_plan(args) -> int:
    print(render(load(args.sweep)))
    return 0


def _run_arg(run: str | None):
    """A command's RUN: the newest under results/ when not given, else checked to answer (an
    empty path, a bucket-less URI or a store that does not answer: one line, within seconds)."""
    return newest_run() if run is None else storage.reachable(run)


def cmd_dashboard(args) -> int:
    run = newest_run(started=True) if args.run is None else _run_arg(args.run)   # a sweep started, no record yet
    print("\n".join(dashboard_lines(run)), flush=True)
    return 0 if args.no_prometheus else graph_scores(*dashboard_state(run))


def cmd_status(args) -> int:
    run = _run_arg(args.run)   # a directory or a storage URI (s3://bucket/prefix/<sweep>)
    if not args.watch:
        print(status_text(run))
        return 0
    return watch(run, args.watch)


def cmd_leaderboard(args) -> int:
    if len(args.run) > 1:
        return _compare(args)
    run = _run_arg(args.run[0] if args.run else None)
    sure = _Sureness(args, run)
    lb, written = export(run, args.format, args.out, args.final_epoch, read_speedups(args.speedups), sure.tables)
    for p in lb.problems:
        log.warning(f"glue-sweep: skipped {p}")
    print(to_markdown(glue_table(lb)))
    if len(lb.results) and lb.results["partial"].any():
        print("(* partial: some trials are still running)")
    if lb.budget is not None:
        print(lb.budget.line())
    written += sure.write(lb, Path(written[0]).parent if written else None)
    where = sorted({str(p.parent) for p in written})
    log.info(f"wrote {len(written)} file(s) to {', '.join(where)}")
    return 0


UNCERTAINTY_NOTE = ("95% bootstrap intervals over dev rows (1,000 resamples, seed 0); * : differs from the task's "
                    "best model, p < 0.05 (paired bootstrap); held-out: the configuration chosen on half the dev "
                    "rows, scored on the other half; optimism: what choosing on the same rows adds.")


class _Sureness:
    """``--uncertainty`` and ``--ensemble K``: computed once, as tables at the end of the reports
    (``tables``, export's ``extra``), printed, and written as CSV beside the other files (``write``)."""

    def __init__(self, args, run):
        self.args, self.run, self.frames = args, run, {}

    def _frames(self, lb) -> dict:
        from ..results import confidence

        if not self.frames:
            if self.args.uncertainty:
                self.frames["uncertainty"] = confidence.uncertainty_frame(lb, self.run)
            if self.args.ensemble:
                self.frames["ensemble"] = confidence.ensemble_frame(lb, self.run, self.args.ensemble)
        return self.frames

    def _ensemble_table(self, frame):
        return frame.assign(score=frame["score"].round(2), best_single=frame["best_single"].round(2))

    def tables(self, lb) -> list:
        from ..results import confidence
        from ..results.report import Table

        f, out = self._frames(lb), []
        if "uncertainty" in f:
            out.append(Table("uncertainty", "How sure: intervals, differences and the held-out score",
                             confidence.uncertainty_table(f["uncertainty"]), UNCERTAINTY_NOTE))
        if "ensemble" in f:
            out.append(Table("ensemble", f"Ensembles of the {self.args.ensemble} best configurations",
                             self._ensemble_table(f["ensemble"]),
                             "The mean of their stored outputs (every seed of each, at its epoch), beside the "
                             "best single configuration."))
        return out

    def write(self, lb, out: Path | None) -> list[Path]:
        from ..results import confidence

        f, written = self._frames(lb), []
        if "uncertainty" in f:
            print(f"\nHow sure ({UNCERTAINTY_NOTE[0].lower()}{UNCERTAINTY_NOTE[1:-1]}):")
            print(to_markdown(confidence.uncertainty_table(f["uncertainty"])))
            written.append(_write_csv(f["uncertainty"], out, "uncertainty.csv"))
        if "ensemble" in f:
            print(f"\nEnsembles of the {self.args.ensemble} best configurations (mean of their stored outputs):")
            print(to_markdown(self._ensemble_table(f["ensemble"])))
            written.append(_write_csv(f["ensemble"], out, "ensemble.csv"))
        return [p for p in written if p is not None]


def _write_csv(frame, out: Path | None, name: str) -> Path | None:
    if out is None:
        return None
    write_text(out / name, frame.to_csv(index=False))   # as every other export: atomic, readable
    return out / name


def _compare(args) -> int:
    names = run_names(args.run)
    boards = {n: load_run(_run_arg(r), final_epoch=args.final_epoch) for n, r in zip(names, args.run)}
    table = compare_table(boards)
    print(to_markdown(table))
    if args.out:
        written = write_comparison(boards, table, Path(args.out))
        log.info(f"wrote {len(written)} file(s) to {args.out}")
    return 0


def cmd_run(args) -> int:
    if not args.insecure_dashboard:   # must be in the environment before Ray is imported
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    s = load(args.sweep, results_root=args.results)
    # the address and the store answer (one line within seconds), before data, Ray or tokenising
    address = resolve_address(args.address)
    if args.storage is not None:
        storage.reachable(args.storage)
    if not address or is_loopback(address):   # Ray keeps loopback addresses (set before Ray is imported)
        os.environ.update(LOCAL_ONLY_ENV)
    from ..sweep import driver, local_job   # Ray: imported once RAY_AUTH_MODE is set
    from ..sweep.cluster import RunLock
    from ..sweep.paths import in_job, lock_dir, run_location

    if os.environ.get(local_job.LAUNCHER_ENV) and in_job():
        local_job.die_with_launcher()   # the driver of a local run's job
    elif local_job.wanted(address) and not args.no_job:   # the driver as a Ray Job of a local head
        loc = run_location(s, args.storage)

        def check():
            driver.check(s, args.storage, args.retry_failed)
            with RunLock(lock_dir(loc), str(loc)):   # a second run of the sweep: refused here, not in the job
                pass

        return local_job.run(s, args.argv, loc, not args.insecure_dashboard, check)
    return driver.run(s, address=address, storage_uri=args.storage, secure=not args.insecure_dashboard,
                      retry_failed=args.retry_failed)


def cmd_submit_job(args) -> int:
    if (Path.home() / ".ray" / "auth_token").is_file():   # the Jobs API wants Ray's token (set before Ray is imported)
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    s = load(args.sweep)
    if args.storage is not None:   # checked before Ray is imported: one line within seconds
        storage.reachable(args.storage)
    jobs_address(args.address)
    from ..sweep import ray_job as job

    return job.command(s, args.address, args.storage, args.python, args.wait)


def main(argv=None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):   # no command: the usage and every command, not an error line
        parser.print_help()
        return EXIT_USAGE
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)   # `run` passes them on to its Ray Job
    with logs.configured(logs.level(args.log_verbose, args.log_quiet)):
        return _command(args)


def _command(args) -> int:
    try:
        return args.func(args)
    except UserError as e:
        print("glue-sweep: error: " + error_line(str(e)), file=sys.stderr)   # always one line
        return EXIT_USAGE
    except OSError as e:   # a file or directory the command could not use: one line with its path
        if isinstance(e, BrokenPipeError):   # output piped into head and closed: not an error
            sys.stderr.close()
            return 0
        where = f"{e.filename}: " if e.filename else ""
        print("glue-sweep: error: " + error_line(f"{where}{e.strerror or e}"), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:   # on its own line, never glued to a progress line
        print(("\n" if sys.stderr.isatty() else "") + "glue-sweep: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
