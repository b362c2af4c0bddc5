"""The test outputs of a trial's selected weights (orchestrator/train/test_outputs.py): which
weights are kept, and that the stored predictions are those of the very model (predicted again
from the model saved at the trial's end)."""

from __future__ import annotations

import numpy as np
import torch

from orchestrator.config import Runtime, TrialConfig
from orchestrator.data.features import features
from orchestrator.data.sources import GlueDir
from orchestrator.registry.models import load_tokenizer, resolve
from orchestrator.registry.tasks import get_task
from orchestrator.train import predict as P, runner as R
from orchestrator.train.test_outputs import Kept


def test_the_best_and_the_last_evaluations_weights_are_kept_on_the_host():
    w = torch.nn.Linear(2, 2)
    k = Kept()
    for epoch, score, value in ((1.0, 50.0, 1.0), (2.0, 70.0, 2.0), (3.0, 60.0, 3.0), (4.0, float("nan"), 4.0)):
        with torch.no_grad():
            w.weight.fill_(value)
        k.offer(epoch, score, w.named_parameters)
    states = k.states()
    assert list(states) == ["2", "4"]                        # the best (epoch 2), and the last one (epoch 4)
    assert float(states["2"]["weight"][0, 0]) == 2.0 and float(states["4"]["weight"][0, 0]) == 4.0
    assert states["2"]["weight"].device.type == "cpu"
    with torch.no_grad():
        w.weight.fill_(9.0)
    assert float(states["2"]["weight"][0, 0]) == 2.0         # a copy, not the live tensor
    k2 = Kept()
    k2.offer(1.0, 10.0, w.named_parameters)
    assert list(k2.states()) == ["1"]                         # the best is the last: stored once


def test_stored_test_predictions_are_the_saved_models(real_glue_dir, tmp_path):
    src = GlueDir(real_glue_dir)
    for task_name in ("SST-2", "STS-B"):
        cfg = TrialConfig(model="BERT-Tiny", task=task_name, batch_size=32, learning_rate=1e-3, epochs=2, seed=0,
                          init="random", max_train_examples=96, max_length=64)
        got = {}
        save = tmp_path / task_name
        res = R.run_trial(cfg, src, runtime=Runtime(device="cpu", threads=1, save_dir=str(save)),
                          on_test=got.update)
        last = f"{res.evals[-1].epoch:g}"
        assert f"test@{last}" in got, got.keys()
        stored = got[f"test@{last}"][f"{task_name}/test"]
        task = get_task(task_name)
        assert stored.dtype == (np.float32 if task.is_regression else np.int8)
        # predict again with the model saved at the end (the last evaluation's weights)
        p = R.prepare(cfg.replace(model=str(save), init="pretrained"), src, runtime=Runtime(device="cpu", threads=1))
        tok = load_tokenizer(resolve(str(save)))
        enc = features(task, "test", src, tok, cfg.max_length)
        again = P.decisions(P.outputs(p, enc), task.is_regression)
        assert len(again) == len(stored) == len(src.load(task, "test").index)
        if task.is_regression:
            assert np.allclose(again, stored, atol=1e-5)
        else:
            assert np.array_equal(again, stored)
