"""Published figures (``orchestrator/reference/*.csv``, described in its README) and ours
beside them.

Every published figure becomes one row: model, task, metric (our wide column, or ``score`` for
a benchmark Score), value, split (dev or test), protocol, source. Ours are always dev scores, so
a comparison with a test-server figure says so: it is not like for like.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from .board import Leaderboard
from .columns import BENCHMARK, metric_columns, metric_label, table_tasks, task_of_column, wide_column_for
from .score import scored_names
from .tables import glue_wide
from .values import MISSING, PARTIAL_MARK, finite, fmt, names

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"
REFERENCE_COLUMNS = ["model", "task", "metric", "value", "split", "protocol", "source"]
MINIATURES_PROTOCOL = "best of bs {8..128} x lr {3e-4..3e-5}, 4 epochs"
BENCHMARK_ROW = BENCHMARK.upper()      # the task of a published benchmark Score


def compact_columns(ref_dir: str | Path = REFERENCE_DIR) -> dict[str, tuple[str, str]]:
    """The compact-models table's columns: header -> (the card's column, our wide column)."""
    path = Path(ref_dir) / "compact_models_columns.csv"
    if not path.is_file():
        return {}
    return {r.column: (r.card_column, r.wide_column) for r in pd.read_csv(path).itertuples()}


def load_compact_reference(ref_dir: str | Path = REFERENCE_DIR) -> pd.DataFrame:
    """The compact-models card's rows as published."""
    path = Path(ref_dir) / "compact_models_glue_dev.csv"
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def load_reference(ref_dir: str | Path = REFERENCE_DIR) -> pd.DataFrame:
    """Every published figure, one per row (see the module doc)."""
    return _load_reference(str(Path(ref_dir).resolve())).copy()


@functools.lru_cache(maxsize=8)
def _load_reference(ref_dir: str) -> pd.DataFrame:
    parts = [_miniatures_test(Path(ref_dir)), _compact_dev(Path(ref_dir)), _reported_dev(Path(ref_dir))]
    return pd.concat([p for p in parts if len(p)] or [pd.DataFrame(columns=REFERENCE_COLUMNS)],
                     ignore_index=True)[REFERENCE_COLUMNS]


def _figures(df: pd.DataFrame, columns: dict[str, tuple[str, str]], protocol) -> pd.DataFrame:
    """Wide published rows -> one row per finite figure; ``columns``: source column -> (task,
    our metric column), in the order the rows are wanted."""
    rows = [{"model": r["model"], "task": task, "metric": metric, "value": float(r[c]), "split": r["split"],
             "protocol": protocol if isinstance(protocol, str) else r.get(protocol, ""), "source": r["source"]}
            for _, r in df.iterrows() for c, (task, metric) in columns.items() if c in df.columns and finite(r[c])]
    return pd.DataFrame(rows, columns=REFERENCE_COLUMNS)


def _miniatures_test(ref_dir: Path) -> pd.DataFrame:
    path = ref_dir / "bert_miniatures_glue_test.csv"
    if not path.is_file():
        return pd.DataFrame()
    cols = {"score": (BENCHMARK_ROW, "score"),
            **{c: (t.name, c) for t in table_tasks() for c, _ in metric_columns(t)}}
    return _figures(pd.read_csv(path), cols, MINIATURES_PROTOCOL)


def _compact_dev(ref_dir: Path) -> pd.DataFrame:
    path = ref_dir / "compact_models_glue_dev.csv"
    if not path.is_file():
        return pd.DataFrame()
    cols = {card: (task_of_column(ours), ours) for card, ours in compact_columns(ref_dir).values()}
    return _figures(pd.read_csv(path), cols, "")


def _reported_dev(ref_dir: Path) -> pd.DataFrame:
    path = ref_dir / "miniatures_glue_dev_reported.csv"
    if not path.is_file():
        return pd.DataFrame()
    df = pd.read_csv(path)
    found = [wide_column_for(str(t), str(m)) for t, m in zip(df["task"], df["metric"])]
    keep = [f is not None and finite(v) for f, v in zip(found, df["value"])]
    df = df[keep].assign(task=[f[0] for f in found if f], metric=[f[1] for f in found if f])
    df = df.assign(value=df["value"].astype(float), protocol=df.get("protocol", ""))
    return df.reindex(columns=REFERENCE_COLUMNS)


def comparison(lb: Leaderboard, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our dev figure beside every published one for the same model and metric: ours, theirs,
    ours - theirs, and their split (dev or test: a test figure is not like for like)."""
    ref = load_reference() if reference is None else reference
    wide = glue_wide(lb).set_index("model")
    ref = ref[ref["model"].isin(wide.index)]
    rows = []
    for _, p in ref.iterrows():
        w = wide.loc[p["model"]]
        is_score = p["metric"] == "score"
        ours = w["score"] if is_score else w.get(p["metric"])
        if not finite(ours):   # nothing of ours to set beside it: the published figure alone says nothing here
            continue
        ours, over = float(ours), ""
        missing = names(w["missing_tasks"]) if is_score else set()
        if missing:   # a Score over fewer tasks: labelled with the tasks it covers, never diffed against the full one
            covered = [t for t in scored_names() if t not in missing]
            over = f"{', '.join(covered)} ({len(covered)} of {len(covered) + len(missing)} tasks)"
        rows.append({"model": p["model"], "task": p["task"], "metric": p["metric"], "ours": ours,
                     "ours_partial": bool(w["score_partial"]) if is_score else p["task"] in names(w["running_tasks"]),
                     "ours_over": over, "theirs": float(p["value"]),
                     "diff": float("nan") if over else ours - float(p["value"]), "our_split": "dev",
                     "their_split": p["split"], "protocol": p["protocol"], "source": p["source"]})
    out = pd.DataFrame(rows, columns=["model", "task", "metric", "ours", "ours_partial", "ours_over", "theirs",
                                      "diff", "our_split", "their_split", "protocol", "source"])
    morder = {m: i for i, m in enumerate(lb.models["model"])}
    torder = {t: i for i, t in enumerate([BENCHMARK_ROW] + [t.name for t in table_tasks()])}
    keys = pd.DataFrame({"m": out["model"].map(morder).fillna(99), "test": out["their_split"] != "dev",
                         "t": out["task"].map(torder).fillna(99)})
    return out.loc[keys.sort_values(["m", "test", "t"], kind="stable").index].reset_index(drop=True)


def comparison_table(lb: Leaderboard, reference: pd.DataFrame | None = None, digits: int = 1) -> pd.DataFrame:
    """:func:`comparison` as printed."""
    c = comparison(lb, reference)
    return pd.DataFrame({
        "Model": c["model"], "Task": c["task"],
        "Metric": [metric_label(m) + (f" over {o}" if o else "") for m, o in zip(c["metric"], c["ours_over"])],
        "Ours (dev)": [fmt(o, digits) + (PARTIAL_MARK if p and finite(o) else "")
                       for o, p in zip(c["ours"], c["ours_partial"])],
        "Theirs": c["theirs"].map(lambda v: fmt(v, digits)),
        "Diff": [f"{v:+.{digits}f}" if finite(v) else ("not comparable" if o else MISSING)
                 for v, o in zip(c["diff"], c["ours_over"])],
        "Theirs on": c["their_split"].map(lambda s: s + (" (not like for like)" if s != "dev" else "")),
        "Source": [s + (f"; {p}" if p else "") for s, p in zip(c["source"], c["protocol"])]},
        columns=["Model", "Task", "Metric", "Ours (dev)", "Theirs", "Diff", "Theirs on", "Source"])
