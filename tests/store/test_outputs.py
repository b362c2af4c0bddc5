"""Each evaluation's outputs beside its record (orchestrator/store/outputs.py): arrays by epoch
and split in their own dtypes, written whole, read back; none or unreadable reads as none."""

from __future__ import annotations

import numpy as np

from orchestrator.store import outputs


def test_outputs_round_trip_by_epoch_and_split_in_their_dtypes(tmp_path):
    h = (lambda *shape: np.random.rand(*shape).astype(np.float16))
    by_epoch = {"1": {"dev_matched": h(5, 3), "dev_mismatched": h(4, 3)},
                "0.5": {"dev_matched": h(5, 3), "dev_mismatched": h(4, 3)},
                "test@1": {"MNLI/test_matched": np.array([0, 2, 1], np.int8), "AX/test": np.array([1], np.int8)}}
    outputs.write(tmp_path, "t1", by_epoch)
    got = outputs.read(tmp_path, "t1")
    assert set(got) == {"1", "0.5", "test@1"} and set(got["1"]) == {"dev_matched", "dev_mismatched"}
    assert set(got["test@1"]) == {"MNLI/test_matched", "AX/test"}
    for e, splits in by_epoch.items():
        for k, v in splits.items():
            assert got[e][k].dtype == v.dtype and np.array_equal(got[e][k], v)
    assert not [p for p in (tmp_path / "outputs").iterdir() if p.name.startswith(".")]   # no temporary file left
    rec = {"trial_id": "t1", "outputs": ["1", "0.5"], "test_outputs": ["1"]}
    assert list(outputs.of_test(tmp_path, rec, 1.0)["MNLI/test_matched"]) == [0, 2, 1]
    assert outputs.of_test(tmp_path, rec, 0.5) is None
    assert np.allclose(outputs.of_evaluation(tmp_path, rec, 0.5)["dev_matched"], by_epoch["0.5"]["dev_matched"], atol=1e-3)
    assert outputs.of_evaluation(tmp_path, rec, 2.0) is None                              # not stored
    assert outputs.of_evaluation(tmp_path, {"trial_id": "t1"}, 1.0) is None               # an older record


def test_missing_or_torn_outputs_read_as_none(tmp_path):
    assert outputs.read(tmp_path, "nothing") == {}
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "torn.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert outputs.read(tmp_path, "torn") == {}
