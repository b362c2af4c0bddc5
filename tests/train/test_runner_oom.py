"""Out-of-memory in a trial: retried from scratch with gradient accumulation that keeps the
effective batch size, and recorded as such (the error is injected: this machine has no GPU)."""

from __future__ import annotations

import pytest
import torch

from orchestrator.config import Runtime
from orchestrator.data.sources import GlueDir
from orchestrator.train.runner import TrialConfig, is_out_of_memory, run_trial

ONE_THREAD = Runtime(threads=1)


def _oom_above(rows):
    def hook(p):
        forward = p.model.forward

        def f(*a, **k):
            if p.model.training and k["input_ids"].shape[0] > rows:
                raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 2.00 GiB ({k['input_ids'].shape[0]})")
            return forward(*a, **k)

        p.model.forward = f
    return hook


def cfg(**kw):
    base = dict(model="BERT-Tiny", init="random", task="MRPC", batch_size=32, learning_rate=1e-4, epochs=1,
                max_train_examples=128, seed=3)
    base.update(kw)
    return TrialConfig(**base)


def test_out_of_memory_retries_with_accumulation_and_keeps_the_effective_batch(real_glue_dir):
    src = GlueDir(real_glue_dir)
    restarts = []
    res = run_trial(cfg(), src, after_prepare=_oom_above(8), on_restart=lambda c, why: restarts.append((c.grad_accum, why)),
                    runtime=ONE_THREAD)
    assert res.status == "completed" and res.grad_accum == 4
    assert [a for a, _ in restarts] == [2, 4] and "out of memory" in restarts[0][1]
    assert "gradient accumulation 4" in res.note and "effective batch 32" in res.note
    assert res.steps == 4   # 128 examples / effective batch 32: the optimiser steps are unchanged
    # the same trial run directly with accumulation 4 gives the same numbers
    direct = run_trial(cfg(grad_accum=4), src)
    assert direct.evals[0].metrics == res.evals[0].metrics
    assert direct.evals[0].train_loss == pytest.approx(res.evals[0].train_loss, rel=1e-6)


def test_out_of_memory_that_cannot_shrink_further_is_raised(real_glue_dir):
    with pytest.raises(torch.OutOfMemoryError):
        run_trial(cfg(batch_size=2), GlueDir(real_glue_dir), after_prepare=_oom_above(0), runtime=ONE_THREAD)


def test_other_errors_are_not_taken_for_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))
