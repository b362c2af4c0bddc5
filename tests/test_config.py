"""Trial configurations (orchestrator/config.py): learning rates named exactly in trial ids,
nearby rates kept apart, absurd values refused."""

from __future__ import annotations

import pytest
from hostile import BASE

from orchestrator.config import TrialConfig, fmt_lr, make_trial
from orchestrator.errors import UserError
from orchestrator.results.values import fmt_lr as table_lr
from orchestrator.spec import sweep as S


@pytest.mark.hardening
@pytest.mark.parametrize("lr, text", [(1e-4, "1e-4"), (5e-5, "5e-5"), (5.4e-5, "5.4e-5"), (2.5e-5, "2.5e-5"),
                                      (3e-4, "3e-4"), (1.2345678901234e-4, "1.2345678901234e-4")])
def test_learning_rates_are_named_exactly(lr, text):
    assert fmt_lr(lr) == table_lr(lr) == text and float(text) == lr
    cfg = TrialConfig(model="m", task="SST-2", batch_size=32, learning_rate=lr)
    assert make_trial(cfg, "BERT-Tiny").id == f"BERT-Tiny__SST-2__bs32_lr{text}_s0"


@pytest.mark.hardening
def test_nearby_learning_rates_are_different_trials():
    sw = S.parse(BASE + "search: {batch_size: [32], learning_rate: [2e-5, 2.5e-5, 5e-5, 5.4e-5]}\n", "s.yaml")
    ids = [t.id for t in sw.trials()]
    assert [i.split("_lr")[1] for i in ids] == ["2e-5_s0", "2.5e-5_s0", "5e-5_s0", "5.4e-5_s0"]


@pytest.mark.hardening
@pytest.mark.parametrize("bad, words", [
    ({"temperature": 1e308}, "temperature must be at most 100"),
    ({"alpha": 1.5}, "alpha must be between 0 and 1"),
    ({"alpha": 1e308}, "alpha must be between 0 and 1"),
])
def test_trial_config_bounds_every_distillation_number(bad, words):
    base = {"model": "m", "task": "t", "batch_size": 8, "learning_rate": 1e-4, "training": "distill",
            "teacher": "/t", "transfer": ["train"]}
    assert TrialConfig(**base, temperature=100.0, alpha=1.0).alpha == 1.0   # the bounds themselves are values
    with pytest.raises(UserError, match=words):
        TrialConfig(**base, **bad)


@pytest.mark.hardening
def test_trial_config_refuses_absurd_values():
    for bad in ({"learning_rate": 1000.0}, {"learning_rate": 1.0}, {"epochs": 1e6}, {"batch_size": 10 ** 6}):
        with pytest.raises(UserError):
            TrialConfig(**{"model": "m", "task": "t", "batch_size": 8, "learning_rate": 1e-4, **bad})
