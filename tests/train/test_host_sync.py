"""A training step makes the host wait for nothing and lifts no Python number into a tensor:
the solo step (``step.train_step``) and the fused unit's (``fused.loop.fused_step``), gathering
the batch on the device included, counted operator by operator on CPU (``bench._dispatch``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench._dispatch import OpCounter
from orchestrator.fused import loop as FU
from orchestrator.train import runner as R
from orchestrator.train.batches import DeviceRows, batch_order, batch_widths
from orchestrator.train.step import Schedule, tensor_lr, train_step

pytestmark = pytest.mark.usefixtures("one_thread")


def cfg(**kw) -> R.TrialConfig:
    base = dict(model="BERT-Tiny", task="RTE", batch_size=16, learning_rate=1e-3, epochs=1, seed=0, init="random",
                max_train_examples=96, max_length=64)
    base.update(kw)
    return R.TrialConfig(**base)


def epoch_of(p: R.Prepared, enc, data: DeviceRows) -> list:
    order = batch_order(enc.lengths, p.config.batch_size, np.random.default_rng(0), True)
    return data.epoch(order, batch_widths(enc.lengths, order, p.config.batch_size, p.config.max_length))


def assert_no_sync(c: OpCounter) -> None:
    assert c.calls > 100                                      # the step did run under the counter
    assert c.syncs == {}, f"host syncs in a training step: {c.syncs}"
    assert c.lifts == {}, f"Python numbers lifted into tensors in a training step: {c.lifts}"


@pytest.mark.parametrize("accum", [1, 2])
def test_a_solo_step_waits_for_nothing(src, accum):
    p = R.prepare(cfg(grad_accum=accum), src)
    opt = R.make_optimizer(p.model, p.config, p.device)
    sched = Schedule(6, 0.1, p.device)
    lr = tensor_lr(opt, sched, p.config.learning_rate)
    assert isinstance(lr, torch.Tensor)
    data = DeviceRows(p.train, p.use_token_types, p.device)
    batches = epoch_of(p, p.train, data)
    micro = p.config.batch_size // accum
    p.model.train()
    train_step(p.model, opt, sched, lr, 1e-3, data.parts(*batches[0], micro), 1.0)   # AdamW makes its state
    with OpCounter() as c:
        for rows, width in batches[1:3]:
            loss = train_step(p.model, opt, sched, lr, 1e-3, data.parts(rows, width, micro), 1.0)
    assert_no_sync(c)
    assert loss.shape == () and torch.isfinite(loss)
    assert float(sched.t) == 3 and float(lr) == pytest.approx(1e-3 * R.lr_factor(6, 0.1)(3), rel=1e-6)


def test_a_fused_step_waits_for_nothing(src):
    configs = [cfg(learning_rate=lr) for lr in (1e-3, 1e-4)]
    p = R.prepare(configs[0], src)
    u = FU.training_unit(p, configs)
    sched = Schedule(6, 0.1, p.device)
    data = DeviceRows(u.train, p.use_token_types, p.device)
    batches = epoch_of(p, p.train, data)
    u.train_step(data.parts(*batches[0], 16), sched)
    with OpCounter() as c:
        for rows, width in batches[1:3]:
            losses = u.train_step(data.parts(rows, width, 16), sched)
    assert_no_sync(c)
    assert losses.shape == (2,) and bool(torch.isfinite(losses).all())
    want = [lr * R.lr_factor(6, 0.1)(2) for lr in (1e-3, 1e-4)]   # the last step's learning rates
    assert u.opt.lr.tolist() == pytest.approx(want, rel=1e-6) and float(u.opt.step_t) == 3


def test_the_device_schedule_is_the_host_schedule():
    for total, ratio in ((10, 0.1), (7, 0.0), (25, 0.5), (1, 0.1)):
        s, f = Schedule(total, ratio, torch.device("cpu")), R.lr_factor(total, ratio)
        for step in range(total + 2):
            assert float(s.factor) == pytest.approx(f(step), abs=1e-7), (total, ratio, step)
            s.advance()


@pytest.mark.parametrize("family", ["bert", "distilbert"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_the_prepared_mask_gives_the_models_own_outputs(family, attention):
    from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                              DistilBertForSequenceClassification)
    from orchestrator.train.step import model_inputs

    torch.manual_seed(0)
    if family == "bert":
        model = BertForSequenceClassification(BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=2,
                                                         intermediate_size=128, attn_implementation=attention))
    else:
        model = DistilBertForSequenceClassification(DistilBertConfig(n_layers=2, dim=64, n_heads=2, hidden_dim=128,
                                                                     attn_implementation=attention))
    model.eval()
    ids = torch.randint(1000, 2000, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, 5:], mask[2, 9:] = 0, 0
    batch = {"input_ids": ids, "attention_mask": mask}
    prepared = model_inputs(batch, model)
    assert prepared["attention_mask"].shape == (3, 1, 1, 12)
    with torch.no_grad():
        assert torch.allclose(model(**prepared).logits, model(**batch).logits, atol=1e-6)
