"""How a trial's rows become batches: the fixed training sample of a capped trial, one epoch's
batch order (random, fixed by the seed, grouped by length) and the collator that pads a batch
to its own longest row. The order depends on the seed and the batch size alone, so trials
that differ only in their learning rate see the same batches (``fused`` relies on it)."""

from __future__ import annotations

import numpy as np
import torch

from ..data import features as feats


def train_subset(n: int, max_examples: int | None) -> np.ndarray:
    """The rows a capped trial trains on: a fixed random sample, the same for every trial
    (whatever its seed), so capped trials in one sweep compare like with like."""
    if max_examples is None or max_examples >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(20191023).permutation(n)[:max_examples])


def batch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, group_by_length: bool) -> list[np.ndarray]:
    """One epoch's batches as row indices. With grouping, rows are shuffled, cut into
    mega-batches of 50 batches, sorted by length inside each, and the batches shuffled,
    so padding is small and the order is still random."""
    perm = rng.permutation(len(lengths))
    if not group_by_length:
        return [perm[i:i + batch_size] for i in range(0, len(perm), batch_size)]
    mega = batch_size * 50
    out = []
    for i in range(0, len(perm), mega):
        chunk = perm[i:i + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        out += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [out[k] for k in rng.permutation(len(out))]


class Collator:
    """Pads a batch of rows of an ``Encoded`` split to its own longest row."""

    def __init__(self, enc: feats.Encoded, use_token_types: bool, device, pin: bool):
        self.enc, self.use_token_types, self.device, self.pin = enc, use_token_types, device, pin
        self.lengths = enc.lengths

    def __call__(self, rows: np.ndarray) -> dict:
        lens = self.lengths[rows]
        width = int(lens.max())
        ids = np.zeros((len(rows), width), dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for k, r in enumerate(rows):
            s, e = self.enc.offsets[r], self.enc.offsets[r + 1]
            ids[k, :e - s] = self.enc.input_ids[s:e]
            types[k, :e - s] = self.enc.token_type_ids[s:e]
            mask[k, :e - s] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if self.use_token_types:
            batch["token_type_ids"] = types
        out = {}
        for k, v in batch.items():
            t = torch.from_numpy(v)
            if self.pin:
                t = t.pin_memory()
            out[k] = t.to(self.device, non_blocking=True)
        return out
