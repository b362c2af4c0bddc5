"""How sure a leaderboard is, from the stored outputs of its evaluations (``store.outputs``):
bootstrap intervals over dev rows, paired bootstrap tests between models, the selection effect
of picking the best of a grid, and ensembles. Pure: numpy and the registry's metrics.

Outputs of one evaluation are ``{split: array}``: [rows, classes] class probabilities or [rows]
scores (regression), in the dev split's row order; labels likewise ``{split: array}``. Where a
cell has several seeds, pass a list of outputs: its score is the mean of theirs, as the
leaderboard prints it, and each resample scores every seed on the same rows. A resample draws
the rows of each dev split with replacement, independently per split (MNLI's matched and
mismatched), the same rows for every model compared (paired).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import metrics as M

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


def decisions(task, outs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Predictions from outputs: the scores (regression) or each row's likeliest class."""
    if task.is_regression:
        return {k: np.asarray(v, dtype=np.float64).reshape(len(v)) for k, v in outs.items()}
    return {k: np.asarray(v, dtype=np.float32).argmax(-1) for k, v in outs.items()}


def headline(task, preds: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> float:
    """The task's headline score (x100) of predictions, as a trial's evaluation computes it."""
    return M.headline(M.task_metrics(task, preds, labels))


def _seeds(outs) -> list[dict[str, np.ndarray]]:
    return list(outs) if isinstance(outs, (list, tuple)) else [outs]


def _mean_headline(task, preds: list[dict], labels: dict, idx: dict | None = None) -> float:
    lab = labels if idx is None else _take(labels, idx)
    return float(np.mean([headline(task, p if idx is None else _take(p, idx), lab) for p in preds]))


def score(task, outs, labels: dict[str, np.ndarray]) -> float:
    """The headline score of outputs (of several seeds: the mean of theirs)."""
    return _mean_headline(task, [decisions(task, o) for o in _seeds(outs)], labels)


def _draws(labels: dict[str, np.ndarray], n: int, seed: int):
    """``n`` resamples: per split, row indices drawn with replacement (one generator: reproducible)."""
    rng = np.random.default_rng(seed)
    sizes = {k: len(v) for k, v in labels.items()}
    for _ in range(n):
        yield {k: rng.integers(0, m, m) for k, m in sizes.items()}


def _take(d: dict[str, np.ndarray], idx: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v[idx[k]] for k, v in d.items()}


def bootstrap_scores(task, outs, labels, n: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    preds = [decisions(task, o) for o in _seeds(outs)]
    return np.array([_mean_headline(task, preds, labels, i) for i in _draws(labels, n, seed)])


def interval(task, outs, labels, n: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> tuple[float, float]:
    """The percentile bootstrap interval of the headline score over dev rows."""
    s = bootstrap_scores(task, outs, labels, n, seed)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(s, tail)), float(np.percentile(s, 100 - tail))


def paired(task, outs_a, outs_b, labels, n: int = RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """(score of a - score of b, two-sided p-value) by paired bootstrap over dev rows: the
    share of resamples in which the difference is 0 or of the other sign, doubled."""
    pa, pb = [decisions(task, o) for o in _seeds(outs_a)], [decisions(task, o) for o in _seeds(outs_b)]
    diff = _mean_headline(task, pa, labels) - _mean_headline(task, pb, labels)
    d = np.array([_mean_headline(task, pa, labels, i) - _mean_headline(task, pb, labels, i)
                  for i in _draws(labels, n, seed)])
    if diff == 0:
        return 0.0, 1.0
    other = np.mean(d <= 0) if diff > 0 else np.mean(d >= 0)
    return float(diff), float(min(1.0, 2 * other))


@dataclass(frozen=True)
class HeldOut:
    score: float          # the configuration chosen on one half of the dev rows, scored on the other (mean of both ways)
    best_dev: float       # the best configuration's score on all dev rows (what a leaderboard prints)
    chosen: tuple         # the key chosen on each half

    @property
    def optimism(self) -> float:
        """How much picking the best of the grid on the dev rows flatters the score."""
        return self.best_dev - self.score


def halves(labels: dict[str, np.ndarray], seed: int = SEED) -> tuple[dict, dict]:
    """Each dev split's rows cut at random into two halves (fixed seed)."""
    rng = np.random.default_rng(seed)
    a, b = {}, {}
    for k, v in labels.items():
        order = rng.permutation(len(v))
        a[k], b[k] = np.sort(order[:len(v) // 2]), np.sort(order[len(v) // 2:])
    return a, b


def held_out(task, candidates: dict, labels, seed: int = SEED) -> HeldOut:
    """The selection effect: choose among ``candidates`` (``{key: outputs}``, e.g. a grid's
    configurations at their best epochs) on one half of the dev rows, score the choice on the
    other half, both ways round; beside the best score on all rows."""
    if not candidates:
        raise ValueError("no candidates")
    preds = {k: [decisions(task, o) for o in _seeds(outs)] for k, outs in candidates.items()}
    full = {k: _mean_headline(task, p, labels) for k, p in preds.items()}
    one, two = halves(labels, seed)
    scores, chosen = [], []
    for pick, judge in ((one, two), (two, one)):
        on_pick = {k: _mean_headline(task, p, labels, pick) for k, p in preds.items()}
        best = max(on_pick, key=lambda k: (on_pick[k], full[k]))
        chosen.append(best)
        scores.append(_mean_headline(task, preds[best], labels, judge))
    return HeldOut(float(np.mean(scores)), float(max(full.values())), tuple(chosen))


def ensemble(outs_list: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The mean of several evaluations' outputs (probabilities or scores), split by split."""
    if not outs_list:
        raise ValueError("nothing to ensemble")
    return {k: np.mean([np.asarray(o[k], dtype=np.float32) for o in outs_list], axis=0) for k in outs_list[0]}
