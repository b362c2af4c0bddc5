"""GLUE metrics against values worked out by hand (x100, like the paper tables)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from orchestrator.registry import metrics as M
from orchestrator.registry.tasks import get_task

pytestmark = pytest.mark.filterwarnings("ignore:A single label was found")

# preds vs labels:       TP    TN    FP    TP    FN
PREDS = np.array([1, 0, 1, 1, 0])
LABELS = np.array([1, 0, 0, 1, 1])


def test_accuracy_by_hand():
    assert M.accuracy(PREDS, LABELS) == pytest.approx(60.0)  # 3 of 5
    assert M.accuracy([0, 1, 2], [0, 1, 2]) == 100.0
    assert M.accuracy([1, 1], [0, 0]) == 0.0


def test_f1_of_the_positive_class_by_hand():
    # TP 2, FP 1, FN 1: precision 2/3, recall 2/3, F1 2/3.
    assert M.f1(PREDS, LABELS) == pytest.approx(200 / 3)
    # TP 1, FP 0, FN 2: P 1, R 1/3 -> F1 = 2*1*(1/3)/(4/3) = 1/2.
    assert M.f1([1, 0, 0, 0], [1, 1, 1, 0]) == pytest.approx(50.0)
    # the positive class is 1, not the majority: swap roles and F1 changes.
    assert M.f1(1 - PREDS, 1 - LABELS) == pytest.approx(100 * 2 * 1 / (2 * 1 + 1 + 1))  # TP 1, FP 1, FN 1
    assert M.f1([0, 0, 0], [0, 1, 1]) == 0.0  # no positive prediction: 0, not a warning/NaN


def test_mcc_by_hand():
    tp, tn, fp, fn = 2, 1, 1, 1
    want = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert want == pytest.approx(1 / 6)
    assert M.mcc(PREDS, LABELS) == pytest.approx(100 * want)
    assert M.mcc([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(100.0)
    assert M.mcc([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-100.0)


def test_r3_three_class_by_hand():
    # Gorodkin's K-class MCC: (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)).
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 2, 0]
    c, s = 4, 6
    p, t = [2, 3, 1], [2, 2, 2]
    want = (c * s - sum(a * b for a, b in zip(p, t))) / math.sqrt((s * s - sum(a * a for a in p)) * (s * s - sum(b * b for b in t)))
    assert want == pytest.approx(12 / math.sqrt(22 * 24))
    assert M.r3(preds, labels) == pytest.approx(100 * want)
    assert M.r3([2, 0, 1], [2, 0, 1]) == pytest.approx(100.0)


def test_pearson_by_hand():
    x, y = [1, 2, 3, 4], [2, 4, 5, 9]
    # dx = -1.5 -.5 .5 1.5; dy = -3 -1 0 4; sum dxdy = 11, sum dx2 = 5, sum dy2 = 26
    assert M.pearson(x, y) == pytest.approx(100 * 11 / math.sqrt(5 * 26))
    assert M.pearson([0.1, 0.2, 0.3], [1.0, 2.0, 3.0]) == pytest.approx(100.0)
    assert M.pearson([3.0, 2.0, 1.0], [1.0, 2.0, 3.0]) == pytest.approx(-100.0)


def test_spearman_by_hand():
    # no ties: 1 - 6 sum d^2 / (n (n^2 - 1)), d = 0 -1 1 0
    assert M.spearman([10, 20, 30, 40], [1, 3, 2, 4]) == pytest.approx(100 * (1 - 6 * 2 / (4 * 15)))
    # ties get mean ranks: labels ranks 1 2 3.5 5 3.5 -> Pearson of ranks = 8 / sqrt(10 * 9.5)
    assert M.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(100 * 8 / math.sqrt(95))
    # monotone but not linear: Spearman 100, Pearson below.
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    y = [v ** 4 for v in x]
    assert M.spearman(x, y) == pytest.approx(100.0)
    assert M.pearson(x, y) < 99.0


@pytest.mark.parametrize("name", ["mcc", "r3", "pearson", "spearman"])
def test_constant_predictions_give_zero_not_nan(name):
    fn = M.METRICS[name]
    labels = [0, 1, 2, 1, 0] if name != "mcc" else [0, 1, 1, 0, 1]
    for preds in ([1, 1, 1, 1, 1], [0.0] * 5):
        v = fn(preds, labels)
        assert v == 0.0 and not math.isnan(v)
    v = fn([0, 1, 1, 0, 1], [1, 1, 1, 1, 1])  # constant labels
    assert v == 0.0 and not math.isnan(v)


def test_compute_keys_suffix_and_errors():
    out = M.compute(["f1", "accuracy"], PREDS, LABELS)
    assert list(out) == ["f1", "accuracy"]
    assert out["accuracy"] == pytest.approx(60.0) and out["f1"] == pytest.approx(200 / 3)
    assert all(type(v) is float for v in out.values())
    m = M.compute(["accuracy"], PREDS, LABELS, suffix="m")
    assert m == {"accuracy_m": pytest.approx(60.0)}
    with pytest.raises(ValueError, match="predictions"):
        M.compute(["accuracy"], [1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="no examples"):
        M.compute(["accuracy"], [], [])


def test_headline_is_the_mean_of_the_metrics():
    assert M.headline({"f1": 80.0, "accuracy": 70.0}) == pytest.approx(75.0)
    assert M.headline({"pearson": 88.0, "spearman": 87.0}) == pytest.approx(87.5)
    assert M.headline({"mcc": 30.0}) == pytest.approx(30.0)
    with pytest.raises(ValueError):
        M.headline({})


def test_mnli_metric_keys_and_headline():
    mnli = get_task("MNLI")
    keys = mnli.metric_keys()
    assert keys == ["accuracy_m", "accuracy_mm"]
    res = {}
    res.update(M.compute(mnli.metrics, [0, 1, 2, 2], [0, 1, 2, 0], suffix="m"))   # 75
    res.update(M.compute(mnli.metrics, [0, 1, 2, 2], [0, 1, 1, 0], suffix="mm"))  # 50
    assert list(res) == keys
    assert M.headline(res) == pytest.approx(62.5)


def test_every_metric_has_a_table_label():
    assert set(M.METRIC_LABELS) == set(M.METRICS)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=40))
def test_properties_on_random_class_ids(pairs):
    preds = np.array([p for p, _ in pairs])
    labels = np.array([l for _, l in pairs])
    assert M.accuracy(preds, labels) == pytest.approx(100 * float(np.mean(preds == labels)))
    r = M.r3(preds, labels)
    assert -100.0 <= r <= 100.0 and not math.isnan(r)
    assert M.r3(labels, labels) in (0.0, pytest.approx(100.0))  # 0 only when labels are constant
    b_preds, b_labels = preds % 2, labels % 2
    tp = int(np.sum((b_preds == 1) & (b_labels == 1)))
    fp = int(np.sum((b_preds == 1) & (b_labels == 0)))
    fn = int(np.sum((b_preds == 0) & (b_labels == 1)))
    want_f1 = 0.0 if tp == 0 else 100 * 2 * tp / (2 * tp + fp + fn)
    assert M.f1(b_preds, b_labels) == pytest.approx(want_f1)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0, 5)), min_size=2, max_size=30))
def test_correlations_are_finite_and_bounded(pairs):
    x = np.array([a for a, _ in pairs])
    y = np.array([b for _, b in pairs])
    for fn in (M.pearson, M.spearman):
        v = fn(x, y)
        assert math.isfinite(v) and -100.0 - 1e-6 <= v <= 100.0 + 1e-6


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=60))
def test_class_metrics_equal_scikit_learns(pairs):
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    preds, labels = np.array([p for p, _ in pairs]), np.array([l for _, l in pairs])
    assert M.accuracy(preds, labels) == pytest.approx(100 * accuracy_score(labels, preds))
    assert M.mcc(preds, labels) == pytest.approx(100 * matthews_corrcoef(labels, preds), abs=1e-9)
    b_preds, b_labels = np.minimum(preds, 1), np.minimum(labels, 1)
    want = f1_score(b_labels, b_preds, pos_label=1, average="binary", zero_division=0.0)
    assert M.f1(b_preds, b_labels) == pytest.approx(100 * want, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-3, 3, allow_nan=False)), min_size=3, max_size=60))
@example([(0, 2.75), (0, 2.75), (1, 2.75)])   # equal labels whose std() is a rounding error above 0
def test_correlations_equal_scipys_ties_included(pairs):
    from scipy.stats import pearsonr, spearmanr

    preds = np.array([float(p) for p, _ in pairs])   # few distinct values: many ties
    labels = np.array([round(l, 1) for _, l in pairs])
    if np.all(preds == preds[0]) or np.all(labels == labels[0]):   # undefined (scipy: nan): GLUE reports 0
        assert M.pearson(preds, labels) == 0.0 and M.spearman(preds, labels) == 0.0
        return
    assert M.pearson(preds, labels) == pytest.approx(100 * pearsonr(preds, labels)[0], abs=1e-7)
    rho = spearmanr(preds, labels)[0]
    assert M.spearman(preds, labels) == pytest.approx(0.0 if math.isnan(rho) else 100 * rho, abs=1e-7)
