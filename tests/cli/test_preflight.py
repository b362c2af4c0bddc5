"""Checks before work starts (orchestrator/cli/preflight.py and the writable-directory check):
``glue-sweep train`` refuses an unwritable ``--out`` and a device this torch lacks, in one line,
before training."""

from __future__ import annotations

import pytest
from hostile import cli, one_line


@pytest.mark.hardening
def test_train_refuses_an_unwritable_out_before_training(tmp_path, monkeypatch, real_glue_dir):
    from orchestrator.train import runner

    monkeypatch.setattr(runner, "prepare", lambda *a, **k: pytest.fail("training started"))
    (tmp_path / "afile").write_text("x")
    rc, _, err = cli(["train", "--model", "BERT-Tiny", "--init", "random", "--task", "RTE", "--batch-size", "8",
                      "--lr", "1e-4", "--glue-dir", real_glue_dir, "--out", tmp_path / "afile" / "out"])
    assert rc == 2 and "--out directory" in err, err
    one_line(err)


@pytest.mark.hardening
def test_train_on_a_device_this_torch_lacks(tmp_path, monkeypatch, real_glue_dir):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc, _, err = cli(["train", "--model", "BERT-Tiny", "--init", "random", "--task", "RTE", "--batch-size", "8",
                      "--lr", "1e-4", "--glue-dir", real_glue_dir, "--device", "cuda", "--out", tmp_path / "o"])
    assert rc == 2 and "no usable CUDA device" in err, err
    one_line(err)
    assert not (tmp_path / "o").exists()
