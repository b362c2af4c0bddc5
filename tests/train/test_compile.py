"""``TrialConfig.compile``: the solo and the fused training step compile as one graph each
(``fullgraph=True``: forward, backward, clipping, AdamW, schedule), once per batch shape the
buckets allow, and train as the eager step does. Compiled with ``aot_eager`` (no code
generation) so that it is fast on CPU; the backend is the only difference from a GPU's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._dynamo.backends.registry import lookup_backend

from orchestrator.fused import loop as FU
from orchestrator.train import runner as R
from orchestrator.train.batches import DeviceRows, batch_order, batch_widths
from orchestrator.train.step import Schedule, solo_step, tensor_lr

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 50


def cfg(**kw) -> R.TrialConfig:
    base = dict(model="BERT-Tiny", task="SST-2", batch_size=8, learning_rate=1e-3, epochs=1, seed=0, init="random",
                max_train_examples=STEPS * 8 - 3, max_length=32)   # the last batch is short: one more shape
    base.update(kw)
    return R.TrialConfig(**base)


class Counting:
    """A backend that counts the graphs it is given and runs them with ``aot_eager``."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return lookup_backend("aot_eager")(gm, example_inputs)


def no_dropout(p: R.Prepared) -> R.Prepared:
    for m in p.model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    p.model.config.hidden_dropout_prob = p.model.config.attention_probs_dropout_prob = 0.0
    return p


def batches(p: R.Prepared, data: DeviceRows, enc) -> list:
    order = batch_order(enc.lengths, p.config.batch_size, np.random.default_rng(1), True)
    return data.epoch(order, batch_widths(enc.lengths, order, p.config.batch_size, p.config.max_length))


def shapes(epoch) -> set:
    return {(int(rows.shape[0]), width) for rows, width in epoch}


def solo_run(p: R.Prepared, step_fn) -> tuple[list[float], dict]:
    opt = R.make_optimizer(p.model, p.config, p.device)
    sched = Schedule(STEPS, 0.1, p.device)
    lr = tensor_lr(opt, sched, p.config.learning_rate)
    data = DeviceRows(p.train, p.use_token_types, p.device)
    p.model.train()
    losses = [float(step_fn(p.model, opt, sched, lr, p.config.learning_rate, data.parts(rows, width, 8), 1.0))
              for rows, width in batches(p, data, p.train)]
    return losses, {n: t.detach().clone() for n, t in p.model.named_parameters()}


def test_the_solo_step_compiles_once_per_shape_and_trains_as_eager(src):
    torch._dynamo.reset()
    backend = Counting()
    p = no_dropout(R.prepare(cfg(compile=True), src))
    epoch = batches(p, DeviceRows(p.train, p.use_token_types, p.device), p.train)
    assert len(epoch) == STEPS and 3 <= len(shapes(epoch)) <= 9
    losses, weights = solo_run(p, solo_step(p.model, True, backend=backend))
    assert 1 <= backend.graphs <= len(shapes(epoch))
    assert dict(torch._dynamo.utils.counters["graph_break"]) == {}
    graphs = backend.graphs   # a later trial of the same model (another seed and learning rate) reuses them
    solo_run(no_dropout(R.prepare(cfg(compile=True, seed=1, learning_rate=3e-4), src)),
             solo_step(p.model, True, backend=backend))
    assert backend.graphs == graphs
    ref_losses, ref_weights = solo_run(no_dropout(R.prepare(cfg(), src)), solo_step(p.model, False))
    assert losses == pytest.approx(ref_losses, rel=1e-4)
    for n, w in ref_weights.items():
        assert torch.allclose(weights[n], w, rtol=1e-3, atol=1e-5), n


def test_the_fused_step_compiles_once_per_shape_and_trains_as_eager(src):
    torch._dynamo.reset()
    backend = Counting()
    lrs = (1e-3, 1e-4)

    def run(compile: bool) -> tuple[list[list[float]], FU._Unit]:
        configs = [cfg(learning_rate=lr, compile=compile) for lr in lrs]
        p = no_dropout(R.prepare(configs[0], src))
        u = FU.training_unit(p, configs, backend=backend)
        sched = Schedule(STEPS, 0.1, p.device)
        data = DeviceRows(u.train, p.use_token_types, p.device)
        return [u.train_step(data.parts(rows, width, 8), sched).tolist() for rows, width in batches(p, data, p.train)], u

    got, unit = run(True)
    p = unit.p
    epoch = batches(p, DeviceRows(unit.train, p.use_token_types, p.device), p.train)
    assert 1 <= backend.graphs <= len(shapes(epoch)) <= 9
    assert dict(torch._dynamo.utils.counters["graph_break"]) == {}
    want, ref = run(False)
    assert np.allclose(got, want, rtol=1e-4)
    for name, t in ref.params.items():
        assert torch.allclose(unit.params[name], t, rtol=1e-3, atol=1e-5), name
