"""How sure a leaderboard is (orchestrator/results/uncertainty.py), on synthetic outputs with
known answers: bootstrap intervals, paired tests, the selection effect, ensembles."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.registry.tasks import get_task
from orchestrator.results import uncertainty as U

SST2, MNLI, STSB = get_task("SST-2"), get_task("MNLI"), get_task("STS-B")


def probs(classes: np.ndarray, n_classes: int = 2, sure: float = 0.9) -> np.ndarray:
    """Probabilities that put ``sure`` on each row's given class."""
    out = np.full((len(classes), n_classes), (1 - sure) / (n_classes - 1), dtype=np.float16)
    out[np.arange(len(classes)), classes] = sure
    return out


def test_a_perfect_model_has_a_point_interval_and_a_known_rate_the_binomial_width():
    labels = {"dev": np.tile([0, 1], 250)}
    assert U.interval(SST2, {"dev": probs(labels["dev"])}, labels) == (100.0, 100.0)
    wrong = labels["dev"].copy()
    wrong[:100] = 1 - wrong[:100]   # 80% right
    lo, hi = U.interval(SST2, {"dev": probs(wrong)}, labels)
    se = 100 * np.sqrt(0.8 * 0.2 / 500)   # 1.79 points
    assert lo < 80 < hi
    assert abs((80 - lo) - 1.96 * se) < 0.8 and abs((hi - 80) - 1.96 * se) < 0.8
    assert U.interval(SST2, {"dev": probs(wrong)}, labels) == (lo, hi)   # a fixed seed: the same interval


def test_every_dev_split_is_resampled_and_scored_as_the_task_scores_it():
    labels = {"dev_matched": np.array([0, 1, 2] * 100), "dev_mismatched": np.array([2, 1, 0] * 100)}
    outs = {"dev_matched": probs(labels["dev_matched"], 3), "dev_mismatched": probs(np.zeros(300, int), 3)}
    assert U.score(MNLI, outs, labels) == pytest.approx((100 + 100 / 3) / 2)   # the mean of m and mm
    lo, hi = U.interval(MNLI, outs, labels)
    assert lo < (100 + 100 / 3) / 2 < hi and hi - lo < 10


def test_regression_outputs_are_scores():
    labels = {"dev": np.linspace(0, 5, 200).astype(np.float32)}
    assert U.interval(STSB, {"dev": (labels["dev"] * 0.5 + 1).astype(np.float16)}, labels) == pytest.approx((100, 100), abs=1e-3)


def test_paired_tests_tell_a_real_difference_from_noise():
    rng = np.random.default_rng(1)
    labels = {"dev": rng.integers(0, 2, 1000)}
    right = probs(labels["dev"])
    assert U.paired(SST2, {"dev": right}, {"dev": right}, labels) == (0.0, 1.0)
    worse = labels["dev"].copy()
    worse[rng.choice(1000, 300, replace=False)] ^= 1
    diff, p = U.paired(SST2, {"dev": right}, {"dev": probs(worse)}, labels)
    assert diff == pytest.approx(30.0) and p < 0.01
    one_row = labels["dev"].copy()
    one_row[0] ^= 1   # 0.1 points apart: noise
    diff, p = U.paired(SST2, {"dev": right}, {"dev": probs(one_row)}, labels)
    assert diff == pytest.approx(0.1) and p > 0.05
    diff, p = U.paired(SST2, {"dev": probs(one_row)}, {"dev": right}, labels)   # the other way round
    assert diff == pytest.approx(-0.1) and p > 0.05


def test_held_out_selection_removes_the_luck_of_picking_the_best():
    labels = {"dev": np.tile([0, 1], 200)}
    one, two = U.halves(labels)
    assert sorted(np.concatenate([one["dev"], two["dev"]]).tolist()) == list(range(400))
    # a right on the first half only, b on the second only: each scores 50 on all rows, and the
    # one chosen on either half is wrong on the other: held out 0, best dev 50
    a, b = labels["dev"].copy(), labels["dev"].copy()
    a[two["dev"]] ^= 1
    b[one["dev"]] ^= 1
    h = U.held_out(SST2, {"a": {"dev": probs(a)}, "b": {"dev": probs(b)}}, labels)
    assert (h.score, h.best_dev, h.chosen, h.optimism) == (0.0, 50.0, ("a", "b"), 50.0)
    # a configuration better everywhere is chosen both ways and loses nothing
    good, fair = labels["dev"].copy(), labels["dev"].copy()
    good[::10] ^= 1   # 90%, wrong rows spread over both halves
    fair[np.arange(400) % 10 < 3] ^= 1   # 70%
    h = U.held_out(SST2, {"good": {"dev": probs(good)}, "fair": {"dev": probs(fair)}}, labels)
    assert h.chosen == ("good", "good") and h.best_dev == 90.0 and abs(h.score - 90.0) < 3
    # twenty guessers: the best of them on all rows flatters; held out they are what they are
    rng = np.random.default_rng(0)
    guess = {i: {"dev": probs(rng.integers(0, 2, 400))} for i in range(20)}
    h = U.held_out(SST2, guess, labels)
    assert h.best_dev > 53 and abs(h.score - 50) < 6 and h.optimism > 2


def test_ensembles_average_probabilities():
    e = U.ensemble([{"dev": np.array([[0.9, 0.1]], np.float16)}, {"dev": np.array([[0.3, 0.7]], np.float16)}])
    assert e["dev"] == pytest.approx(np.array([[0.6, 0.4]]), abs=1e-3)
    with pytest.raises(ValueError):
        U.ensemble([])


def test_several_seeds_score_as_their_mean_on_the_same_rows():
    labels = {"dev": np.tile([0, 1], 100)}
    all_right, half = labels["dev"].copy(), labels["dev"].copy()
    half[:100] ^= 1
    seeds = [{"dev": probs(all_right)}, {"dev": probs(half)}]
    assert U.score(SST2, seeds, labels) == 75.0
    lo, hi = U.interval(SST2, seeds, labels)
    assert lo < 75 < hi
    diff, p = U.paired(SST2, seeds, [{"dev": probs(half)}], labels)
    assert diff == 25.0 and p < 0.01
