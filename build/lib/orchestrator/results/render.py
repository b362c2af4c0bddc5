"""Printed tables (DataFrames of strings) as Markdown, LaTeX and HTML.

Markdown is ``DataFrame.to_markdown`` (tabulate); LaTeX and HTML go through pandas' Styler:
LaTeX as a booktabs table (``\\usepackage{booktabs}``) with the best value of each chosen column
in bold (partial figures, marked ``*``, left out), real minus signs and ``--`` for no result; HTML with cells that read as numbers
right-aligned (class ``num``), text left.
"""

from __future__ import annotations

import re
from typing import Iterable

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from .values import MISSING, PARTIAL_MARK

TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
       "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$"}
NUMERIC = re.compile(r"^([-+]?\d|-$|- \()")   # 81.1/71.1, 65.5*, -14.6, 3e-5, "-", "- (BERT-Base)"
LEADING = re.compile(r"^[-+]?\d+(?:\.\d+)?(?:/[-+]?\d+(?:\.\d+)?)*")   # 81.1/71.1 of "81.1/71.1*"


def cells(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text, ``-`` where there is none."""
    return df.astype(object).where(df.notna(), MISSING).map(str)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table: the first column left-aligned, the others right."""
    text = cells(df).map(lambda s: s.replace("|", "\\|"))
    text.columns = [str(c).replace("|", "\\|") for c in df.columns]
    align = ["left"] + ["right"] * (len(df.columns) - 1)
    return text.to_markdown(index=False, tablefmt="pipe", colalign=align, disable_numparse=True)


def tex_escape(s) -> str:
    return "".join(TEX.get(ch, ch) for ch in str(s))


MINUS = re.compile(r"(^|[/( ])-(?=\d)")   # a minus sign: at the start, after "/", "(" or a space


def tex_cell(s) -> str:
    """A cell in LaTeX: escaped, negative numbers with a real minus sign (``$-$14.6``), no result
    as an en dash; ``3e-5`` is left as it reads."""
    text = str(s)
    if text == MISSING:
        return "--"
    return MINUS.sub(lambda m: m.group(1) + "$-$", tex_escape(text))


def cell_value(text: str) -> float:
    """The number a printed cell shows: ``81.1/71.1*`` -> 76.1 (a pair: its mean), ``64.1 (BERT-Tiny)``
    -> 64.1, ``-`` -> NaN."""
    m = LEADING.match(str(text))
    return float(np.mean([float(x) for x in m.group(0).split("/")])) if m else float("nan")


def best_cells(df: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """True at the highest value of each of ``columns`` (every cell that reaches it); a partial
    figure (marked ``*``) is never the best."""
    mask = pd.DataFrame(False, index=df.index, columns=df.columns)
    for c in columns:
        text = cells(df[[c]])[c]
        values = text.map(cell_value).where(~text.str.contains(PARTIAL_MARK, regex=False))
        if values.notna().any():
            mask[c] = values.eq(values.max())
    return mask


def to_latex(df: pd.DataFrame, caption: str | None = None, label: str | None = None,
             bold: Iterable[str] = ()) -> str:
    """A booktabs table; the best value of each column in ``bold`` is set in bold."""
    mask = best_cells(df, bold)
    styler = (cells(df).style.hide(axis="index").format(tex_cell).format_index(tex_escape, axis=1)
              .apply(lambda d: pd.DataFrame(np.where(mask, "textbf:--rwrap;", ""), index=d.index, columns=d.columns),
                     axis=None))
    return styler.to_latex(hrules=True, environment="table", position="ht", position_float="centering",
                           column_format="l" + "r" * (len(df.columns) - 1),
                           caption=tex_escape(caption) if caption else None, label=label)


def to_html(df: pd.DataFrame, table_id: str = "") -> str:
    """An HTML table (class ``tbl``, id ``T_<table_id>``); cells that read as numbers
    (``81.1/71.1``, ``65.5*``, ``-``) have class ``num``."""
    text = cells(df)
    classes = text.map(lambda s: "num" if NUMERIC.match(s) else "")
    styler = (Styler(text, cell_ids=False, uuid=re.sub(r"[^A-Za-z0-9_-]", "_", table_id), uuid_len=0)
              .hide(axis="index").format(escape="html")
              .format_index(escape="html", axis=1).set_td_classes(classes).set_table_attributes("class='tbl'"))
    return styler.to_html()
