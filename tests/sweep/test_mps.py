"""NVIDIA MPS (orchestrator/sweep/mps.py): detected by its control pipe (a fake pipe directory
here, no GPU needed); a packed worker takes its share of the GPU's threads before CUDA starts."""

from __future__ import annotations

import os
import types

from orchestrator.sweep import mps


def _daemon(tmp_path):
    os.mkfifo(tmp_path / "control")
    return {mps.PIPE_ENV: str(tmp_path)}


def test_detected_by_its_control_pipe(tmp_path):
    assert mps.pipe_dir({}) == mps.pipe_dir({mps.PIPE_ENV: ""}) == type(tmp_path)("/tmp/nvidia-mps")
    env = {mps.PIPE_ENV: str(tmp_path)}
    assert not mps.running(env)                        # no pipe: no daemon
    (tmp_path / "control").write_text("")              # a plain file is not the daemon's pipe
    assert not mps.running(env)
    (tmp_path / "control").unlink()
    assert mps.running(_daemon(tmp_path))
    assert not mps.running({mps.PIPE_ENV: str(tmp_path / "missing")})
    assert "MPS: on" in mps.describe(env) and "MPS: off" in mps.describe({mps.PIPE_ENV: str(tmp_path / "x")})


def test_a_packed_worker_takes_its_share_of_the_threads(tmp_path):
    assert [mps.thread_percentage(s) for s in (None, 0, 0.125, 0.25, 0.5, 1.0)] == [None, None, 13, 25, 50, None]
    env = _daemon(tmp_path)
    assert mps.apply_share(0.25, env) == 25 and env[mps.THREADS_ENV] == "25"
    assert mps.apply_share(0.5, env) is None and env[mps.THREADS_ENV] == "25"      # set already: kept
    whole = {mps.PIPE_ENV: str(tmp_path)}             # the same daemon, a worker with a whole GPU
    assert mps.apply_share(1.0, whole) is None and mps.THREADS_ENV not in whole
    off = {mps.PIPE_ENV: str(tmp_path / "none")}
    assert mps.apply_share(0.25, off) is None and mps.THREADS_ENV not in off


def test_placement_sets_it_before_cuda(tmp_path, monkeypatch):
    from orchestrator.sweep import trainable as T

    monkeypatch.setenv(mps.PIPE_ENV, str(tmp_path))
    monkeypatch.setenv(mps.THREADS_ENV, "")
    monkeypatch.delenv(mps.THREADS_ENV)               # restored (unset) after the test
    os.mkfifo(tmp_path / "control")
    monkeypatch.setattr(T.ray, "get_runtime_context",
                        lambda: types.SimpleNamespace(get_assigned_resources=lambda: {"CPU": 1.0, "GPU": 0.125}))
    monkeypatch.setattr(T.ray, "get_gpu_ids", lambda: [0])
    assert T.placement().gpu_share == 0.125 and os.environ[mps.THREADS_ENV] == "13"
    monkeypatch.delenv(mps.THREADS_ENV)
    monkeypatch.setattr(T.ray, "get_gpu_ids", lambda: [])   # no GPU reserved: nothing set
    T.placement()
    assert mps.THREADS_ENV not in os.environ
