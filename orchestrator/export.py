"""``glue-sweep leaderboard RUN``: a run's leaderboards as CSV, Markdown, LaTeX, JSON, pictures
and one static HTML report.

Files (in ``<RUN>/export/`` unless ``--out``):

* ``leaderboard.csv``: the main export, one tidy row per (model, task): status/partial, score,
  score_std, n_seeds, every metric, batch_size, learning_rate, epoch, seed(s), trial counts;
* ``glue.csv``: one row per model, the GLUE Score, the Score without WNLI and every published
  metric column (cola_mcc ... ax_r3); ``configs.csv``: every configuration's mean score;
  ``comparison.csv``: ours beside the published figures (dev or test, said per row);
  ``compact.csv``: the compact-models table;
* ``leaderboard.md``, ``leaderboard.tex`` (booktabs), ``leaderboard.json``;
* ``figures/*.png`` and ``report.html`` (tables and pictures in one page that opens from disk:
  the pictures are embedded).

Pure of torch and ray; matplotlib (Agg) is imported only when pictures are drawn.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from .errors import UserError

FORMATS = ("csv", "md", "latex", "json", "html", "png")
NOTE_PARTIAL = ("`*` partial: a Score over the tasks present (missing ones are `-`), or a figure whose "
                "trials are still running; `-` no result (no trial, or only diverged/failed ones).")


# ----------------------------------------------------------------------------- loading

def load_run(run_dir: str | Path, final_epoch: bool = False):
    """The leaderboard of a run directory; UserError when it does not exist or has no trials."""
    from . import store
    from .leaderboard import build

    run = Path(run_dir)
    if not run.exists():
        raise UserError(f"run {run} does not exist")
    if not run.is_dir():
        raise UserError(f"run {run} is not a directory")
    tdir = store.trials_dir(run)
    files = sorted(tdir.glob("*.json")) if tdir.is_dir() else []
    if not files:
        raise UserError(f"run {run} has no trials ({tdir}/*.json)")
    records, problems = store.read_records(run)
    if not records:
        raise UserError(f"run {run}: none of its {len(files)} trial records can be read ({problems[0] if problems else '?'})")
    return build(records, problems, final_epoch=final_epoch)


def parse_formats(s: str) -> tuple[str, ...]:
    parts = [p.strip().lower() for p in str(s).split(",") if p.strip()]
    if not parts:
        raise UserError("no format given")
    out: list[str] = []
    for p in parts:
        if p == "all":
            out += FORMATS
        elif p in FORMATS:
            out.append(p)
        else:
            raise UserError(f"unknown format {p!r}; choose from {', '.join(FORMATS)} or all (comma-separated)")
    return tuple(dict.fromkeys(out))


def read_speedups(path: str | Path | None) -> dict[str, float]:
    """A JSON object of model -> measured inference speed-up over BERT-Base."""
    if not path:
        return {}
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"speed-ups file {p}: unreadable ({type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise UserError(f"speed-ups file {p}: must be a JSON object of model name -> speed-up")
    out = {}
    for k, v in raw.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise UserError(f"speed-ups file {p}: {k}: {v!r} is not a number") from None
    return out


# ----------------------------------------------------------------------------- tables

def tables(lb, speedups: dict | None = None) -> list[tuple[str, str, object, str]]:
    """(key, title, printed DataFrame, note) of every table of the report, in order."""
    from . import leaderboard as L

    sel = lb.selection
    out = [("glue", f"GLUE leaderboard (dev sets; {sel} of the best configuration)", L.glue_table(lb),
            NOTE_PARTIAL + " Score: GLUE's macro average over the 9 tasks, pairs averaged, MNLI as the mean of "
            "-m and -mm, AX excluded. AX is scored on the test server only.")]
    if _has_grid(lb):
        out.append(("grid_score", "BERT miniatures: GLUE Score by layers x hidden size", L.grid_table(lb, "Score"),
                    NOTE_PARTIAL))
        for t in L.GLUE_TASKS:
            if (lb.results["task"] == t).any():
                out.append((f"grid_{t.lower().replace('-', '')}", f"BERT miniatures: {t} by layers x hidden size",
                            L.grid_table(lb, t), "The task's headline score (mean of its metrics)."))
    out.append(("hparams", "Best hyperparameters per model and task", L.hyperparameter_table(lb),
                f"Score: mean ± std over seeds at the chosen epoch ({sel}); configurations ranked by the mean. "
                "Diverged and failed trials never count."))
    cmp_df = L.comparison_table(lb)
    out.append(("comparison", "Comparison with published figures", cmp_df,
                "Ours are always dev scores. A published test-server figure is not like for like; "
                "protocols differ (see Source)." if len(cmp_df) else "No published figures for the models of this run."))
    out.append(("compact", "Compact models (GLUE dev)", L.compact_table(lb, speedups, L.load_compact_reference()),
                "MNLI: MNLI-m accuracy; QQP and MRPC: accuracy. Avg: mean of the six GLUE columns (the published "
                "card's own average also counts SQuAD 2.0, so it is recomputed here). Speedup: measured inference "
                "speed-up over BERT-Base, `-` when not measured. #Params of ours from the trial records."))
    return out


def _has_grid(lb) -> bool:
    """Any pretrained miniature in the run (the grid holds only those)."""
    m = lb.models
    return bool(len(m)) and bool((m["layers"].notna() & (m["init"] == "pretrained")).any())


# ----------------------------------------------------------------------------- files

def _json_records(df) -> list[dict]:
    return json.loads(df.to_json(orient="records", double_precision=10))


def write_csv(lb, out: Path, speedups=None) -> list[Path]:
    from . import leaderboard as L

    files = {"leaderboard.csv": lb.results, "glue.csv": L.glue_wide(lb), "configs.csv": lb.configs,
             "comparison.csv": L.comparison(lb),
             "compact.csv": L.compact_values(lb, speedups, L.load_compact_reference())}
    paths = []
    for name, df in files.items():
        p = out / name
        floats = [c for c in df.select_dtypes(include="float").columns if c != "learning_rate"]
        df.assign(**{c: df[c].round(4) for c in floats}).to_csv(p, index=False)   # scores: 4 decimals
        paths.append(p)
    return paths


def _header_lines(lb, run_name: str) -> list[str]:
    return [f"run {run_name}", f"selection: {lb.selection} of the best configuration (config = batch size, learning rate; "
            f"mean over seeds)", f"{len(lb.models)} models, {len(lb.results)} (model, task) results, "
            f"{int(lb.results['n_trials'].sum()) if len(lb.results) else 0} trials"]


def render_markdown(lb, run_name: str, speedups=None, tabs=None) -> str:
    from .leaderboard import to_markdown

    parts = [f"# GLUE leaderboard: {run_name}", "", *[f"- {h}" for h in _header_lines(lb, run_name)[1:]], ""]
    if lb.problems:
        parts += [f"Skipped ({len(lb.problems)}):", "", *[f"- {p}" for p in lb.problems], ""]
    for key, title, df, note in (tabs if tabs is not None else tables(lb, speedups)):
        parts += [f"## {title}", "", to_markdown(df), "", note, ""]
    return "\n".join(parts)


def render_latex(lb, run_name: str, speedups=None, tabs=None) -> str:
    from .leaderboard import to_latex

    parts = [f"% GLUE leaderboard of run {run_name}; generated by glue-sweep leaderboard.",
             r"% Needs \usepackage{booktabs}.", ""]
    for key, title, df, note in (tabs if tabs is not None else tables(lb, speedups)):
        parts += [to_latex(df, caption=f"{title}. {note.replace('`', '')}", label=f"tab:{key}"), ""]
    return "\n".join(parts)


def render_json(lb, run_name: str, speedups=None) -> str:
    from . import leaderboard as L

    doc = {"run": run_name, "selection": lb.selection, "generated_at": _now(), "problems": lb.problems,
           "results": _json_records(lb.results), "glue": _json_records(L.glue_wide(lb)),
           "configs": _json_records(lb.configs), "comparison": _json_records(L.comparison(lb)),
           "compact": _json_records(L.compact_values(lb, speedups, L.load_compact_reference())),
           "models": _json_records(lb.models)}
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- pictures

def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "figure.dpi": 100, "savefig.dpi": 96})
    return plt


def pd_notna(v) -> bool:
    import pandas as pd

    return bool(pd.notna(v))


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "model"


def _heatmap(ax, values, row_labels, col_labels, cell_text, title, xlabel, ylabel, highlight=None, cmap="viridis"):
    import numpy as np
    import matplotlib.patches as patches
    import matplotlib

    arr = np.array(values, dtype=float)
    masked = np.ma.masked_invalid(arr)
    cm = matplotlib.colormaps[cmap].with_extremes(bad="#e6e6e6")
    finite = arr[np.isfinite(arr)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 1, vmax + 1
    im = ax.imshow(masked, cmap=cm, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(col_labels)), labels=col_labels)
    ax.set_yticks(range(len(row_labels)), labels=row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    for i in range(arr.shape[0]):
        for j in range(arr.shape[1]):
            v = arr[i, j]
            dark = math.isfinite(v) and (v - vmin) / (vmax - vmin) < 0.6
            ax.text(j, i, cell_text[i][j], ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    if highlight is not None:
        i, j = highlight
        ax.add_patch(patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    return im


def _grid_figure(plt, lb, what: str, ax, colorbar_label: str):
    from . import leaderboard as L
    from .models import NAMED

    vals, part = L.grid_values(lb, what), L.grid_partial(lb, what)
    text = []
    for l in vals.index:
        row = []
        for h in vals.columns:
            v = vals.loc[l, h]
            cell = (f"{v:.1f}" + (L.PARTIAL_MARK if part.loc[l, h] else "")) if math.isfinite(v) else "-"
            name = NAMED.get((int(l[2:]), int(h[2:])))
            row.append(f"{cell}\n{name}" if name else cell)
        text.append(row)
    im = _heatmap(ax, vals.values, [l[2:] for l in vals.index], [h[2:] for h in vals.columns], text,
                  f"{what} (dev)" if what != "Score" else "GLUE Score (dev)", "hidden size (H)", "layers (L)")
    plt.colorbar(im, ax=ax, label=colorbar_label, fraction=0.046, pad=0.04)


def write_figures(lb, fig_dir: Path) -> list[tuple[str, Path]]:
    """The pictures: the miniature grid (Score, and per task), score vs parameters, and a
    batch-size x learning-rate heatmap per (model, task). (caption, path) of each."""
    from . import leaderboard as L

    plt = _plt()
    fig_dir.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, Path]] = []

    def save(fig, name, caption, tight=True):
        p = fig_dir / name
        fig.savefig(p, **({"bbox_inches": "tight"} if tight else {}))
        plt.close(fig)
        made.append((caption, p))

    if _has_grid(lb):
        fig, ax = plt.subplots(figsize=(7.5, 6.5))
        _grid_figure(plt, lb, "Score", ax, "GLUE Score")
        save(fig, "grid_score.png", "GLUE Score of the BERT miniatures, layers x hidden size (grey: not run)")
        tasks = [t for t in L.GLUE_TASKS if (lb.results["task"] == t).any()]
        if tasks:
            ncols = min(3, len(tasks))
            nrows = math.ceil(len(tasks) / ncols)
            fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 5.4 * nrows), squeeze=False)
            for ax, t in zip(axes.flat, tasks):
                _grid_figure(plt, lb, t, ax, "score")
            for ax in list(axes.flat)[len(tasks):]:
                ax.axis("off")
            fig.suptitle("Per-task dev score of the BERT miniatures (layers x hidden size)", fontsize=13)
            fig.tight_layout(rect=(0, 0, 1, 0.97))
            save(fig, "grid_tasks.png", "Per-task headline dev score, layers x hidden size", tight=False)

    wide = L.glue_wide(lb).merge(lb.models[["model", "layers", "hidden"]], on="model", how="left")
    pts = wide[wide["n_params"].notna() & wide["score"].notna()].copy()
    if len(pts):
        from .models import NAMED

        fig, ax = plt.subplots(figsize=(10, 6.5))
        pts["x"] = pts["n_params"].astype(float) / 1e6
        colors = dict(zip((128, 256, 512, 768), ("tab:purple", "tab:blue", "tab:green", "tab:orange")))
        groups = [(h, pts[pts["hidden"] == h]) for h in sorted(pts["hidden"].dropna().unique())]
        groups.append((None, pts[pts["hidden"].isna()]))
        has_partial = False
        for h, g in groups:
            if g.empty:
                continue
            g = g.sort_values("x")
            color = colors.get(int(h), "tab:gray") if h is not None else "tab:gray"
            label = f"miniatures H={int(h)} (dev)" if h is not None else "other models (dev)"
            if h is not None and len(g) > 1:
                ax.plot(g["x"], g["score"], color=color, alpha=0.35, linewidth=1)
            full = ~g["score_partial"].astype(bool)
            ax.scatter(g["x"][full], g["score"][full], s=55, color=color, label=label, zorder=3)
            if (~full).any():
                ax.scatter(g["x"][~full], g["score"][~full], s=55, facecolors="white", edgecolors=color, zorder=3)
                has_partial = True
        for _, r in pts.iterrows():
            shape = (int(r["layers"]), int(r["hidden"])) if pd_notna(r["layers"]) else None
            named = shape in NAMED if shape else True
            text = r["model"] if named else f"{shape[0]}/{shape[1]}"
            ax.annotate(text, (r["x"], r["score"]), textcoords="offset points", xytext=(5, -3 if named else 4),
                        fontsize=9 if named else 7, fontweight="bold" if named else "normal",
                        color="black" if named else "#555")
        ref = L.load_reference()
        pub = ref[(ref["metric"] == "score") & ref["model"].isin(pts["model"])]
        if len(pub):
            px = [float(pts.loc[pts["model"] == m, "x"].iloc[0]) for m in pub["model"]]
            ax.scatter(px, pub["value"], marker="x", s=70, color="tab:red", label="published (GLUE test server)", zorder=4)
        if has_partial:
            ax.scatter([], [], s=55, facecolors="white", edgecolors="black", label="open: partial Score")
        ax.set_xscale("log")
        ax.set_xlabel("parameters (millions, log scale)")
        ax.set_ylabel("GLUE Score")
        ax.set_title("GLUE Score vs model size (miniatures labelled layers/hidden)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        save(fig, "score_vs_params.png", "GLUE Score against parameter count (ours: dev; x: published, test server)")

    for model in lb.models["model"]:
        cfg = lb.configs[lb.configs["model"] == model]
        tasks = [t for t in cfg["task"].unique()]
        if not tasks:
            continue
        ncols = min(3, len(tasks))
        nrows = math.ceil(len(tasks) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.0 * nrows), squeeze=False)
        for ax, t in zip(axes.flat, tasks):
            c = cfg[cfg["task"] == t]
            piv = c.pivot_table(index="batch_size", columns="learning_rate", values="score", aggfunc="mean")
            piv = piv.sort_index().sort_index(axis=1)
            best = c.sort_values("rank").iloc[0]
            hi = (list(piv.index).index(best["batch_size"]), list(piv.columns).index(best["learning_rate"]))
            text = [[f"{v:.1f}" if math.isfinite(v) else "-" for v in row] for row in piv.values]
            _heatmap(ax, piv.values, [str(int(b)) for b in piv.index], [L.fmt_lr(v) for v in piv.columns], text,
                     f"{t}: best bs {int(best['batch_size'])}, lr {L.fmt_lr(best['learning_rate'])}",
                     "learning rate", "batch size", highlight=hi, cmap="magma")
        for ax in list(axes.flat)[len(tasks):]:
            ax.axis("off")
        fig.suptitle(f"{model}: dev score by batch size x learning rate (mean over seeds; red: chosen)", fontsize=12)
        fig.tight_layout(rect=(0, 0, 1, 0.96 if nrows > 1 else 0.92))
        save(fig, f"hparams_{_slug(model)}.png", f"{model}: batch size x learning rate", tight=False)
    return made


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1300px;color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px;font-size:1.25em}
table.tbl{border-collapse:collapse;font-size:13px;margin:8px 0}
table.tbl th,table.tbl td{border:1px solid #ccc;padding:3px 8px;text-align:left;white-space:nowrap}
table.tbl th{background:#f0f3f7}table.tbl td.num{text-align:right;font-variant-numeric:tabular-nums}
table.tbl tr:nth-child(even) td{background:#fafafa}
p.note{font-size:12px;color:#555;max-width:1100px}.meta{color:#555;font-size:13px}
figure{margin:12px 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:12px;color:#555}
.problems{background:#fff4e5;border:1px solid #f0c36d;padding:6px 12px;font-size:12px}
.scroll{overflow-x:auto}
"""


def render_html(lb, run_name: str, figures: list[tuple[str, Path]], speedups=None, embed: bool = True,
                tabs=None) -> str:
    from .leaderboard import to_html

    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>GLUE leaderboard: {e(run_name)}</title>", f"<style>{_CSS}</style></head><body>",
           f"<h1>GLUE leaderboard: {e(run_name)}</h1>",
           "<p class='meta'>" + "<br>".join(e(h) for h in _header_lines(lb, run_name)[1:]) + f"<br>generated {e(_now())}</p>"]
    if lb.problems:
        out.append("<div class='problems'><b>Skipped</b><ul>" + "".join(f"<li>{e(p)}</li>" for p in lb.problems) + "</ul></div>")
    tabs = tabs if tabs is not None else tables(lb, speedups)
    figs = {p.name: (c, p) for c, p in figures}

    def fig_html(name):
        if name not in figs:
            return ""
        cap, p = figs[name]
        if embed:
            src = "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")
        else:
            src = e(f"{p.parent.name}/{p.name}")   # relative to report.html beside figures/
        return f"<figure><img src='{src}' alt='{e(cap)}'><figcaption>{e(cap)}</figcaption></figure>"

    def note_html(note):
        return "<p class='note'>" + re.sub(r"`([^`]*)`", r"<code>\1</code>", e(note)) + "</p>"

    for key, title, df, note in tabs:
        if key.startswith("grid_") and key != "grid_score":
            continue   # the per-task grids: in the picture and a collapsed block below
        out.append(f"<h2 id='{e(key)}'>{e(title)}</h2>")
        out.append(f"<div class='scroll'>{to_html(df)}</div>")
        out.append(note_html(note))
        if key == "glue":
            out.append(fig_html("score_vs_params.png"))
        if key == "grid_score":
            out.append(fig_html("grid_score.png"))
            out.append(fig_html("grid_tasks.png"))
            per_task = [(t, d) for k, t, d, _ in tabs if k.startswith("grid_") and k != "grid_score"]
            if per_task:
                out.append("<details><summary>Per-task grid tables</summary>")
                for t, d in per_task:
                    out.append(f"<h3>{e(t)}</h3><div class='scroll'>{to_html(d)}</div>")
                out.append("</details>")
        if key == "hparams":
            for name in sorted(n for n in figs if n.startswith("hparams_")):
                out.append(fig_html(name))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- command

def export(run_dir: str | Path, formats=("csv",), out_dir: str | Path | None = None, final_epoch: bool = False,
           speedups: dict | None = None) -> tuple[object, list[Path]]:
    """Write the chosen formats of a run's leaderboard; (leaderboard, files written)."""
    lb = load_run(run_dir, final_epoch=final_epoch)
    run = Path(run_dir)
    out = Path(out_dir) if out_dir else run / "export"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    name = run.resolve().name
    written: list[Path] = []
    tabs = tables(lb, speedups) if {"md", "latex", "html"} & set(formats) else None

    def put(fname, text):
        p = out / fname
        _write_text(p, text)
        written.append(p)

    if "csv" in formats:
        written += write_csv(lb, out, speedups)
    if "md" in formats:
        put("leaderboard.md", render_markdown(lb, name, speedups, tabs))
    if "latex" in formats:
        put("leaderboard.tex", render_latex(lb, name, speedups, tabs))
    if "json" in formats:
        put("leaderboard.json", render_json(lb, name, speedups))
    if "png" in formats or "html" in formats:
        figs = write_figures(lb, out / "figures")
        written += [p for _, p in figs]
        if "html" in formats:
            put("report.html", render_html(lb, name, figs, speedups, tabs=tabs))
    return lb, written


def _write_text(path: Path, text: str) -> None:
    """Atomically, readable like any file the user writes (the temp file is private)."""
    import os

    from .fileio import atomic_write_text

    atomic_write_text(path, text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _formats_arg(s: str) -> tuple[str, ...]:
    try:
        return parse_formats(s)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_leaderboard(a) -> int:
    from .leaderboard import glue_table, to_markdown

    lb, written = export(a.run, a.format, a.out, a.final_epoch, read_speedups(a.speedups))
    for p in lb.problems:
        print(f"glue-sweep: skipped {p}", file=sys.stderr)
    print(to_markdown(glue_table(lb)))
    partial = lb.results["partial"].any() if len(lb.results) else False
    if partial:
        print("(* partial: some trials are still running)")
    where = sorted({str(p.parent) for p in written})
    print(f"wrote {len(written)} file(s) to {', '.join(where)}", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("leaderboard", help="a run's leaderboards: CSV, Markdown, LaTeX, JSON, pictures, HTML report",
                       description="Best configuration per (model, task) of a run's result store, the GLUE Score, "
                                   "the miniature grid, best hyperparameters and the comparison with published figures.")
    p.add_argument("run", metavar="RUN", help="a run directory (holding trials/*.json)")
    p.add_argument("--format", type=_formats_arg, default=("csv",),
                   help=f"{', '.join(FORMATS)} or all; several comma-separated (default: csv)")
    p.add_argument("--out", default=None, help="output directory (default: RUN/export)")
    p.add_argument("--final-epoch", action="store_true",
                   help="judge each configuration at its last epoch instead of its best one")
    p.add_argument("--speedups", default=None, metavar="JSON",
                   help="measured inference speed-ups over BERT-Base, a JSON object model -> factor")
    p.set_defaults(func=cmd_leaderboard)
