"""The pictures of a leaderboard (PNG at 300 dpi, pages of panels at 150; PDF, SVG): the miniature
grid (the Score, and per task), the Score against parameter count, a batch-size x learning-rate
heatmap per (model, task) with one colour scale per task across models, and the learning curves
of each (model, task)'s best configuration. How they are drawn: :mod:`.drawing`; which are on
disk already: :mod:`.drawn`.

matplotlib is imported inside the functions that draw, not at the top: it is heavy (about a
second to import) and everything else in the package works without it.
"""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ..registry.models import NAMED
from ..registry.tasks import all_tasks
from .board import Leaderboard
from .curves import learning_curves
from .drawing import DPI, colorbar, file_slug, heatmap, log_millions_axis, page_layout, panels, pyplot
from .drawn import Saver, base_digest, drawing_workers, save_options
from .kinds import TEACHER_KIND, has_kinds, kinds_values
from .reference import load_reference
from .tables import glue_wide, grid_partial, grid_tasks, grid_values, has_grid
from .values import MISSING, PARTIAL_MARK, finite, fmt_lr

SHARED_LEGEND_OVER = 8   # learning curves of more models: one legend for the page, without each one's configuration
HIDDEN_COLORS = {128: "tab:purple", 256: "tab:blue", 512: "tab:green", 768: "tab:orange"}
FIGURE_FORMATS = ("png", "pdf", "svg")
PAGE_DPI = 150   # PNG of a page of panels (a model's heatmaps, the grid per task, the learning curves: 15 to 19
                 # inches wide, 2,300 to 2,800 pixels); 300 for the single pictures


def grid_figure(plt, lb: Leaderboard, what: str, ax, colorbar_label: str) -> None:
    """The miniature grid of ``what`` (``Score`` or a task) on ``ax``."""
    vals, part = grid_values(lb, what), grid_partial(lb, what)
    text = []
    for l in vals.index:
        row = []
        for h in vals.columns:
            v = vals.loc[l, h]
            cell = (f"{v:.1f}" + (PARTIAL_MARK if part.loc[l, h] else "")) if math.isfinite(v) else MISSING
            name = NAMED.get((int(l[2:]), int(h[2:])))
            row.append(f"{cell}\n{name}" if name else cell)
        text.append(row)
    im = heatmap(ax, vals.values, [l[2:] for l in vals.index], [h[2:] for h in vals.columns], text,
                 f"{what} (dev)" if what != "Score" else "GLUE Score (dev)", "hidden size (H)", "layers (L)")
    colorbar(plt, im, ax, colorbar_label)


def draw_grids(plt, lb: Leaderboard, save, board=()) -> None:
    if not has_grid(lb):
        return
    tasks = grid_tasks(lb)
    names = ["grid_score.png"] + (["grid_tasks.png"] if tasks else [])
    if all([save.drawn(n, *board) for n in names]):
        return
    save.made[:] = [m for m in save.made if m[1].name.rsplit(".", 1)[0] + ".png" not in names]
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    grid_figure(plt, lb, "Score", ax, "GLUE Score")
    save(fig, "grid_score.png", "GLUE Score of the BERT miniatures, layers x hidden size (grey: not run)")
    if not tasks:
        return
    fig, axes = panels(plt, len(tasks), 6.2, 5.4)
    for ax, t in zip(axes, tasks):
        grid_figure(plt, lb, t, ax, "score")
    fig.suptitle("Per-task dev score of the BERT miniatures (layers x hidden size)", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.97))   # fits the page: saved as it is, without a second layout pass
    save(fig, "grid_tasks.png", "Per-task headline dev score, layers x hidden size", tight=False, dpi=PAGE_DPI)


def _score_points(ax, pts: pd.DataFrame) -> bool:
    """Our models, one colour per hidden size (open: partial Score); True when any is partial."""
    groups = [(h, pts[pts["hidden"] == h]) for h in sorted(pts["hidden"].dropna().unique())]
    groups.append((None, pts[pts["hidden"].isna()]))
    has_partial = False
    for h, g in groups:
        if g.empty:
            continue
        g = g.sort_values("x")
        color = HIDDEN_COLORS.get(int(h), "tab:gray") if h is not None else "tab:gray"
        label = f"miniatures H={int(h)} (dev)" if h is not None else "other models (dev)"
        if h is not None and len(g) > 1:
            ax.plot(g["x"], g["score"], color=color, alpha=0.35, linewidth=1)
        full = ~g["score_partial"].astype(bool)
        ax.scatter(g["x"][full], g["score"][full], s=55, color=color, label=label, zorder=3)
        if (~full).any():
            ax.scatter(g["x"][~full], g["score"][~full], s=55, facecolors="white", edgecolors=color, zorder=3)
            has_partial = True
    for _, r in pts.iterrows():
        shape = (int(r["layers"]), int(r["hidden"])) if pd.notna(r["layers"]) else None
        named = shape in NAMED if shape else True
        ax.annotate(r["model"] if named else f"{shape[0]}/{shape[1]}", (r["x"], r["score"]),
                    textcoords="offset points", xytext=(5, -3 if named else 4), fontsize=9 if named else 7,
                    fontweight="bold" if named else "normal", color="black" if named else "#555")
    return has_partial


def draw_score_vs_params(plt, lb: Leaderboard, save, board=()) -> None:
    if save.drawn("score_vs_params.png", *board):
        return
    wide = glue_wide(lb).merge(lb.models[["model", "layers", "hidden"]], on="model", how="left")
    pts = wide[wide["n_params"].notna() & wide["score"].notna()].copy()
    if not len(pts):
        return
    fig, ax = plt.subplots(figsize=(10, 6.5))
    pts["x"] = pts["n_params"].astype(float) / 1e6
    has_partial = _score_points(ax, pts)
    ref = load_reference()
    pub = ref[(ref["metric"] == "score") & ref["model"].isin(pts["model"])]
    if len(pub):
        px = [float(pts.loc[pts["model"] == m, "x"].iloc[0]) for m in pub["model"]]
        ax.scatter(px, pub["value"], marker="x", s=70, color="tab:red", label="published (GLUE test server)", zorder=4)
    if has_partial:
        ax.scatter([], [], s=55, facecolors="white", edgecolors="black", label="open: partial Score")
    log_millions_axis(ax)
    ax.set(xlabel="parameters (log scale)", ylabel="GLUE Score",
           title="GLUE Score vs model size (miniatures labelled layers/hidden)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    save(fig, "score_vs_params.png", "GLUE Score against parameter count (ours: dev; x: published, test server)")


def tied_best(c: pd.DataFrame) -> pd.DataFrame:
    """The configurations of one (model, task) that share the best mean score (at 0.01)."""
    top = c["score"].max()
    return c[np.isclose(c["score"], top, rtol=0, atol=0.005)].sort_values("rank")


def task_scales(configs: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """One colour scale per task, shared by every model: (lowest, highest) configuration score."""
    ok = configs[np.isfinite(configs["score"].astype(float))]
    return {t: (float(g["score"].min()), float(g["score"].max())) for t, g in ok.groupby("task")}


def _hparam_panel(plt, ax, t: str, c: pd.DataFrame, scale) -> None:
    piv = c.pivot_table(index="batch_size", columns="learning_rate", values="score", aggfunc="mean")
    piv = piv.sort_index().sort_index(axis=1)
    best = tied_best(c)
    hi = [(list(piv.index).index(b), list(piv.columns).index(lr)) for b, lr in zip(best["batch_size"],
                                                                                  best["learning_rate"])]
    stopped = {}   # (batch size, learning rate) -> the epoch a configuration stopped early reached
    if "stopped" in c.columns:
        for r in c[c["stopped"].astype(bool)].itertuples():
            stopped[(r.batch_size, r.learning_rate)] = r.epochs_reached
    text = [[(f"{v:.1f}" if math.isfinite(v) else MISSING)
             + (f"\n(ep {stopped[(b, lr)]:g})" if (b, lr) in stopped and finite(stopped[(b, lr)]) else "")
             for lr, v in zip(piv.columns, row)] for b, row in zip(piv.index, piv.values)]
    b0 = best.iloc[0]
    title = (f"{t}: {len(best)} configurations tie" if len(best) > 1 else
             f"{t}: best bs {int(b0['batch_size'])}, lr {fmt_lr(b0['learning_rate'])}")
    if scale:   # every cell prints its score: the scale is named, not drawn as a colour bar
        title += f"\n(colours from {scale[0]:.1f} to {scale[1]:.1f})"
    heatmap(ax, piv.values, [str(int(b)) for b in piv.index], [fmt_lr(v) for v in piv.columns], text,
            title, "learning rate", "batch size", highlight=hi, cmap="magma", scale=scale)


def draw_hparams(plt, lb: Leaderboard, save, workers: int = 1, meanwhile=None) -> None:
    """Per model, a batch-size x learning-rate heatmap of every task (red: the chosen one; dashed:
    configurations that tie), each task on the same colour scale for every model. With
    ``workers`` > 1 the models' pictures are drawn by that many processes (one picture each),
    while this process calls ``meanwhile`` (the other pictures)."""
    scales = task_scales(lb.configs)
    todo, order = [], []
    for model in lb.models["model"]:
        cfg = lb.configs[lb.configs["model"] == model]
        tasks = list(cfg["task"].unique())
        if not tasks:
            continue
        order.append(f"hparams_{file_slug(model)}")
        if not save.drawn(f"hparams_{file_slug(model)}.png", cfg, [scales.get(t) for t in tasks]):
            todo.append((model, cfg, {t: scales.get(t) for t in tasks}))
    if workers > 1 and len(todo) > 1:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        jobs = [(m, c, sc, save.fig_dir, save.formats) for m, c, sc in todo]
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx) as pool:
            futures = [pool.submit(_hparams_file, job) for job in jobs]
            if meanwhile:
                meanwhile()
            for name, caption in (f.result() for f in futures):
                save.record(name, caption)
    else:
        if meanwhile:
            meanwhile()
        for model, cfg, sc in todo:
            hparams_figure(plt, model, cfg, sc, save)
    rank = {stem: i for i, stem in enumerate(order)}   # the pictures' order, however they were drawn
    first, last = ("grid_score", "grid_tasks", "score_vs_params"), ("learning_curves", "kinds")
    save.made.sort(key=lambda m: (first.index(m[1].stem) if m[1].stem in first else
                                  len(first) + rank[m[1].stem] if m[1].stem in rank else
                                  len(first) + len(rank) + last.index(m[1].stem) if m[1].stem in last else 1e9))


def hparams_figure(plt, model: str, cfg: pd.DataFrame, scales: dict, save) -> None:
    """One model's heatmaps (``scales``: each task's colour scale)."""
    tasks = list(cfg["task"].unique())
    fig, axes = panels(plt, len(tasks), 5.8, 4.2)
    for ax, t in zip(axes, tasks):
        _hparam_panel(plt, ax, t, cfg[cfg["task"] == t], scales.get(t))
    fig.suptitle(f"{model}: dev score by batch size x learning rate\n(mean over seeds; red: chosen, dashed: tied; "
                 f"(ep n): stopped early at epoch n; one colour scale per task across models, dark to light)",
                 fontsize=11)
    page_layout(fig, axes, top=1.2)
    # a page of three columns holds its title: saved as laid out, without a second layout pass;
    # a narrower one (fewer tasks, cheap) is fitted to what is drawn, so the title is never cut
    save(fig, f"hparams_{file_slug(model)}.png", f"{model}: batch size x learning rate", tight=len(tasks) < 3,
         dpi=PAGE_DPI)


def _hparams_file(job) -> tuple[str, str]:
    """In a worker process: one model's heatmaps written in every format; (name, caption)."""
    model, cfg, scales, fig_dir, formats = job
    plt = pyplot()
    done = []

    def save(fig, name, caption, tight=True, dpi=None):
        for p in [fig_dir / f"{Path(name).stem}.{ext}" for ext in formats]:
            fig.savefig(p, **save_options(tight, dpi))
        plt.close(fig)
        done.append((name, caption))

    hparams_figure(plt, model, cfg, scales, save)
    return done[0]


def draw_learning_curves(plt, lb: Leaderboard, save, board=()) -> None:
    """Per task, the dev score at each epoch of every model's best configuration."""
    from matplotlib.ticker import MaxNLocator

    if save.drawn("learning_curves.png", *board):
        return
    curves = learning_curves(lb)
    tasks = [t for t in all_tasks() if t in set(curves["task"])]
    if not tasks:
        return
    models = [m for m in lb.models["model"] if m in set(curves["model"])]
    # ten colours, then the same with dashes and dots: up to thirty models told apart
    style = {m: {"color": f"C{i % 10}", "linestyle": ("-", "--", ":")[i // 10 % 3]} for i, m in enumerate(models)}
    shared = len(models) > SHARED_LEGEND_OVER   # one legend for the page: a panel's would cover its curves
    whole = bool((curves["epoch"] % 1 == 0).all())
    fig, axes = panels(plt, len(tasks), 5.2, 3.8)
    for ax, t in zip(axes, tasks):
        for model in models:
            g = curves[(curves["task"] == t) & (curves["model"] == model)]
            if g.empty:
                continue
            r = g.iloc[0]
            ax.plot(g["epoch"], g["score"], marker="o", markersize=3, **style[model],
                    label=model if shared else f"{model} (bs {int(r['batch_size'])}, lr {fmt_lr(r['learning_rate'])})")
        if whole:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=t, xlabel="epoch", ylabel="dev score")
        ax.grid(True, alpha=0.3)
        if not shared:
            ax.legend(fontsize=7, loc="lower right")   # "best" tries every place against every line: slow
    bottom = 0.6
    if shared:
        from matplotlib.lines import Line2D

        ncol = min(len(models), 6)
        fig.legend(handles=[Line2D([], [], marker="o", markersize=3, label=m, **style[m]) for m in models],
                   loc="lower center", ncol=ncol, fontsize=8, frameon=False)
        bottom += 0.2 * math.ceil(len(models) / ncol)
    fig.suptitle("Learning curves: dev score per epoch of each model's best configuration (mean over seeds"
                 + ("; the configurations: the hyperparameter table)" if shared else ")"), fontsize=11)
    page_layout(fig, axes, top=0.8, hgap=0.9, bottom=bottom)   # one layout pass, unless narrow
    save(fig, "learning_curves.png", "Dev score per epoch of each (model, task)'s best configuration",
         tight=len(tasks) < 3, dpi=PAGE_DPI)


def draw_kinds(plt, lb: Leaderboard, save, board=()) -> None:
    """Per task, each (student, kind of training)'s dev score (bars, ± std over seeds) and the teacher's (a line)."""
    if not has_kinds(lb) or save.drawn("kinds.png", *board):
        return
    v = kinds_values(lb)
    tasks = [c for c in v.columns[3:] if not c.endswith(("_std", "_delta"))]
    students = v[v["kind"] != TEACHER_KIND]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 0.45 * len(students) + 1.6), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        labels = [f"{s} / {k}" for s, k in zip(students["student"], students["kind"])]
        ax.barh(range(len(students)), students[t].fillna(0), xerr=students[f"{t}_std"].fillna(0), color="tab:blue")
        ax.set_yticks(range(len(students)), labels=labels)
        ax.invert_yaxis()
        for score, name in zip(v.loc[v["kind"] == TEACHER_KIND, t], v.loc[v["kind"] == TEACHER_KIND, "student"]):
            if np.isfinite(score):
                ax.axvline(score, color="tab:red", linestyle="--", label=f"teacher {name}: {score:.1f}")
                ax.legend(loc="lower right", fontsize=8)
        lo = np.nanmin(v[t].to_numpy(dtype=float)) if v[t].notna().any() else 0
        ax.set(xlabel=f"{t} dev score", title=t, xlim=(max(0, lo - 10), None))
    save(fig, "kinds.png", "Kinds of training side by side: dev score per student (± std over seeds), teacher dashed")


def write_figures(lb: Leaderboard, fig_dir: Path, formats=FIGURE_FORMATS,
                  workers: int | None = None) -> list[tuple[str, Path]]:
    """Draw every picture into ``fig_dir`` in each of ``formats`` (png, pdf, svg); (caption,
    path) of each picture, the path of its first format. Pictures drawn before from the same
    data are kept (``Saver``); the models' heatmaps are drawn by ``workers`` processes
    (default: ``drawing_workers()``)."""
    plt = pyplot()
    fig_dir.mkdir(parents=True, exist_ok=True)
    save = Saver(plt, fig_dir, formats, base_digest(DPI))
    board = (lb.results, lb.configs, lb.models, lb.evals if lb.evals is not None else pd.DataFrame(), lb.teachers,
             lb.final_epoch)

    def the_others():
        for draw in (draw_grids, draw_score_vs_params, draw_learning_curves, draw_kinds):
            draw(plt, lb, save, board)

    draw_hparams(plt, lb, save, drawing_workers() if workers is None else workers, meanwhile=the_others)
    save.write_index()
    return save.made
