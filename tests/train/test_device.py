"""The device rules: precision per device (bf16 only in hardware, fp16 with a GradScaler, fp32
on CPU), out-of-memory recognition and clean-up, the allocator setting; on a CUDA machine the
solo and fused steps run there without a host sync per step."""

from __future__ import annotations

import types

import pytest
import torch

from orchestrator.train import device as D, runner as R

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cpu_trains_in_fp32_without_a_scaler():
    mode, autocast = D.precision(torch.device("cpu"))
    assert mode == "fp32" and D.grad_scaler(mode) is None and not D.use_bf16(torch.device("cpu"))
    with autocast():
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


def test_bf16_only_where_the_gpu_has_it_in_hardware(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: calls.append(
        including_emulation) or False)
    assert D.precision(torch.device("cuda"))[0] == "fp16" and calls == [False]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert D.precision(torch.device("cuda"))[0] == "bf16"


def test_the_allocator_setting_is_a_default_workers_inherit():
    env = {}
    D.set_alloc_conf(env)
    assert env == {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
    env = {"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:64"}
    D.set_alloc_conf(env)
    assert env["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:64"


def test_out_of_memory_is_recognised_by_the_runner_too():
    assert R.is_out_of_memory is D.is_out_of_memory
    assert D.is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not D.is_out_of_memory(RuntimeError("size mismatch"))


def test_a_packed_trial_caps_its_gpu_memory_at_its_share(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, d=None: calls.append((f, d)))
    D.set_memory_share(0.25, "cuda:0")
    D.set_memory_share(1.0)          # a whole GPU: no cap
    D.set_memory_share(None)
    assert calls == [(0.25, "cuda:0")]
    # in a sweep, the share is what Ray reserved for the trial's worker
    from orchestrator.sweep import trainable as T
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", "/nonexistent")   # MPS off here (tests/sweep/test_mps.py)
    for reserved, share in (({"CPU": 2.0, "GPU": 0.25}, 0.25), ({"CPU": 1.0, "GPU": 1.0}, None)):
        monkeypatch.setattr(T.ray, "get_runtime_context",
                            lambda r=reserved: types.SimpleNamespace(get_assigned_resources=lambda: r))
        monkeypatch.setattr(T.ray, "get_gpu_ids", lambda: [0])
        rt = T.placement()
        assert rt.gpu_share == share and rt.device is None and rt.threads == int(reserved["CPU"])


@cuda
def test_solo_and_fused_trials_run_on_the_gpu(src):
    from orchestrator.fused import loop as fused
    cfg = R.TrialConfig(model="BERT-Tiny", task="RTE", batch_size=16, learning_rate=1e-3, epochs=1, init="random",
                        max_train_examples=160, max_length=64)
    solo = R.run_trial(cfg, src)
    units = fused.run_unit([cfg, cfg.replace(learning_rate=1e-4)], src)
    assert solo.status == "completed" and [u.status for u in units] == ["completed", "completed"]
    assert len(units[0].evals) == 1 and abs(units[0].evals[0].train_loss - solo.evals[0].train_loss) < 0.05
