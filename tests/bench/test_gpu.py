"""bench.gpu in its reduced CPU form (tiny sizes) and bench.estimate's pure computation."""

from __future__ import annotations

import json
import math

import pytest

from bench import estimate as E, gpu as G


def _pos(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_gpu_bench_reduced_cpu(tmp_path, glue_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the reduced form is what CPU-only machines run")
    out = tmp_path / "gpu"
    rc = G.main(["--out", str(out), "--mfu-model", "BERT-Tiny", "--mfu-batch", "2", "--mfu-seq", "16",
                 "--mfu-warmup", "1", "--mfu-steps", "2", "--pack-k", "2", "--pack-examples", "64",
                 "--glue-dir", str(glue_dir), "--shapes", "BERT-Tiny", "--shape-seqs", "16,32",
                 "--shape-warmup", "1", "--shape-steps", "2"])
    assert rc == 0
    r = json.loads((out / "gpu.json").read_text())
    assert (out / "gpu.md").read_text().startswith("# Training-path benchmark")
    env = r["environment"]
    assert env["device_type"] == "cpu" and env["torch"] and "commit" in env["git"] and env["cores"]
    assert r["peak_flops"] is None
    m = r["mfu"]["eager"]
    assert m["mfu"] is None and _pos(m["achieved_flops"]) and _pos(m["tokens_per_s"]) and m["loss_finite"]
    assert m["flops_per_step"] == G.step_flops(2, 128, m["n_nonembedding"], 2, 16)
    p = r["packing"]
    assert p["k"] == 2 and set(p["rounds"]) == {"single", "packed", "single_all_threads"}
    for v in p["rounds"].values():
        assert "error" not in v, v
        assert _pos(v["aggregate_examples_per_s"]) and len(v["runs"]) == v["k"]
        assert all(run["examples_seen"] == 64 and _pos(run["examples_per_s"]) for run in v["runs"])
    assert _pos(p["gain_vs_single"]) and _pos(p["gain_vs_single_all_threads"])
    (s,) = r["shapes"]
    assert (s["layers"], s["hidden"]) == (2, 128) and [q["seq"] for q in s["points"]] == [16, 32]
    assert all(_pos(q["tokens_per_s"]) and q["mfu"] is None for q in s["points"])
    assert r["targets"]["mfu_bert_base"]["applies"] is False and r["targets"]["mfu_bert_base"]["pass"] is None
    assert r["targets"]["packing_gain"]["pass"] is None

    # ... and the estimate from that CPU file: the labelled fallback, plus CPU-hours.
    tp = E.read_throughputs(out / "gpu.json")
    assert tp["device_type"] == "cpu" and (2, 128) in tp["rates"]
    trials = [_trial(shape=(2, 128), n_nonemb=400_000)]
    res = E.build(trials, tp, None, 0.3, 1, 2)
    assert res["h100"]["measured_on_gpu"] is False and "ASSUMED MFU 30%" in res["h100"]["method"]
    assert res["h100"]["hours_full"] == pytest.approx(trials[0].flops() / (989e12 * 0.3) / 3600)
    assert _pos(res["cpu"]["core_hours_full"])


def test_peaks_and_flops():
    assert G.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert G.peak_flops("NVIDIA H100 PCIe") == 756e12
    assert G.peak_flops("NVIDIA H200") == 989e12
    assert G.peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert G.peak_flops("NVIDIA L4") == 121e12
    assert G.peak_flops("AMD EPYC") is None and G.peak_flops(None) is None
    # BERT-Base 32 x 128: 6 N T + 12 L H s^2 b
    n = 85_000_000
    assert G.step_flops(12, 768, n, 32, 128) == 6 * n * 4096 + 12 * 12 * 768 * 128 * 128 * 32


def test_successive_halving():
    sh = E.successive_halving(20, 1, 2, 4)
    assert sh["epochs_run"] == 40 and sh["epochs_full"] == 80 and sh["fraction"] == 0.5
    assert [s["configs"] for s in sh["stages"]] == [20, 10, 5]
    assert E.successive_halving(1, 1, 2, 4)["fraction"] == 1.0
    # 9 configs, rf 3, max 9: 9 x 1 + 3 x 2 + 1 x 6 = 21 of 81
    assert E.successive_halving(9, 1, 3, 9)["epochs_run"] == 21


def test_step_model_fit():
    pts = [{"batch": 32, "seq": 32, "step_s": 0.010 + 1024 * 1e-6}, {"batch": 32, "seq": 128, "step_s": 0.010 + 4096 * 1e-6}]
    a, b = E.fit_step_model(pts)
    assert a == pytest.approx(0.010) and b == pytest.approx(1e-6)
    a, b = E.fit_step_model(pts[:1])
    assert a == 0 and b == pytest.approx(pts[0]["step_s"] / 1024)


def _trial(**kw) -> E.TrialCost:
    base = dict(model="BERT-Tiny", shape=(2, 128), n_nonemb=400_000, gpu_share=0.25, task="SST-2", batch=32,
                epochs=4, train_rows=1000, eval_rows=100, eval_passes=4, avg_tokens=10, padding=1.2)
    return E.TrialCost(**{**base, **kw})


def test_trial_cost_and_hours_scale_linearly():
    t = _trial()
    assert t.steps == 32 * 4 and t.train_tokens == pytest.approx(1000 * 4 * 10 * 1.2) and t.eval_tokens == 4000
    # pure tokens/s model (a = 0): seconds = (train + eval / 3) tokens x b
    b = 1e-5
    assert t.seconds(0.0, b) == pytest.approx((48000 + 4000 / 3) * b)
    rates = {(2, 128): (0.0, b)}
    one = E.hours_measured([_trial(gpu_share=1.0)], rates, None, None)["hours"]
    two = E.hours_measured([_trial(gpu_share=1.0, train_rows=2000, eval_rows=200)], rates, None, None)["hours"]
    assert two == pytest.approx(2 * one)
    # packing: measured gain capped at 1/share; 1/share when not measured
    assert E.packing_divisor(0.25, 6.0)[0] == 4 and E.packing_divisor(0.25, 2.5)[0] == 2.5
    assert E.packing_divisor(0.5, None)[0] == 2 and "not measured" in E.packing_divisor(0.5, None)[1]
    packed = E.hours_measured([t], rates, 3.0, None)["hours"]
    assert packed == pytest.approx(one / 3)
    # FLOPs: 6 N T + 12 L H s T, evaluation a third per token
    f = E.train_flops(2, 128, 400_000, 48000, 12) + E.train_flops(2, 128, 400_000, 4000, 10) / 3
    assert t.flops() == pytest.approx(f)
    assert E.hours_flops([t, t], 989e12, 0.3)["hours"] == pytest.approx(2 * f / (989e12 * 0.3) / 3600)


def test_estimate_gpu_file_and_early_stopping(tmp_path):
    gpu = {"environment": {"device_type": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "cpus": 16},
           "peak_flops": 989e12,
           "mfu": {"eager": {"mfu": 0.4, "achieved_flops": 0.4 * 989e12}},
           "packing": {"gain_vs_single": 5.0, "k": 8},
           "shapes": [{"layers": 2, "hidden": 128, "points": [
               {"batch": 32, "seq": 64, "step_s": 2048 / 1e6, "achieved_flops": 1e12, "mfu": 0.001}]}]}
    f = tmp_path / "gpu.json"
    f.write_text(json.dumps(gpu))
    tp = E.read_throughputs(f)
    trials = [_trial(batch=bs) for bs in (8, 16, 32, 64)]
    res = E.build(trials, tp, None, 0.3, 1, 2)
    h = res["h100"]
    assert h["measured_on_gpu"] and "measured on NVIDIA H100" in h["method"]
    expect = sum(t.seconds(0.0, 1e-6) for t in trials) / 4 / 3600   # gain 5 capped at 1/0.25
    assert h["hours_full"] == pytest.approx(expect)
    # 4 configs, grace 1, rf 2, max 4: 4 + 2 + 1 x 2 = 8 of 16 epochs
    assert h["hours_early_stopping"] == pytest.approx(expect * 0.5)
    # a CPU file with a measured H100 MFU: the fallback takes the measured MFU
    res2 = E.build(trials, None, tp, 0.3, 1, 2)
    assert res2["mfu_used"] == 0.4 and "measured" in res2["h100"]["method"]


def test_padding_factor():
    import numpy as np

    lengths = np.array([10] * 64)
    assert E.padding_factor(lengths, 32) == 1.0
    lengths = np.array([5, 10] * 32)
    f = E.padding_factor(lengths, 64)   # one batch, all padded to 10
    assert f == pytest.approx(640 / 480)


def test_estimate_cost_model_reads_the_operator_counts(tmp_path):
    from orchestrator.spec.sweep import parse

    sweep = parse("name: x\nmodels: [BERT-Tiny]\ntasks: [RTE]\nsearch: {batch_size: [32], learning_rate: [1e-4, 3e-5]}\n")
    default = E.cost_model(sweep, {}, tmp_path / "absent.json")
    assert default["calls_source"] == "the cost model's defaults" and default["solo_calls"] == {"a": 115.0, "b": 190.0}
    ops = tmp_path / "ops-cpu.json"
    ops.write_text(json.dumps({"solo": {"a": 230, "b": 380}, "fused": {"a": 244, "b": 284}}))
    counted = E.cost_model(sweep, {}, ops)
    assert counted["calls_source"] == str(ops)
    assert counted["fuse_off"]["point"] > default["fuse_off"]["point"]           # twice the calls of a solo step
    assert counted["fuse_auto"]["items"] == 1 and default["fuse_off"]["items"] == 2
    for v in (counted["fuse_off"], counted["fuse_auto_early_stopping"]):
        assert v["low"] <= v["point"] <= v["high"]
    md = "\n".join(E.render_cost_model(counted))
    assert "the cost model (an estimate)" in md and "| fuse auto, early stopping |" in md and "per operator call" in md
