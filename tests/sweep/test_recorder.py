"""The store recorder when the store stops taking records mid-sweep: it records the error once
(every later write is skipped, the sweep is stopped) and the driver exits with EXIT_STORE (4),
not 2, which means bad input with nothing run (docs/faults.md: exit codes)."""

from __future__ import annotations

import logging
import socket

from orchestrator.config import TrialConfig, make_trial
from orchestrator.store import location as storage, records as store
from orchestrator.sweep.driver import EXIT_STORE, store_lost
from orchestrator.sweep.recorder import StoreRecorder


def test_a_store_that_stops_answering_stops_the_sweep_with_its_own_exit_code(caplog):
    with socket.socket() as s:   # a loopback port nobody listens on: the object store is gone
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loc = storage.at(f"s3://sweeps/run?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1")
    cfg = TrialConfig(model="google/bert_uncased_L-2_H-128_A-2", task="SST-2", batch_size=32, learning_rate=1e-4,
                      epochs=1)
    rec = store.new_record(make_trial(cfg, "BERT-Tiny"), "run", "BERT-Tiny")
    recorder = StoreRecorder("run", loc, {})
    recorder._write(rec)
    assert recorder.write_error.startswith(f"cannot write s3://sweeps/run/trials/{rec['trial_id']}.json")
    recorder._write(rec)                     # no second try once the store is gone
    assert recorder.writes == 0
    with caplog.at_level(logging.ERROR):
        assert store_lost(recorder.write_error) == EXIT_STORE == 4
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(lines) == 1 and lines[0].startswith("glue-sweep: error: cannot write") and "\n" not in lines[0]
