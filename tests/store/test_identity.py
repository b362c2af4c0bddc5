"""A trial's identity (orchestrator/store/identity.py): a finished trial is reused only when its
settings and data are the same; old records without a settings hash only when their
configuration matches."""

from __future__ import annotations

import pytest

from orchestrator.config import TrialConfig
from orchestrator.errors import UserError
from orchestrator.store import identity


def _record_of(cfg: TrialConfig, data_fp: str | None) -> dict:
    rec = {"trial_id": "t1", "status": "completed", "trial": cfg.to_dict()}
    if data_fp is not None:
        rec.update(identity.identity_fields(cfg, data_fp))
    return rec


@pytest.mark.hardening
@pytest.mark.parametrize("change, word", [({"eval_every": 0.5}, "eval_every"), ({"max_length": 64}, "max_length"),
                                          ({"epochs": 3.0}, "epochs"), ({"warmup_ratio": 0.2}, "warmup_ratio"),
                                          ({"max_train_examples": 50}, "max_train_examples")])
def test_a_changed_setting_is_never_reused(change, word):
    cfg = TrialConfig(model="m", task="SST-2", batch_size=32, learning_rate=1e-4, epochs=2)
    with pytest.raises(UserError, match=word):
        identity.check_reuse("run", [_record_of(cfg, "d1")], {"t1": (cfg.replace(**change), "d1")})


@pytest.mark.hardening
def test_changed_data_is_never_reused_and_same_settings_are():
    cfg = TrialConfig(model="m", task="SST-2", batch_size=32, learning_rate=1e-4)
    assert identity.check_reuse("run", [_record_of(cfg, "d1")], {"t1": (cfg, "d1")}) == []
    with pytest.raises(UserError, match="data of SST-2"):
        identity.check_reuse("run", [_record_of(cfg, "d1")], {"t1": (cfg, "d2")})


@pytest.mark.hardening
def test_old_records_without_a_hash_are_reused_only_when_their_configuration_matches():
    cfg = TrialConfig(model="m", task="SST-2", batch_size=32, learning_rate=1e-4)
    warnings = identity.check_reuse("run", [_record_of(cfg, None)], {"t1": (cfg, "d1")})
    assert len(warnings) == 1 and "predate settings hashes" in warnings[0]
    with pytest.raises(UserError, match="learning_rate=1e-4 \\(now 1.5e-4\\)"):
        identity.check_reuse("run", [_record_of(cfg, None)], {"t1": (cfg.replace(learning_rate=1.5e-4), "d1")})


def test_compiling_the_step_is_not_part_of_a_trials_identity():
    """``compile`` changes how a trial runs, not what it computes: a record is reused either way,
    records from before the setting existed too, and its hash is the one written before."""
    cfg = TrialConfig(model="m", task="SST-2", batch_size=32, learning_rate=1e-4)
    on = cfg.replace(compile=True)
    assert identity.settings_hash(on, "d1") == identity.settings_hash(cfg, "d1")
    assert identity.check_reuse("run", [_record_of(cfg, "d1")], {"t1": (on, "d1")}) == []
    older = _record_of(cfg, None)
    del older["trial"]["compile"]
    assert len(identity.check_reuse("run", [older], {"t1": (on, "d1")})) == 1   # reused, with the usual warning
