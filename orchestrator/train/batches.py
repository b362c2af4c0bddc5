"""How a trial's rows become batches on the device: the fixed training sample of a capped
trial, one epoch's batch order (random, fixed by the seed, grouped by length), the width each
training batch is padded to (its bucket), and the rows themselves, moved to the device once and
gathered there by index. The order depends on the seed and the batch size alone, so trials
that differ only in their learning rate see the same batches (``fused`` relies on it).

Buckets: a training batch is padded to the narrowest of its split's bucket widths that holds
its longest row: at most eight multiples of 8, chosen from the rows' lengths to pad least
(``buckets``), so the widths sit where the rows are; a batch with fewer rows than the batch
size (an epoch's last) goes to the widest bucket. A trial's batches take at most nine shapes,
few enough for a compiled step (and CUDA graphs) per shape. ``bench/buckets.py`` measures the
cost against padding each batch to its own longest row: 19% more tokens on average over six
GLUE tasks and batch sizes 8 to 128, as fixed multiples of 8 do with up to 15 shapes, where
multiples of 16 cost 33% (``bench/results/buckets-cpu.md``).

Evaluation batches (``padded_batches``) are cut once, sorted by length and padded to their own
longest row each: they are not compiled, so they take no buckets.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data import features as feats

BUCKETS = 8   # bucket widths at most (an epoch's short batch adds no width, one shape)


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


def buckets(lengths: np.ndarray, max_length: int) -> np.ndarray:
    """A split's bucket widths: at most ``BUCKETS`` multiples of 8, the widest holding the longest
    row (at most ``max_length``), chosen to pad its rows least: of all such sets, the one with the
    fewest padding tokens when each row is padded to the narrowest width that holds it (exact, by
    dynamic programming over the multiples of 8). Depends on the data alone, not on the seed."""
    if not len(lengths):
        return np.array([8], dtype=np.int64)
    top = int(min(max_length, 8 * math.ceil(int(lengths.max()) / 8)))
    cands = np.unique(np.append(np.arange(8, top, 8), top))                     # ascending, top last
    counts = np.bincount(np.minimum(lengths, top), minlength=top + 1)
    n_le = np.cumsum(counts)                                                    # rows of length <= x
    tok_le = np.cumsum(counts * np.arange(top + 1))                             # their tokens
    c = len(cands)

    def cost(i: int, j: int) -> int:   # rows in (cands[i], cands[j]] padded to cands[j]; i = -1: from 0
        lo = cands[i] if i >= 0 else 0
        rows, toks = n_le[cands[j]] - n_le[lo], tok_le[cands[j]] - tok_le[lo]
        return int(rows * cands[j] - toks)

    inf = float("inf")
    best = [[inf] * c for _ in range(BUCKETS + 1)]      # best[k][j]: k widths, the widest cands[j]
    back = [[-1] * c for _ in range(BUCKETS + 1)]
    for j in range(c):
        best[1][j] = cost(-1, j)
    for k in range(2, BUCKETS + 1):
        for j in range(c):
            for i in range(j):
                v = best[k - 1][i] + cost(i, j)
                if v < best[k][j]:
                    best[k][j], back[k][j] = v, i
    k = min(range(1, BUCKETS + 1), key=lambda k: (best[k][c - 1], k))
    out, j = [], c - 1
    while j >= 0 and k >= 1:
        out.append(int(cands[j]))
        j, k = back[k][j], k - 1
    return np.array(sorted(out), dtype=np.int64)


def batch_widths(lengths: np.ndarray, batches: list[np.ndarray], batch_size: int, max_length: int,
                 step: int | None = None, bucketed: bool = True) -> list[int]:
    """The width each batch is padded to: the narrowest bucket (``buckets``) that holds its longest
    row; a batch of fewer than ``batch_size`` rows (an epoch's last), the widest bucket. With
    ``step``, buckets are the multiples of ``step`` instead. Not ``bucketed`` (a step that is not
    compiled: a shape costs nothing, a padded token does), each batch's own longest row."""
    longest = np.array([int(lengths[b].max()) for b in batches], dtype=np.int64)
    if not bucketed:
        return [int(w) for w in longest]
    if step:
        edges = np.arange(step, step * math.ceil(max(1, int(lengths.max(initial=1))) / step) + 1, step)
        edges = np.unique(np.minimum(edges, max_length))
    else:
        edges = buckets(lengths, max_length)
    widths = edges[np.searchsorted(edges, longest)] if len(batches) else longest
    return [int(edges[-1]) if len(b) < batch_size else int(w) for b, w in zip(batches, widths)]


class DeviceRows:
    """An ``Encoded`` split on the device, once: the ids and token types flat (ragged, as the
    cache stores them), the offsets, lengths and labels. ``gather`` pads a batch of rows to a
    width given by the host, by index on the device: no Python loop over rows, no copy from
    the host, no value read back."""

    def __init__(self, enc: feats.Encoded, use_token_types: bool, device):
        self.device, self.use_token_types = device, use_token_types
        self.n, self.longest = len(enc), int(enc.lengths.max(initial=1))
        self.ids = torch.from_numpy(np.append(enc.input_ids, 0).astype(np.int64)).to(device)   # one pad cell at the end
        self.types = torch.from_numpy(np.append(enc.token_type_ids, 0).astype(np.int64)).to(device)
        self.starts = torch.from_numpy(enc.offsets[:-1].astype(np.int64)).to(device)
        self.lengths = torch.from_numpy(enc.lengths.astype(np.int64)).to(device)
        self.labels = None if enc.labels is None else torch.from_numpy(np.asarray(enc.labels)).to(device)
        self.pad = len(enc.input_ids)   # the index of the pad cell
        self.host_lengths = enc.lengths

    def rows(self, rows: np.ndarray) -> torch.Tensor:
        """Row indices as a device tensor (one copy; an epoch's are copied at once by ``epoch``)."""
        return torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(self.device)

    def gather(self, rows: torch.Tensor, width: int) -> dict:
        """The rows ``rows`` (a device tensor) padded to ``width`` (at least their longest row):
        ``input_ids``, ``attention_mask`` and (when the model takes them) ``token_type_ids``, [B, width]."""
        pos = torch.arange(width, device=self.device)
        real = pos < self.lengths.index_select(0, rows).unsqueeze(1)
        idx = (self.starts.index_select(0, rows).unsqueeze(1) + pos).masked_fill_(~real, self.pad)
        batch = {"input_ids": self.ids[idx], "attention_mask": real.long()}
        if self.use_token_types:
            batch["token_type_ids"] = self.types[idx]
        return batch

    def padded(self, rows: np.ndarray) -> dict:
        """The rows ``rows`` (host indices) padded to their own longest row (``lengths`` read on the host)."""
        return self.gather(self.rows(rows), int(self.host_lengths[rows].max()))

    def parts(self, rows: torch.Tensor, width: int, micro: int) -> list[tuple[dict, torch.Tensor | None, float]]:
        """One training batch as micro-batches of ``micro`` rows: (inputs, labels, share of the batch)."""
        n = rows.shape[0]
        out = []
        for m in range(0, n, micro):
            part = rows[m:m + micro]
            labels = None if self.labels is None else self.labels.index_select(0, part)
            out.append((self.gather(part, width), labels, part.shape[0] / n))
        return out

    def epoch(self, batches: list[np.ndarray], widths: list[int]) -> list[tuple[torch.Tensor, int]]:
        """An epoch's batches as (row indices on the device, width): its order copied to the device at once."""
        flat = self.rows(np.concatenate(batches)) if batches else self.rows(np.zeros(0, np.int64))
        out, at = [], 0
        for b, w in zip(batches, widths):
            out.append((flat[at:at + len(b)], w))
            at += len(b)
        return out


def padded_batches(enc: feats.Encoded, use_token_types: bool, device, batch_size: int) -> list[tuple[np.ndarray, dict]]:
    """An evaluation split cut once: rows sorted by length, in batches of ``batch_size``, each
    padded to its own longest row, on the device; (rows, inputs) per batch."""
    rows_on = DeviceRows(enc, use_token_types, device)
    order = np.argsort(enc.lengths, kind="stable")
    return [(order[i:i + batch_size], rows_on.padded(order[i:i + batch_size])) for i in range(0, len(order), batch_size)]
