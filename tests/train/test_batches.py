"""Batches on the device: bucket widths keep a trial to a few shapes, the device gather pads as
the host did (ids, token types, mask), evaluation batches are cut once and cover every row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orchestrator.data.features import Encoded
from orchestrator.train.batches import (DeviceRows, batch_order, batch_widths, buckets,
                                        padded_batches)


def encoded(lengths: np.ndarray, seed: int = 0) -> Encoded:
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    return Encoded(rng.integers(1, 30000, total).astype(np.int32), rng.integers(0, 2, total).astype(np.int8), offsets,
                   rng.integers(0, 3, len(lengths)).astype(np.int64), np.arange(len(lengths)).astype(str))


@pytest.mark.parametrize("batch_size", [8, 128])
@pytest.mark.parametrize("group", [True, False])
def test_a_trial_sees_at_most_ten_batch_shapes_over_four_epochs(batch_size, group):
    lengths = np.random.default_rng(0).integers(1, 129, size=5003)          # every length 1..128
    assert lengths.min() == 1 and lengths.max() == 128
    rng, shapes, widths_seen = np.random.default_rng(1), set(), set()
    for _ in range(4):
        order = batch_order(lengths, batch_size, rng, group)
        widths = batch_widths(lengths, order, batch_size, 128)
        for b, w in zip(order, widths):
            assert int(lengths[b].max()) <= w <= 128 and w % 8 == 0
            shapes.add((len(b), w))
            widths_seen.add(w)
    assert len(shapes) <= 10, sorted(shapes)
    if group:
        assert len(widths_seen) == 8   # every bucket is used: 16, 32, ..., 128


def test_buckets_are_the_eight_widths_that_pad_least():
    uniform = np.random.default_rng(0).integers(1, 129, size=5000)
    assert buckets(uniform, 128).tolist() == [16, 32, 48, 64, 80, 96, 112, 128]
    assert buckets(np.array([5, 5, 5]), 128).tolist() == [8]
    assert buckets(np.array([3, 17, 40, 100, 5]), 100).tolist() == [8, 24, 40, 100]   # capped at the maximum length
    # short sentences get narrow buckets, and no set of 8 multiples of 8 pads less (checked against all of them)
    short = np.random.default_rng(1).geometric(0.08, size=3000).clip(1, 128)
    got = buckets(short, 128)
    assert len(got) <= 8 and got[-1] >= short.max() and all(w % 8 == 0 for w in got)

    def padding(widths):
        w = np.asarray(sorted(widths))
        return int((w[np.searchsorted(w, short)] - short).sum())
    from itertools import combinations
    top = int(got[-1])
    assert padding(got) == min(padding(list(c) + [top]) for c in combinations(range(8, top, 8), 7))
    lengths = np.array([3, 17, 40, 100, 5])
    order = [np.array([0, 4]), np.array([1, 2]), np.array([3])]
    assert batch_widths(lengths, order, 2, 100) == [8, 40, 100]          # the short batch: the widest bucket
    assert batch_widths(lengths, order, 2, 128, step=16) == [16, 48, 112]


def test_the_device_gather_pads_as_the_host_does():
    lengths = np.array([5, 1, 9, 3, 7])
    enc = encoded(lengths)
    data = DeviceRows(enc, True, torch.device("cpu"))
    rows = np.array([4, 1, 2])
    batch = data.gather(data.rows(rows), 16)
    for k, r in enumerate(rows):
        s, e = enc.offsets[r], enc.offsets[r + 1]
        n = e - s
        assert batch["input_ids"][k, :n].tolist() == enc.input_ids[s:e].tolist()
        assert batch["token_type_ids"][k, :n].tolist() == enc.token_type_ids[s:e].tolist()
        assert batch["attention_mask"][k].tolist() == [1] * n + [0] * (16 - n)
        assert batch["input_ids"][k, n:].eq(0).all() and batch["token_type_ids"][k, n:].eq(0).all()
    assert batch["input_ids"].dtype == torch.long and batch["input_ids"].shape == (3, 16)
    parts = data.parts(data.rows(rows), 16, 2)
    assert [p[1].tolist() for p in parts] == [enc.labels[[4, 1]].tolist(), enc.labels[[2]].tolist()]
    assert [p[2] for p in parts] == pytest.approx([2 / 3, 1 / 3])
    assert "token_type_ids" not in DeviceRows(enc, False, torch.device("cpu")).gather(data.rows(rows), 9)
    assert DeviceRows(enc, True, torch.device("cpu")).padded(rows)["input_ids"].shape == (3, 9)   # its own longest row


def test_an_epoch_goes_to_the_device_at_once_and_in_order():
    lengths = np.random.default_rng(2).integers(1, 60, size=101)
    data = DeviceRows(encoded(lengths), False, torch.device("cpu"))
    order = batch_order(lengths, 16, np.random.default_rng(3), True)
    epoch = data.epoch(order, batch_widths(lengths, order, 16, 64))
    assert [rows.tolist() for rows, _ in epoch] == [b.tolist() for b in order]


def test_evaluation_batches_are_sorted_padded_to_their_own_longest_row_and_cover_every_row():
    lengths = np.random.default_rng(4).integers(1, 90, size=300)
    enc = encoded(lengths)
    batches = padded_batches(enc, True, torch.device("cpu"), 64)
    assert len(batches) == 5
    assert sorted(np.concatenate([rows for rows, _ in batches]).tolist()) == list(range(300))
    widths = [b["input_ids"].shape[1] for _, b in batches]
    assert widths == sorted(widths) and [int(lengths[rows].max()) for rows, _ in batches] == widths


def test_a_step_that_is_not_compiled_pads_each_batch_to_its_own_longest_row():
    lengths = np.array([3, 5, 9, 17, 33, 70])
    order = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5])]
    assert batch_widths(lengths, order, 2, 128, bucketed=False) == [5, 17, 70]
    assert batch_widths(lengths, order[:2] + [np.array([5])], 2, 128, bucketed=False) == [5, 17, 70]
