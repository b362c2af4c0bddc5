"""Trial sizing (orchestrator/spec/resources.py): parameter counts, the GPU memory estimate of a
trial, its GPU share, the GPU memory probe, and the H100 figures plan uses."""

from __future__ import annotations

import subprocess
import types

import pytest

from orchestrator.config import TrialConfig
from orchestrator.spec import resources as RS

GB = 2**30


def _config(model: str, batch_size: int = 128, max_length: int = 128) -> TrialConfig:
    return TrialConfig(model=model, task="SST-2", batch_size=batch_size, learning_rate=1e-4, max_length=max_length)


def test_gpu_share_by_size_and_memory():
    size = RS.param_count
    assert RS.gpu_share(size("BERT-Tiny")) == 0.125 and RS.gpu_share(size("BERT-Mini")) == 0.25
    assert RS.gpu_share(size("BERT-Medium")) == 0.5 and RS.gpu_share(size("BERT-Base")) == 1.0
    # BERT-Tiny at batch 128: weights and optimizer 70 MB, activations 185 MB, CUDA context 0.5 GB
    m = RS.trial_memory_bytes(_config("BERT-Tiny"))
    assert 0.7e9 < m < 0.8e9 and m == RS.memory_bytes("BERT-Tiny", 128, 128)
    assert RS.gpu_share(size("BERT-Tiny"), m, 80 * GB) == 0.125      # eight fit on an 80 GB GPU
    assert RS.gpu_share(size("BERT-Tiny"), m, 4 * GB) == 0.25        # 0.5 GB each is too little
    assert RS.trial_gpu_share(_config("BERT-Tiny"), 80 * GB) == 0.125
    assert RS.trial_gpu_share(_config("BERT-Tiny"), 4 * GB) == 0.25
    # a fused unit of 4 BERT-Tiny members: sized as 4 such trials (18 M parameters) in one process
    assert RS.trial_gpu_share(_config("BERT-Tiny"), 80 * GB, members=4) == 0.5
    assert RS.trial_gpu_share(_config("BERT-Base"), 80 * GB, members=4) == 1.0
    # BERT-Medium at batch 128 (about 4.1 GB) takes half of a 16 GB GPU, a whole 6 GB one
    medium = _config("BERT-Medium")
    assert RS.gpu_share(size("BERT-Medium"), RS.trial_memory_bytes(medium), 16 * GB) == 0.5
    assert RS.trial_gpu_share(medium, 6 * GB) == 1.0
    assert RS.trial_memory_bytes(_config("BERT-Base", 8)) < RS.trial_memory_bytes(_config("BERT-Base", 128))
    assert RS.memory_bytes("BERT-Base", 32, 64) < RS.memory_bytes("BERT-Base", 32, 128)
    # no GPU memory known: by size only
    assert RS.trial_gpu_share(medium) == RS.gpu_share(size("BERT-Medium")) == 0.5


def test_parameter_counts():
    assert RS.model_params("BERT-Tiny") == (4_385_920, 413_056)
    assert RS.model_params("google/bert_uncased_L-2_H-128_A-2") == RS.model_params("L-2_H-128")
    assert RS.param_count("DistilBERT") == 66_362_880 and RS.param_count("BERT-Large") == 335_141_888
    # a hub model of unknown size: no count, sized as BERT-Base, given a whole GPU, no memory estimate
    assert RS.model_params("org/unknown-model") is None
    assert RS.param_count("org/unknown-model") == RS.UNKNOWN_PARAMS == 110_000_000
    assert RS.memory_bytes("org/unknown-model", 32) is None
    assert RS.trial_gpu_share(_config("org/unknown-model"), 80 * GB) == 1.0


def test_gpu_memory_probe(monkeypatch):
    calls = []

    def smi(out="81559\n", error=None):
        def run(cmd, **kw):
            calls.append(cmd)
            if error:
                raise error
            return types.SimpleNamespace(stdout=out)
        return run

    monkeypatch.setattr(RS.shutil, "which", lambda name: None)
    assert RS.gpu_memory_bytes() == RS.DEFAULT_GPU_BYTES == 16 * GB and not calls
    monkeypatch.setattr(RS.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(RS.subprocess, "run", smi())
    assert RS.gpu_memory_bytes() == 81559 * 2**20
    assert calls[-1][0] == "nvidia-smi" and "--query-gpu=memory.total" in calls[-1]
    for bad in (smi(out=""), smi(out="N/A"), smi(error=OSError("gone")),
                smi(error=subprocess.TimeoutExpired("nvidia-smi", 10))):
        monkeypatch.setattr(RS.subprocess, "run", bad)
        assert RS.gpu_memory_bytes() == RS.DEFAULT_GPU_BYTES


def test_plan_uses_the_h100_figures(tmp_path):
    from orchestrator.spec import plan
    from orchestrator.spec.sweep import parse

    assert (RS.H100_BF16_FLOPS, RS.ASSUMED_MFU) == (989e12, 0.30)
    sweep = parse("name: x\nmodels: [BERT-Tiny]\ntasks: [RTE]\nsearch: {batch_size: [32], learning_rate: [1e-4]}\n")
    e = plan.estimate(sweep)
    assert e["flops"] > 0
    assert e["h100_hours"] == pytest.approx(e["flops"] / (RS.H100_BF16_FLOPS * RS.ASSUMED_MFU) / 3600)
    assert "H100-hours at 30% of bf16 peak" in plan.render(sweep)
