"""The results package's pieces: the frames a run loads into, the selection's tie rules, the
benchmark table driven by tasks/*.yaml, and the renderers (LaTeX bold maxima, HTML cells)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
from synthetic import lb_of, make_record

from orchestrator.errors import UserError
from orchestrator.results import render, score, tables
from orchestrator.results.load import evals_frame, load_run, trials_frame
from orchestrator.results.select import epoch_key, usable_evals
from orchestrator.store import records as store


def row(lb, model, task):
    r = lb.results[(lb.results["model"] == model) & (lb.results["task"] == task)]
    assert len(r) == 1
    return r.iloc[0]


# ----------------------------------------------------------------------------- frames

def test_records_become_tidy_frames():
    recs = [make_record("BERT-Tiny", "mrpc", 32, 1e-4, [70.0, 75.0], n_params=10),
            make_record("BERT-Tiny", "RTE", 16, 3e-5, [], status="running", init="random")]
    problems: list[str] = []
    trials = trials_frame(recs, problems)
    assert list(trials["task"]) == ["MRPC", "RTE"] and not problems            # aliases: the canonical name
    assert list(trials["model"]) == ["BERT-Tiny", "BERT-Tiny (random init)"]
    assert list(trials["base_model"]) == ["BERT-Tiny", "BERT-Tiny"] and trials["model_ref"].notna().all()
    evals = evals_frame(recs, trials)
    assert len(evals) == 2 and set(evals["trial_id"]) == {recs[0]["trial_id"]}   # one row per evaluation
    assert {"epoch", "step", "score", "f1", "accuracy", "batch_size", "learning_rate", "seed"} <= set(evals.columns)
    assert list(evals["f1"]) == [71.0, 76.0] and list(evals["epoch"]) == [1.0, 2.0]


def test_unknown_task_is_reported_not_fatal():
    rec = make_record("BERT-Tiny", "RTE", 32, 1e-4, [60.0])
    rec["trial"]["task"] = "NOPE"
    problems: list[str] = []
    assert trials_frame([rec], problems).empty
    assert problems == [f"{rec['trial_id']}: unknown task 'NOPE', skipped"]


def test_schema_1_records_rank_like_schema_2(tmp_path):
    new = make_record("BERT-Mini", "SST-2", 32, 1e-4, [80.0, 82.0], n_params=11)
    old = {k: v for k, v in new.items() if k not in ("trial", "group", "schema")}
    old.update({k: new["trial"][k] for k in store.V1_TRIAL_KEYS}, model_ref=new["trial"]["model"])
    run = tmp_path / "v1"
    store.trials_dir(run).mkdir(parents=True)
    (store.trials_dir(run) / f"{old['trial_id']}.json").write_text(json.dumps(old), encoding="utf-8")
    a, b = load_run(run), lb_of(tmp_path, [new])
    pd.testing.assert_frame_equal(a.results, b.results)
    pd.testing.assert_frame_equal(a.configs, b.configs)


def test_load_run_errors_are_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is not a directory"):
        load_run(tmp_path / "file")
    with pytest.raises(UserError, match="does not exist"):
        load_run(tmp_path / "nowhere")


def test_record_level_helpers_for_submit():
    rec = make_record("BERT-Tiny", "RTE", 32, 1e-4, [60.0, float("nan"), 62.0])
    assert [e["score"] for e in usable_evals(rec)] == [60.0, 62.0]
    assert epoch_key(1.0000000001) == epoch_key(1.0) == 1.0


# ----------------------------------------------------------------------------- selection

def test_ties_more_seeds_then_smaller_batch_then_smaller_lr(tmp_path):
    lb = lb_of(tmp_path / "seeds", [make_record("BERT-Tiny", "RTE", 8, 1e-4, [70.0]),
                                    make_record("BERT-Tiny", "RTE", 64, 3e-4, [70.0], seed=0),
                                    make_record("BERT-Tiny", "RTE", 64, 3e-4, [70.0], seed=1)])
    assert (row(lb, "BERT-Tiny", "RTE")["batch_size"], row(lb, "BERT-Tiny", "RTE")["n_seeds"]) == (64, 2)
    lb = lb_of(tmp_path / "batch", [make_record("BERT-Tiny", "RTE", 32, 1e-4, [70.0]),
                                    make_record("BERT-Tiny", "RTE", 16, 3e-4, [70.0])])
    assert row(lb, "BERT-Tiny", "RTE")["batch_size"] == 16
    lb = lb_of(tmp_path / "lr", [make_record("BERT-Tiny", "RTE", 16, 1e-4, [70.0]),
                                 make_record("BERT-Tiny", "RTE", 16, 3e-5, [70.0])])
    assert row(lb, "BERT-Tiny", "RTE")["learning_rate"] == 3e-5
    assert list(lb.configs["rank"]) == [1, 2]


def test_best_epoch_ties_go_to_the_earliest(tmp_path):
    lb = lb_of(tmp_path, [make_record("BERT-Tiny", "RTE", 32, 1e-4, [60.0, 70.0, 70.0, 65.0])])
    assert row(lb, "BERT-Tiny", "RTE")["epoch"] == 2.0


def test_seeds_without_a_common_epoch_are_judged_at_their_own_best(tmp_path):
    lb = lb_of(tmp_path, [make_record("BERT-Tiny", "RTE", 32, 1e-4, [60.0, 64.0], seed=0, epochs=[0.5, 1.5]),
                          make_record("BERT-Tiny", "RTE", 32, 1e-4, [70.0, 66.0], seed=1, epochs=[1.0, 2.0])])
    r = row(lb, "BERT-Tiny", "RTE")
    assert math.isnan(r["epoch"]) and r["score"] == pytest.approx(67.0) and r["n_seeds"] == 2
    assert tables.hyperparameter_table(lb).iloc[0]["Epoch"] == "per seed"


# ----------------------------------------------------------------------------- the benchmark, from the YAML

def _edit(path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_table_columns_and_score_follow_the_task_files(tmp_path, tasks_dir):
    _edit(tasks_dir / "cola.yaml", "order: 1 ", "order: 3 ")        # CoLA after SST-2 and MRPC
    _edit(tasks_dir / "mrpc.yaml", "order: 3 ", "order: 1 ")
    _edit(tasks_dir / "wnli.yaml", "also_scored_without: true", "also_scored_without: false")
    _edit(tasks_dir / "rte.yaml", "benchmark: glue", "diagnostic: true\nbenchmark: glue")   # RTE out of the Score
    lb = lb_of(tmp_path, [make_record("BERT-Tiny", "RTE", 32, 1e-4, [10.0]),
                          make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0])])
    t = tables.glue_table(lb)
    assert list(t.columns[:5]) == ["Model", "Score", "MRPC", "SST-2", "CoLA"]
    assert not any(c.startswith("Score w/o") for c in t.columns)
    assert "score_no_wnli" not in tables.glue_wide(lb).columns
    assert t.iloc[0]["Score"] == "80.0*" and t.iloc[0]["RTE"] == "10.0"          # RTE shown, not scored
    assert "over the 8 tasks" in score.score_note() and "RTE and AX excluded" in score.score_note()


def test_score_note_and_second_score_from_the_task_files():
    assert score.score_note() == ("Score: GLUE's macro average over the 9 tasks, pairs averaged, MNLI as the "
                                  "mean of -m and -mm, AX excluded. AX is scored on the test server only.")
    assert score.second_score_column() == "score_no_wnli" and score.second_score_header() == "Score w/o WNLI"


# ----------------------------------------------------------------------------- renderers

def test_latex_sets_the_best_value_of_a_column_in_bold():
    df = pd.DataFrame({"Model": ["A", "B", "C", "D"], "Score": ["70.0", "71.5", "90.0*", "-"],
                       "MRPC": ["80.0/70.0", "76.0/75.0", "-", "80.0/70.0"], "LR": ["1e-4", "3e-4", "5e-5", "-"]})
    tex = render.to_latex(df, caption="Cap", label="tab:x", bold=["Score", "MRPC"])
    lines = {l.split(" & ")[0]: l for l in tex.splitlines() if " & " in l}
    assert r"\textbf{71.5}" in lines["B"] and r"\textbf{90.0*}" not in tex        # a partial figure is never the best
    assert r"\textbf{76.0/75.0}" in lines["B"] and r"\textbf{80.0/70.0}" not in tex   # a pair: its mean (75.5 > 75)
    assert r"\textbf{" not in lines["A"] + lines["C"] + lines["D"] and "LR" not in tex.split(r"\midrule")[1]
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex and r"\begin{tabular}{lrrr}" in tex
    assert r"\caption{Cap}" in tex and r"\label{tab:x}" in tex


def test_latex_bold_marks_every_tie_and_escapes():
    df = pd.DataFrame({"Model": ["a_b", "c&d"], "x": ["64.1 (BERT-Tiny)", "64.1"], "y": ["50%", "1 ± 2"]})
    tex = render.to_latex(df, bold=["x"])
    assert tex.count(r"\textbf{") == 2 and r"\textbf{64.1 (BERT-Tiny)}" in tex
    assert r"a\_b" in tex and r"c\&d" in tex and r"50\%" in tex and r"1 $\pm$ 2" in tex
    assert render.cell_value("81.1/71.1*") == pytest.approx(76.1) and math.isnan(render.cell_value("- (BERT-Base)"))


def test_html_cells_are_escaped_and_numbers_right_aligned():
    df = pd.DataFrame({"Model": ["<b>x</b>"], "Score": ["65.5*"], "Task": ["SST-2"], "Gap": [None]})
    page = render.to_html(df, "glue")
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert 'class="data row0 col1 num" >65.5*' in page and 'class="data row0 col2" >SST-2' in page
    assert 'class="data row0 col3 num" >-' in page and "id=\"T_glue\"" in page


def test_markdown_escapes_pipes():
    md = render.to_markdown(pd.DataFrame({"a|b": ["x|y"], "n": [1.5]}))
    assert "a\\|b" in md and "x\\|y" in md and "1.5" in md


def test_pictures_are_drawn_without_importing_matplotlib_up_front():
    code = ("import sys; import orchestrator.cli.main, orchestrator.results.export, orchestrator.results.figures; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

