"""The model's outputs behind each dev evaluation, kept beside the trial's record: per dev row
the class probabilities (classification) or the score (regression), float16, so a result can
be re-scored, bootstrapped or ensembled without training again; and the test predictions of
the weights a trial's evaluations selected (``train.test_outputs``: class ids as int8, scores
as float32), from which ``submit`` writes its files.

One file per trial, ``<run>/outputs/<trial id>.npz``, holding every evaluation's arrays under
``<epoch>/<split>`` and the test outputs of its kept weights under ``test@<epoch>/<task>/<split>`` (the epoch as the record writes it, e.g. ``2`` or ``0.5``). The driver's
recorder writes it whole (atomic on a local disk, one PUT on an object store) just before the
record that names its evaluations, so a record never names outputs that are not there; a
record without outputs (an older run, a crash between the two writes) still loads, and the
readers say "no outputs" for it. Pure: numpy and the store's location, no torch.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from . import location as storage

DIR = "outputs"
TEST_PREFIX = "test@"   # test outputs of the weights of an evaluation: ``test@<epoch>`` by ``<task>/<split>``


def outputs_location(run_dir: str | Path | storage.Location, trial_id: str) -> storage.Location:
    return storage.at(run_dir).join(DIR, f"{trial_id}.npz")


def epoch_key(epoch: float) -> str:
    return f"{float(epoch):g}"


def pack(by_epoch: dict[str, dict[str, np.ndarray]]) -> bytes:
    """``{epoch key: {split: array}}`` as the bytes of one compressed .npz file, each array in
    its own dtype (dev outputs float16; test outputs int8 class ids or float32 scores)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f"{e}/{split}": np.asarray(a) for e, splits in by_epoch.items()
                                for split, a in splits.items()})
    return buf.getvalue()


def unpack(data: bytes) -> dict[str, dict[str, np.ndarray]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        out: dict[str, dict[str, np.ndarray]] = {}
        for key in z.files:
            epoch, split = key.split("/", 1)
            out.setdefault(epoch, {})[split] = z[key]
    return out


def write(run_dir, trial_id: str, by_epoch: dict[str, dict[str, np.ndarray]]) -> None:
    outputs_location(run_dir, trial_id).write_bytes(pack(by_epoch))


def read(run_dir, trial_id: str) -> dict[str, dict[str, np.ndarray]]:
    """A trial's stored outputs by epoch key and split; {} when it has none or they cannot be read."""
    loc = outputs_location(run_dir, trial_id)
    try:
        return unpack(loc.read_bytes())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return {}


def of_test(run_dir, record: dict, epoch: float) -> dict[str, np.ndarray] | None:
    """The test outputs (by ``<task>/<split>``) of ``record``'s weights at ``epoch``, or None when not stored."""
    if epoch_key(epoch) not in (record.get("test_outputs") or []):
        return None
    return read(run_dir, record["trial_id"]).get(TEST_PREFIX + epoch_key(epoch))


def of_evaluation(run_dir, record: dict, epoch: float) -> dict[str, np.ndarray] | None:
    """The outputs of ``record``'s evaluation at ``epoch`` (by split), or None when not stored."""
    if epoch_key(epoch) not in (record.get("outputs") or []):
        return None
    return read(run_dir, record["trial_id"]).get(epoch_key(epoch))
