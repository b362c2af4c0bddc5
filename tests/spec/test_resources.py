"""Trial sizing (orchestrator/spec/resources.py): parameter counts, the GPU memory estimate of a
trial, its GPU share (by expected utilisation and memory), the GPU memory probe, and the H100
figures."""

from __future__ import annotations

import subprocess
import types

from orchestrator.config import TrialConfig
from orchestrator.spec import cost as C, resources as RS

GB = 2**30


def _config(model: str, batch_size: int = 128, max_length: int = 128) -> TrialConfig:
    return TrialConfig(model=model, task="SST-2", batch_size=batch_size, learning_rate=1e-4, max_length=max_length)


def test_gpu_share_by_utilisation_and_memory():
    # the larger of the busy fraction and the memory fraction, rounded up to 1/8, 1/4, 1/2, 1
    assert [RS.gpu_share(u) for u in (0.0, 0.1, 0.125, 0.2, 0.45, 0.5, 0.6, 1.0)] == [
        0.125, 0.125, 0.125, 0.25, 0.5, 0.5, 1.0, 1.0]
    assert RS.gpu_share(0.1, 0.5 * 0.9 * 80 * GB, 80 * GB) == 0.5        # memory needs half
    assert RS.gpu_share(0.6, 0.1 * GB, 80 * GB) == 1.0                   # the GPU is busy 60% of a step
    assert RS.gpu_share(0.1, 0.3 * 0.9 * 16 * GB) == 0.5                 # unknown GPU: sized for 16 GB
    # BERT-Tiny at batch 128: weights and optimizer 70 MB, activations 185 MB, CUDA context 0.5 GB
    m = RS.trial_memory_bytes(_config("BERT-Tiny"))
    assert 0.7e9 < m < 0.8e9 and m == RS.memory_bytes("BERT-Tiny", 128, 128)
    # its step is bound by host time (the GPU busy about a tenth of it): an eighth of an 80 GB GPU
    tiny = C.work_of(_config("BERT-Tiny"))
    assert C.utilisation(tiny) < 0.125
    assert RS.trial_gpu_share(_config("BERT-Tiny"), 80 * GB) == 0.125
    assert RS.trial_gpu_share(_config("BERT-Tiny"), 4 * GB) == 0.25      # 0.5 GB each is too little
    # a fused unit of 4 BERT-Tiny members shares one step's host time: still an eighth, not 4 trials' size
    assert RS.trial_gpu_share(_config("BERT-Tiny"), 80 * GB, members=4) == 0.125
    # a unit of 4 BERT-Medium members at batch 128 on SST-2 keeps the GPU about a sixth busy (its step
    # bound by host time, every dispatched operator counted): a quarter of a GPU, not a whole one
    unit = C.work_of(_config("BERT-Medium"), members=4)
    assert 0.125 < C.utilisation(unit) <= 0.25
    assert RS.trial_gpu_share(_config("BERT-Medium"), 80 * GB, members=4) == 0.25
    # 4 BERT-Base members at batch 128 on MNLI's longer rows: the device is the bound, a whole GPU
    assert C.utilisation(C.work_of(_config("BERT-Base").replace(task="MNLI"), members=4)) == 1.0
    assert RS.trial_gpu_share(_config("BERT-Base").replace(task="MNLI"), 80 * GB, members=4) == 1.0
    # BERT-Medium at batch 128 (about 4.1 GB) takes half of a 16 GB GPU, a whole 6 GB one
    medium = _config("BERT-Medium")
    assert RS.trial_gpu_share(medium, 16 * GB) == 0.5 and RS.trial_gpu_share(medium, 6 * GB) == 1.0
    assert RS.trial_memory_bytes(_config("BERT-Base", 8)) < RS.trial_memory_bytes(_config("BERT-Base", 128))
    assert RS.memory_bytes("BERT-Base", 32, 64) < RS.memory_bytes("BERT-Base", 32, 128)
    # no GPU memory known: sized for the smallest common training GPU
    assert RS.trial_gpu_share(medium) == RS.trial_gpu_share(medium, RS.DEFAULT_GPU_BYTES) == 0.5


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


def test_the_h100_figures():
    assert (RS.H100_BF16_FLOPS, RS.ASSUMED_MFU) == (C.H100_BF16_FLOPS, C.ASSUMED_MFU) == (989e12, 0.30)
