"""``glue-sweep leaderboard``: every export format from a synthetic result store, the errors,
and a headless render of report.html in Debian's chromium (make test installs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import make_record, unpadded, write_run

from orchestrator.cli.console import status_text
from orchestrator.cli.main import main
from orchestrator.results.score import scored_names
from orchestrator.store import records as store

GROUPS = {("BERT-Tiny", t) for t in scored_names()} | {("BERT-Mini", t) for t in scored_names() if t != "RTE"} | \
         {("all-MiniLM-L6-v2", "SST-2"), ("all-MiniLM-L6-v2", "MRPC")}


def synthetic_run(run: Path) -> Path:
    recs = []
    params = {"BERT-Tiny": 4_386_178, "BERT-Mini": 11_171_074, "all-MiniLM-L6-v2": 22_713_216}
    for model, task in sorted(GROUPS):
        for i, (bs, lr) in enumerate([(32, 1e-4), (16, 3e-5)]):
            for seed in (0, 1):
                base = 60.0 + 5 * list(params).index(model) + 3 * i + seed
                recs.append(make_record(model, task, bs, lr, [base, base + 2, base + 1], seed=seed,
                                        n_params=params[model]))
    recs.append(make_record("BERT-Tiny", "SST-2", 8, 3e-4, [99.0], status="failed", n_params=params["BERT-Tiny"]))
    recs.append(make_record("BERT-Tiny", "CoLA", 8, 3e-4, [98.0], status="diverged", n_params=params["BERT-Tiny"]))
    recs.append(make_record("BERT-Mini", "QNLI", 64, 1e-4, [70.0], status="running", n_params=params["BERT-Mini"]))
    write_run(run, recs)
    (store.trials_dir(run) / "torn.json").write_text('{"trial_id": "half', encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run = synthetic_run(tmp_path_factory.mktemp("lb") / "run")
    return run, run / "export"


@pytest.fixture(scope="module")
def cli_all(exported):
    run, _ = exported
    cap = {}
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        # every format but the vector pictures (drawn from a smaller run below: they take long)
        cap["rc"] = main(["leaderboard", str(run), "--format", "csv,md,latex,json,html"])
    cap["out"], cap["err"] = out.getvalue(), err.getvalue()
    return cap


def test_cli_writes_every_format(exported, cli_all):
    run, out = exported
    assert cli_all["rc"] == 0, cli_all["err"]
    for name in ("leaderboard.csv", "glue.csv", "configs.csv", "comparison.csv", "compact.csv", "leaderboard.md",
                 "leaderboard.tex", "leaderboard.json", "report.html", "figures/grid_score.png",
                 "figures/grid_tasks.png", "figures/score_vs_params.png", "figures/hparams_BERT-Tiny.png",
                 "figures/hparams_all-MiniLM-L6-v2.png", "figures/learning_curves.png", "trials.csv",
                 "trials.parquet"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for png in (out / "figures").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| Model | Score | CoLA | SST-2 | MRPC | STS-B | QQP | MNLI-m | MNLI-mm | QNLI | RTE | WNLI | AX |" in \
        unpadded(cli_all["out"])
    assert "torn.json" in cli_all["err"] and "unreadable" in cli_all["err"]


def test_long_csv_one_row_per_model_task(exported, cli_all):
    _, out = exported
    df = pd.read_csv(out / "leaderboard.csv")
    assert len(df) == len(GROUPS) and set(zip(df["model"], df["task"])) == GROUPS
    for col in ("model", "task", "status", "partial", "score", "score_std", "n_seeds", "seeds", "seed", "batch_size",
                "learning_rate", "epoch", "mcc", "accuracy", "f1", "pearson", "spearman", "accuracy_m", "accuracy_mm",
                "n_trials", "n_failed", "n_diverged", "n_running", "n_params"):
        assert col in df.columns, col
    tiny_sst = df[(df["model"] == "BERT-Tiny") & (df["task"] == "SST-2")].iloc[0]
    assert tiny_sst["batch_size"] == 16 and tiny_sst["learning_rate"] == 3e-5 and tiny_sst["epoch"] == 2
    assert tiny_sst["score"] == pytest.approx(65.5) and tiny_sst["n_seeds"] == 2 and tiny_sst["n_failed"] == 1
    mini_qnli = df[(df["model"] == "BERT-Mini") & (df["task"] == "QNLI")].iloc[0]
    assert bool(mini_qnli["partial"]) and mini_qnli["status"] == "partial"
    text = (out / "leaderboard.csv").read_text()
    assert ",4386178," in text and "e+06" not in text          # counts stay integers


def test_wide_csv_json_md_tex(exported, cli_all):
    _, out = exported
    wide = pd.read_csv(out / "glue.csv")
    assert list(wide["model"]) == ["BERT-Tiny", "BERT-Mini", "all-MiniLM-L6-v2"]
    assert {"score", "score_partial", "score_no_wnli", "missing_tasks", "cola_mcc", "mrpc_f1", "mnli_mm_acc",
            "ax_r3"} <= set(wide.columns)
    mini = wide.set_index("model").loc["BERT-Mini"]
    assert bool(mini["score_partial"]) and mini["missing_tasks"] == "RTE"
    doc = json.loads((out / "leaderboard.json").read_text())
    assert len(doc["results"]) == len(GROUPS) and any("torn.json" in p for p in doc["problems"])
    assert doc["selection"] == "best epoch"
    md = (out / "leaderboard.md").read_text()
    assert "## GLUE leaderboard" in md and "| BERT-Mini |" in md and "Comparison with published figures" in md
    tex = (out / "leaderboard.tex").read_text()
    assert tex.count(r"\toprule") == tex.count(r"\bottomrule") >= 5 and r"\begin{tabular}" in tex
    # no empty table: every tabular has a row between its rules
    for body in tex.split(r"\midrule")[1:]:
        assert body.split(r"\bottomrule")[0].strip(), "an empty LaTeX table"
    assert r"\textbf{" in tex and "{--}" not in tex


def test_latex_minus_signs_and_bold_maxima():
    from orchestrator.results.render import to_latex

    df = pd.DataFrame({"Model": ["a", "b", "c"], "CoLA": ["-14.6", "3.2", "-"], "MRPC": ["81.1/-2.0", "80.0/71.0", "7.5*"],
                       "lr": ["3e-5", "1e-4", "-"]})
    tex = to_latex(df, bold=["CoLA", "MRPC"])
    assert "$-$14.6" in tex and "81.1/$-$2.0" in tex and "3e-5" in tex and "-14.6" not in tex
    assert r"\textbf{3.2}" in tex and r"\textbf{80.0/71.0}" in tex   # the column maxima, partial 7.5* left out
    rows = [l for l in tex.splitlines() if l.startswith("c &")]
    assert rows == [r"c & -- & 7.5* & -- \\"]


def test_pictures_in_every_format_at_their_dpi(tmp_path, capsys):
    from PIL import Image
    from synthetic import make_record, write_run

    curves = {(16, 1e-4): [50.0, 53.0], (32, 1e-4): [51.0, 53.0], (16, 5e-5): [50.0, 52.0]}   # two tie at 53
    recs = [make_record(m, t, bs, lr, scores, n_params=n)
            for m, n in (("BERT-Tiny", 4_386_178), ("BERT-Mini", 11_171_074)) for t in ("SST-2", "CoLA")
            for (bs, lr), scores in curves.items()]
    run = write_run(tmp_path / "run", recs)
    assert main(["leaderboard", str(run), "--format", "png,pdf,svg"]) == 0
    figs = run / "export" / "figures"
    stems = {p.stem for p in figs.iterdir()}
    assert {"score_vs_params", "learning_curves", "hparams_BERT-Tiny", "grid_score"} <= stems
    for stem in stems:
        assert (figs / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
        assert b"<svg" in (figs / f"{stem}.svg").read_bytes()[:2000]
        dpi = Image.open(figs / f"{stem}.png").info["dpi"]
        page = stem.startswith("hparams_") or stem in ("grid_tasks", "learning_curves")   # pages of panels: 150
        assert round(dpi[0]) == (150 if page else 300), (stem, dpi)
    svg = (figs / "score_vs_params.svg").read_text()
    assert ">5M<" in svg and ">10M<" in svg and "times" not in svg   # log ticks read 5M, 10M, not 6x10^0
    # two configurations tie at 53.0 for each (model, task): the heatmap says so
    assert "configurations tie" in (figs / "hparams_BERT-Tiny.svg").read_text()


def test_html_report_is_self_contained(exported, cli_all):
    _, out = exported
    page = (out / "report.html").read_text()
    n_figs = len(list((out / "figures").glob("*.png")))
    assert page.count("data:image/png;base64,") == n_figs
    assert "http://" not in page and "https://" not in page     # nothing to fetch: opens offline
    assert page.count("<table") >= 5 and "BERT-Tiny" in page and "not like for like" in page


def test_final_epoch_and_out_and_formats(exported, tmp_path, capsys):
    run, _ = exported
    assert main(["leaderboard", str(run), "--format", "csv,json", "--out", str(tmp_path / "o"), "--final-epoch"]) == 0
    df = pd.read_csv(tmp_path / "o" / "leaderboard.csv")
    assert set(df["selection"]) == {"final epoch"}
    assert set(df.loc[df["status"] != "partial", "epoch"]) == {3}
    assert not (tmp_path / "o" / "report.html").exists() and (tmp_path / "o" / "leaderboard.json").is_file()


@pytest.mark.parametrize("case", ["missing", "no-trials", "unreadable-only", "bad-format"])
def test_bad_input_one_line_exit_2(tmp_path, capsys, case):
    run = tmp_path / "run"
    args = ["leaderboard", str(run)]
    if case == "no-trials":
        run.mkdir()
    elif case == "unreadable-only":
        store.trials_dir(run).mkdir(parents=True)
        (store.trials_dir(run) / "x.json").write_text("not json")
    elif case == "bad-format":
        args = ["leaderboard", str(tmp_path), "--format", "csv,tiff"]
    try:
        rc = main(args)
    except SystemExit as e:          # argparse rejects the flag itself
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "error" in err
    assert {"missing": "does not exist", "no-trials": "has no trials", "unreadable-only": "can be read",
            "bad-format": "unknown format 'tiff'"}[case] in err


def test_status_shows_the_live_table(exported):
    run, _ = exported
    text = status_text(run)
    head, table = text.split("\n", 1)
    # no driver holds the sweep: its running record is interrupted, not running
    assert head == ("sweep run (not running): 79 trials: 76 completed, 1 interrupted, 1 diverged, 1 failed; "
                    "1 unreadable record(s) skipped")
    assert unpadded(table).splitlines()[0].startswith("| Model | Score | CoLA | SST-2 |")
    assert "| - |" not in unpadded(table).splitlines()[0] and "AX" not in table    # columns without any result: left out
    assert text.endswith("(* partial: tasks missing or trials still running)")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_renders_in_headless_chromium(exported, cli_all, tmp_path):
    from PIL import Image

    if _chromium() is None:   # never skipped: make test installs it
        pytest.fail("chromium is not installed (make test installs Debian's chromium; apt-get install chromium)")
    _, out = exported
    shot = tmp_path / "report.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,3000",
           (out / "report.html").resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120)
    assert shot.is_file(), "chromium wrote no screenshot"
    img = Image.open(shot).convert("RGB")
    assert img.size == (1400, 3000)
    # Tables and pictures drawn: many distinct colours (heatmaps) and plenty of non-white pixels.
    px = np.asarray(img.resize((350, 750)), dtype=np.int32).reshape(-1, 3)
    assert (px.sum(axis=1) < 720).mean() > 0.1
    assert len(np.unique(px, axis=0)) > 500
    print(f"screenshot: {shot}")   # pytest -s shows where to look at it


def test_trials_csv_and_parquet_one_row_per_evaluation(exported, cli_all):
    run, out = exported
    records, _ = store.read_records(run)
    csv = pd.read_csv(out / "trials.csv")
    pq = pd.read_parquet(out / "trials.parquet")
    assert len(csv) == len(pq) == sum(max(1, len(r["evals"])) for r in records)
    for col in ("model", "init", "task", "batch_size", "learning_rate", "seed", "epoch", "step", "cola_mcc",
                "mrpc_f1", "mrpc_acc", "stsb_pearson", "mnli_mm_acc", "score", "train_loss", "status", "elapsed_s"):
        assert col in csv.columns and col in pq.columns, col
    assert list(csv.columns) == list(pq.columns)
    assert str(pq["batch_size"].dtype) == "Int64" and str(pq["step"].dtype) == "Int64"
    assert pq["learning_rate"].dtype == float and pq["score"].dtype == float
    # every cell holds one value: no lists joined with commas or semicolons
    text = csv[[c for c in csv.columns if not pd.api.types.is_numeric_dtype(csv[c])]]
    assert not text.apply(lambda s: s.astype(str).str.contains(r"[,;]")).any().any()
    # a metric of the task's row under its GLUE name; other tasks' metric columns empty
    mrpc = pq[(pq["task"] == "MRPC") & (pq["model"] == "BERT-Tiny")]
    assert mrpc["mrpc_f1"].notna().all() and mrpc["cola_mcc"].isna().all()
    assert np.allclose((mrpc["mrpc_f1"] + mrpc["mrpc_acc"]) / 2, mrpc["score"])
    tid = "BERT-Tiny__SST-2__bs32_lr1e-4_s1"
    assert list(pq.loc[pq["trial_id"] == tid, "epoch"]) == [1.0, 2.0, 3.0]


def test_trials_columns_do_not_depend_on_the_run(tmp_path):
    from synthetic import make_record, write_run

    from orchestrator.results.tidy import evaluations

    a = write_run(tmp_path / "a", [make_record("BERT-Tiny", "CoLA", 32, 1e-4, [10.0])])
    b = write_run(tmp_path / "b", [make_record("BERT-Mini", "MNLI", 16, 3e-5, [70.0, 71.0], seed=3),
                                   make_record("BERT-Mini", "RTE", 16, 3e-5, [], status="running")])
    da, db = evaluations(store.read_records(a)[0]), evaluations(store.read_records(b)[0])
    assert list(da.columns) == list(db.columns) and list(da.dtypes) == list(db.dtypes)
    assert len(db) == 3 and db.loc[db["task"] == "RTE", "epoch"].isna().all()


def test_no_arguments_prints_usage_and_the_commands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: glue-sweep")
    for cmd in ("train", "plan", "run", "dashboard", "status", "leaderboard", "speed", "submit"):
        assert f"    {cmd} " in out or f"    {cmd}\n" in out, cmd


def test_leaderboard_defaults_to_the_newest_run(exported, tmp_path, monkeypatch, capsys):
    run, _ = exported
    shutil.copytree(run / "trials", tmp_path / "results" / "older" / "trials")
    time_newer = tmp_path / "results" / "newer"
    shutil.copytree(run / "trials", time_newer / "trials")
    newest = max(p.stat().st_mtime for p in (time_newer / "trials").iterdir())
    import os
    for f in (tmp_path / "results" / "older" / "trials").iterdir():
        os.utime(f, (newest - 100, newest - 100))
    monkeypatch.chdir(tmp_path)
    assert main(["leaderboard"]) == 0
    assert (time_newer / "export" / "leaderboard.csv").is_file()
    assert not (tmp_path / "results" / "older" / "export").exists()


def test_leaderboard_compares_runs_side_by_side(exported, tmp_path, capsys):
    from synthetic import make_record, write_run

    run, _ = exported
    other = write_run(tmp_path / "other", [make_record("BERT-Tiny", "SST-2", 16, 5e-5, [90.0, 91.5])])
    assert main(["leaderboard", str(run), str(other), "--out", str(tmp_path / "cmp")]) == 0
    lines = unpadded(capsys.readouterr().out).splitlines()
    assert lines[0] == "| Model | Task | run | other |"
    sst = next(l for l in lines if l.startswith("| BERT-Tiny | SST-2 |"))
    assert sst.endswith("| 91.5 (bs 16, lr 5e-5) |") and "| 65.5 (bs 16, lr 3e-5) |" in sst
    assert any(l.startswith("| BERT-Mini | CoLA |") and l.endswith("| - |") for l in lines)
    long = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    row = long[(long["run"] == "other") & (long["task"] == "SST-2")].iloc[0]
    assert row["score"] == 91.5 and row["batch_size"] == 16 and row["learning_rate"] == 5e-5


def test_pictures_of_unchanged_data_are_not_drawn_again(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from orchestrator.results import drawn

    records = [make_record(m, t, bs, 1e-4, [60.0 + bs / 10, 61.0]) for m in ("BERT-Tiny", "BERT-Mini")
               for t in ("SST-2", "RTE") for bs in (16, 32)]
    run = write_run(tmp_path / "run", records)
    monkeypatch.setenv("GLUE_SWEEP_DRAW_WORKERS", "1")   # every picture drawn in this process, where it is counted
    saved = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, p, **k: (saved.append(Path(p).name), real(self, p, **k)))
    assert main(["leaderboard", str(run), "--format", "png"]) == 0
    first = sorted(saved)
    assert {"hparams_BERT-Tiny.png", "hparams_BERT-Mini.png", "learning_curves.png"} <= set(first)
    page = (run / "export" / "figures" / "hparams_BERT-Tiny.png").read_bytes()
    saved.clear()
    assert main(["leaderboard", str(run), "--format", "png,html"]) == 0   # the same data: nothing drawn
    assert saved == [] and sorted(p.name for p in (run / "export" / "figures").glob("*.png")) == first
    assert (run / "export" / "report.html").read_text().count("data:image/png;base64,") == len(first)
    write_run(run, [make_record("BERT-Mini", "RTE", 8, 1e-4, [62.0])])   # one model's results change (not the scales)
    assert main(["leaderboard", str(run), "--format", "png"]) == 0
    assert "hparams_BERT-Mini.png" in saved and "hparams_BERT-Tiny.png" not in saved
    assert (run / "export" / "figures" / "hparams_BERT-Tiny.png").read_bytes() == page
    (run / "export" / "figures" / "hparams_BERT-Tiny.png").unlink()      # a picture gone: drawn again
    saved.clear()
    assert main(["leaderboard", str(run), "--format", "png"]) == 0
    assert saved == ["hparams_BERT-Tiny.png"]
    monkeypatch.setattr(drawn, "_CODE", [*drawn._CODE[:1], tmp_path / "other.py"])   # other drawing code: all again
    (tmp_path / "other.py").write_text("# another version\n")
    saved.clear()
    assert main(["leaderboard", str(run), "--format", "png"]) == 0
    assert sorted(saved) == first


def test_pictures_drawn_by_worker_processes_are_the_ones_drawn_here(tmp_path, monkeypatch):
    from matplotlib.image import imread

    records = [make_record(m, t, bs, lr, [60.0 + bs / 10 + lr * 1e4, 61.0])
               for m in ("BERT-Tiny", "BERT-Mini", "BERT-Small") for t in ("SST-2", "RTE") for bs in (16, 32)
               for lr in (1e-4, 3e-5)]
    run = write_run(tmp_path / "run", records)
    pictures = {}
    for workers in ("1", "2"):
        monkeypatch.setenv("GLUE_SWEEP_DRAW_WORKERS", workers)
        out = tmp_path / f"w{workers}"
        assert main(["leaderboard", str(run), "--format", "png,html", "--out", str(out)]) == 0
        pictures[workers] = {p.name: imread(p) for p in (out / "figures").glob("*.png")}
        html = (out / "report.html").read_text()
        assert html.count("data:image/png;base64,") == len(pictures[workers])
        assert html.index("BERT-Mini: batch size") < html.index("BERT-Tiny: batch size") < html.index("Dev score per")
    assert pictures["1"].keys() == pictures["2"].keys() and len(pictures["1"]) >= 5
    for name, pixels in pictures["1"].items():
        assert pixels.shape == pictures["2"][name].shape and (pixels == pictures["2"][name]).all(), name


def test_a_bad_number_of_drawing_workers_is_one_line(tmp_path, monkeypatch, capsys):
    run = write_run(tmp_path / "run", [make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0])])
    monkeypatch.setenv("GLUE_SWEEP_DRAW_WORKERS", "many")
    assert main(["leaderboard", str(run), "--format", "csv,png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GLUE_SWEEP_DRAW_WORKERS" in err
    assert not (run / "export").exists()   # refused before anything is written


def test_status_counts_the_sweep_without_expanding_its_grid(tmp_path, monkeypatch):
    from orchestrator.spec import sweep as spec_sweep

    monkeypatch.setenv("GLUE_DIR", str(tmp_path))   # the spec names its data by $GLUE_DIR

    run = write_run(tmp_path / "run", [make_record("BERT-Tiny", "SST-2", 32, 1e-4, [80.0])])
    text = (Path(spec_sweep.find("quickstart")).read_text(encoding="utf-8")
            .replace("seeds: [0]", "seeds: [0, 1, 2]"))
    (run / "sweep.yaml").write_text(text, encoding="utf-8")
    want = len(spec_sweep.load(run / "sweep.yaml").trials())   # 2 models x 2 tasks x 2 x 2 x 3 seeds
    monkeypatch.setattr(spec_sweep.Sweep, "trials", lambda self: pytest.fail("the grid expanded to be counted"))
    head = status_text(run).split("\n", 1)[0]
    assert f": {want} trials: 1 completed, {want - 1} pending" in head, head


def test_a_heatmap_marks_the_configurations_stopped_early_with_the_epoch_they_reached():
    from orchestrator.results import figures as F

    plt = F.pyplot()
    c = pd.DataFrame({"batch_size": [16, 16, 32, 32], "learning_rate": [1e-4, 5e-5, 1e-4, 5e-5],
                      "score": [80.0, 70.0, 75.0, 60.0], "rank": [1, 3, 2, 4],
                      "stopped": [False, True, False, True], "epochs_reached": [3.0, 1.0, 3.0, 2.0]})
    fig, ax = plt.subplots()
    F._hparam_panel(plt, ax, "SST-2", c, (60.0, 80.0))
    texts = sorted(t.get_text() for t in ax.texts)
    plt.close(fig)
    assert texts == ["60.0\n(ep 2)", "70.0\n(ep 1)", "75.0", "80.0"]
