"""How the pictures are drawn (:mod:`.figures` says which): matplotlib on the Agg backend with the
pictures' fonts, a labelled heatmap, its colour bar, a page of panels and its layout, axis
formats, file names.

matplotlib is imported inside the functions that draw, not at the top: it is heavy (about a
second to import) and everything else in the package works without it.
"""

from __future__ import annotations

import math
import re

import numpy as np

DPI = 300


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed), with the pictures' fonts."""
    import matplotlib  # heavy: only when pictures are drawn

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "figure.dpi": 100, "savefig.dpi": DPI,
                         "axes.formatter.use_mathtext": True, "svg.fonttype": "none", "pdf.fonttype": 42})
    return plt


def millions(x: float, _pos=None) -> str:
    """A log-axis tick of a count in millions: ``5M``, ``10M``, ``0.5M``, ``1.2B``."""
    if x >= 1000:
        return f"{x / 1000:g}B"
    return f"{x:g}M"


def log_millions_axis(ax) -> None:
    """Ticks at 1, 2, 5 x 10^k millions, labelled 5M, 10M, 20M, ...; no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(millions))
    ax.xaxis.set_minor_formatter(NullFormatter())


def file_slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "model"


def heatmap(ax, values, row_labels, col_labels, cell_text, title, xlabel, ylabel, highlight=(), cmap="viridis",
            scale=None):
    """A labelled heatmap; NaN cells grey. ``highlight``: the chosen cell(s) (row, col), framed in
    red, or when several tie, each framed with a dashed line. ``scale``: (vmin, vmax), else the
    values' range."""
    import matplotlib  # heavy: only when pictures are drawn
    from matplotlib import patches

    arr = np.array(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    vmin, vmax = scale or ((float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
    if vmin == vmax:
        vmin, vmax = vmin - 1, vmax + 1
    cm = matplotlib.colormaps[cmap].with_extremes(bad="#e6e6e6")
    im = ax.imshow(np.ma.masked_invalid(arr), cmap=cm, vmin=vmin, vmax=vmax, aspect="auto", interpolation="none")
    ax.set_xticks(range(len(col_labels)), labels=col_labels)
    ax.set_yticks(range(len(row_labels)), labels=row_labels)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    for (i, j), v in np.ndenumerate(arr):
        dark = math.isfinite(v) and (v - vmin) / (vmax - vmin) < 0.6
        ax.text(j, i, cell_text[i][j], ha="center", va="center", fontsize=8, color="white" if dark else "black")
    tie = len(highlight) > 1
    for i, j in highlight:
        ax.add_patch(patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5,
                                       linestyle="--" if tie else "-"))
    return im


def colorbar(plt, im, ax, label: str):
    """A heatmap's colour bar, drawn as vector shapes in PDF and SVG: matplotlib would rasterise
    its 256 bands, a pass over the whole page in the vector formats for each bar."""
    cb = plt.colorbar(im, ax=ax, label=label, fraction=0.046, pad=0.04)
    cb.solids.set_rasterized(False)
    return cb


def panels(plt, n: int, width: float, height: float):
    """A figure of ``n`` panels, at most three a row, each ``width`` x ``height`` inches; the
    panels' axes in reading order (the unused ones of the last row switched off)."""
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def page_layout(fig, axes, top: float, bottom: float = 0.6, left: float = 0.75, right: float = 0.2,
                hgap: float = 1.15, wgap: float = 0.8) -> None:
    """Margins and gaps of a page of panels in inches (``top``: room for the page's title), set
    at once: ``tight_layout`` would measure every text first, most of the cost of a cheap page."""
    w, h = fig.get_size_inches()
    nrows, ncols = axes[0].get_subplotspec().get_gridspec().get_geometry()
    ax_h = (h - top - bottom - (nrows - 1) * hgap) / nrows
    ax_w = (w - left - right - (ncols - 1) * wgap) / ncols
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        hspace=hgap / ax_h, wspace=wgap / ax_w)
