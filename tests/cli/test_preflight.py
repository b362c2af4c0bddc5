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


@pytest.mark.hardening
@pytest.mark.parametrize("command", ["train", "run", "speed", "submit"])
def test_commands_that_fill_the_cache_refuse_an_unusable_one_before_any_work(command, tmp_path, monkeypatch,
                                                                              real_glue_dir):
    from orchestrator.data import features
    from orchestrator.train import runner, speed

    monkeypatch.setattr(runner, "prepare", lambda *a, **k: pytest.fail("training started"))
    monkeypatch.setattr(speed, "run", lambda *a, **k: pytest.fail("measuring started"))
    monkeypatch.setattr(features, "encode", lambda *a, **k: pytest.fail("tokenising started"))
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "loop"))
    (tmp_path / "s.yaml").write_text(f"name: c\nmodels: [{{name: BERT-Tiny, init: random}}]\ntasks: [RTE]\n"
                                     f"search: {{batch_size: [8], learning_rate: [1e-4]}}\nepochs: 1\n"
                                     f"data: {{glue_dir: {real_glue_dir}}}\nresults: {tmp_path / 'res'}\n")
    argv = {"train": ["train", "--model", "BERT-Tiny", "--init", "random", "--task", "RTE", "--batch-size", "8",
                      "--lr", "1e-4", "--glue-dir", real_glue_dir, "--out", tmp_path / "o"],
            "run": ["run", tmp_path / "s.yaml"],
            "speed": ["speed", "BERT-Tiny", "--quick"],
            "submit": ["submit", tmp_path / "res", "--model", "BERT-Tiny", "--glue-dir", real_glue_dir]}[command]
    rc, _, err = cli(argv)
    assert rc == 2 and f"GLUE_SWEEP_CACHE={tmp_path / 'loop'}: a symbolic link loop" in err, err
    one_line(err)
    assert not (tmp_path / "o" / "metrics.json").exists() and not list(tmp_path.glob("res/**/*.json"))
