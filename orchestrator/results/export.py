"""A run's leaderboards as files (in ``<RUN>/export/`` unless told otherwise):

* ``leaderboard.csv``: one tidy row per (model, task): status/partial, score, score_std, n_seeds,
  every metric, batch_size, learning_rate, epoch, seed(s), trial counts;
* ``glue.csv``: one row per model, the GLUE Score, the second Score and every published metric
  column (cola_mcc ... ax_r3); ``configs.csv``: every configuration's mean score;
  ``comparison.csv``: ours beside the published figures (dev or test, said per row);
  ``compact.csv``: the compact-models table;
* ``trials.csv`` and ``trials.parquet``: every dev evaluation, one tidy row each (:mod:`.tidy`);
* ``leaderboard.md``, ``leaderboard.tex`` (booktabs), ``leaderboard.json``;
* ``figures/*.{png,pdf,svg}`` and ``report.html`` (tables and pictures in one page that opens from disk).

The formats and the speed-ups file are read by :mod:`.formats`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..fileio import atomic_write_text
from ..store import location as storage, records as store
from .board import Leaderboard
from .compact import compact_values
from .compare import compare_frame
from .figures import drawing_workers, write_figures
from .formats import PICTURES
from .kinds import has_kinds, kinds_values
from .load import load_run_records
from .reference import comparison, load_compact_reference
from .render import to_markdown
from .report import html_report, latex_report, markdown_report, now, report_tables
from .tables import glue_wide
from .tidy import evaluations


def data_frames(lb: Leaderboard, speedups: dict | None = None) -> dict[str, pd.DataFrame]:
    """The numeric tables written as CSV and JSON, by name."""
    out = {"results": lb.results, "glue": glue_wide(lb), "configs": lb.configs, "comparison": comparison(lb),
           "compact": compact_values(lb, speedups, load_compact_reference())}
    return out | ({"kinds": kinds_values(lb)} if has_kinds(lb) else {})


def write_csv(lb: Leaderboard, out: Path, speedups: dict | None = None) -> list[Path]:
    names = {"results": "leaderboard.csv", "glue": "glue.csv", "configs": "configs.csv",
             "comparison": "comparison.csv", "compact": "compact.csv", "kinds": "kinds.csv"}
    paths = []
    for key, df in data_frames(lb, speedups).items():
        p = out / names[key]
        if lb.budget is not None:   # every table says what it measured
            df = df.assign(**lb.budget.columns())
        lists = [c for c in ("running_tasks", "missing_tasks") if c in df.columns]
        df = df.assign(**{c: df[c].replace("", "none") for c in lists})   # an empty cell would read back as NaN
        floats = [c for c in df.select_dtypes(include="float").columns if c != "learning_rate"]
        df.assign(**{c: df[c].round(4) for c in floats}).to_csv(p, index=False)   # scores: 4 decimals
        paths.append(p)
    return paths


def write_evaluations(run: Path, out: Path, records: list[dict] | None = None) -> list[Path]:
    """``trials.csv`` and ``trials.parquet``: every evaluation of the run's readable records
    (``records``: those already read)."""
    df = evaluations(store.read_records(run)[0] if records is None else records)
    csv, parquet = out / "trials.csv", out / "trials.parquet"
    write_text(csv, df.to_csv(index=False))
    tmp = out / ".trials.parquet.tmp"
    df.to_parquet(tmp, index=False)
    tmp.replace(parquet)
    return [csv, parquet]


def write_comparison(boards: dict[str, Leaderboard], table: pd.DataFrame, out: Path) -> list[Path]:
    """``compare.csv`` (long, numeric) and ``compare.md`` (the printed table) of several runs."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "compare.csv", compare_frame(boards).to_csv(index=False))
    write_text(out / "compare.md", to_markdown(table) + "\n")
    return [out / "compare.csv", out / "compare.md"]


def json_text(lb: Leaderboard, run_name: str, speedups: dict | None = None) -> str:
    records = {k: json.loads(df.to_json(orient="records", double_precision=10))
               for k, df in {**data_frames(lb, speedups), "models": lb.models}.items()}
    doc = {"run": run_name, "selection": lb.selection, "generated_at": now(), "problems": lb.problems,
           **{k: records[k] for k in ("results", "glue", "configs", "comparison", "compact", "kinds", "models")
              if k in records}}
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def write_text(path: Path, text: str) -> None:
    """Atomically, readable like any file the user writes (the temp file is private)."""
    atomic_write_text(path, text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def export(run_dir: str | Path, formats=("csv",), out_dir: str | Path | None = None, final_epoch: bool = False,
           speedups: dict | None = None, extra=None) -> tuple[Leaderboard, list[Path]]:
    """Write the chosen formats of a run's leaderboard; (leaderboard, files written). ``extra(lb)``:
    more tables (``report.Table``) for the end of the Markdown, LaTeX and HTML reports."""
    pictures = tuple(f for f in PICTURES if f in formats or (f == "png" and "html" in formats))
    workers = drawing_workers() if pictures else 1   # a bad setting refused before anything is written
    lb, records = load_run_records(run_dir, final_epoch=final_epoch)   # the records read once
    run = storage.at(run_dir)   # a run on an object store exports to ./export/<run> unless told
    out = Path(out_dir) if out_dir else Path(run.path) / "export" if run.local else Path("export") / run.name
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    name = run.name
    written: list[Path] = []
    tables = (report_tables(lb, speedups) + (extra(lb) if extra else [])) if {"md", "latex", "html"} & set(formats) \
        else []

    def put(fname: str, text: str) -> None:
        write_text(out / fname, text)
        written.append(out / fname)

    if "csv" in formats:
        written += write_csv(lb, out, speedups)
        written += write_evaluations(run, out, records)
    if "md" in formats:
        put("leaderboard.md", markdown_report(lb, name, tables))
    if "latex" in formats:
        put("leaderboard.tex", latex_report(name, tables))
    if "json" in formats:
        put("leaderboard.json", json_text(lb, name, speedups))
    if pictures:
        figs = write_figures(lb, out / "figures", pictures, workers)
        written += [p for _, p in figs]
        if "html" in formats:
            put("report.html", html_report(lb, name, figs, tables))
    return lb, written
