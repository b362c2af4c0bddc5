"""The grid benchmark's pure parts: the sweep it generates, and its report; and the summary page."""

from __future__ import annotations

import json

import pytest

from bench import grid_vs_hpsearch as G, summary as S
from orchestrator.spec.sweep import load


def _args(tmp_path, glue_dir, **kw):
    a = G.build_parser().parse_args(["--glue-dir", str(glue_dir), "--out", str(tmp_path / "out")])
    a.max_train_examples = a.max_train_examples or None
    for k, v in kw.items():
        setattr(a, k, v)
    return a


@pytest.mark.parametrize("scheduler", ["none", "asha"])
def test_generated_sweep_is_the_paper_grid(tmp_path, glue_dir, scheduler):
    a = _args(tmp_path, glue_dir, epochs=2.0)   # ASHA needs more than its one-epoch grace period
    spec = tmp_path / "grid.yaml"
    spec.write_text(G.sweep_spec(a, scheduler))
    s = load(str(spec), results_root=str(tmp_path / "results"))
    trials = [t.config for t in s.trials()]
    assert len(trials) == 20
    assert {(t.batch_size, t.learning_rate) for t in trials} == {(b, lr) for b in G.PAPER_BATCH_SIZES
                                                                 for lr in G.PAPER_LEARNING_RATES}
    assert {t.task for t in trials} == {"SST-2"} and {t.max_train_examples for t in trials} == {500}
    assert s.scheduler == scheduler and {t.epochs for t in trials} == {2}
    assert s.fuse == "off"   # like the Trainer's search, one trial per process unless --fuse auto


def test_sides_are_checked():
    with pytest.raises(SystemExit):
        G.build_parser().parse_args(["--sides", "ours,hf"])
    assert G.build_parser().parse_args(["--sides", "ours-asha,hf-ray"]).sides == ["ours-asha", "hf-ray"]


def _side(wall, scores, status="completed"):
    return {"wall_s": wall, "disk_bytes": 10, "configs": {
        G._key(bs, lr): {"batch_size": bs, "learning_rate": lr, "status": status, "scores": s,
                         "epochs": [float(i + 1) for i in range(len(s))]}
        for (bs, lr), s in scores.items()}}


def test_report_ratios_and_per_configuration_differences(tmp_path, glue_dir):
    a = _args(tmp_path, glue_dir, batch_sizes=(8, 16), learning_rates=(1e-4,))
    ours = _side(100.0, {(8, 1e-4): [70.0, 80.0], (16, 1e-4): [60.0, 65.0]})
    hf = _side(450.0, {(8, 1e-4): [79.0, 78.0], (16, 1e-4): [66.0, 64.0]}, status="TERMINATED")
    report, md = G.build_report(a, {"ours": ours, "hf-ray": hf}, {"cores": 2, "cpu": "x"})
    r = report["results"]
    assert r["ours"]["speedup_vs_hf_ray"] == 4.5
    assert r["ours"]["best_dev"] == 80.0 and r["ours"]["best_at"] == "bs8_lr1e-04 epoch 2"
    assert r["hf-ray"]["best_dev"] == 79.0
    assert r["ours"]["best_dev_minus_hf_ray"] == 1.0
    assert sorted(report["per_config_best_diff"]["ours"]) == [-1.0, 1.0]
    assert "| ours | 100 | 4.50x | 80.00 |" in md


def test_summary_collects_targets(tmp_path):
    out = tmp_path / "out"
    (out / "grid").mkdir(parents=True)
    (out / "grid" / "grid_vs_hpsearch.json").write_text(json.dumps({
        "grid": {"model": "m", "task": "SST-2", "max_train_examples": 500, "epochs": 1, "seed": 0,
                 "batch_sizes": [8], "learning_rates": [1e-4]},
        "results": {"ours": {"wall_s": 100, "speedup_vs_hf_ray": 2.5, "best_dev": 80.0, "best_dev_minus_hf_ray": 0.5},
                    "hf-ray": {"wall_s": 250, "best_dev": 79.5}},
        "environment": {"cores": 2}}))
    report, md = S.build(out)
    [speed, score] = report["checks"]
    assert speed["measured"] == 2.5 and speed["pass"] is False
    assert score["pass"] is True
    assert "| grid (ours): >= 3x sooner than hyperparameter_search | 2.50 | FAIL |" in md
    assert md.count("not run") == 5   # the trial, start-up, GPU, fused and estimate benchmarks are missing
