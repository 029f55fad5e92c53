"""Metrics vs hand-computed cases and vs scikit-learn."""

import numpy as np
import pytest
from sklearn import metrics as skm

from keras_mi.attacks import metrics


def test_perfect_separation_gives_auc_one_and_full_advantage():
    fpr, tpr, _ = metrics.roc_curve([5.0, 4.0, 3.0], [2.0, 1.0])
    assert metrics.auc(fpr, tpr) == 1.0
    assert metrics.advantage(fpr, tpr) == 1.0
    assert metrics.best_accuracy(fpr, tpr) == 1.0
    assert metrics.tpr_at_fpr(fpr, tpr, 0.0) == 1.0


def test_reversed_separation_gives_auc_zero_and_no_advantage():
    fpr, tpr, _ = metrics.roc_curve([1.0, 2.0], [3.0, 4.0])
    assert metrics.auc(fpr, tpr) == 0.0
    assert metrics.advantage(fpr, tpr) == 0.0


def test_identical_distributions_give_chance():
    rng = np.random.default_rng(0)
    m = metrics.attack_metrics(rng.normal(size=20000), rng.normal(size=20000))
    assert abs(m["auc"] - 0.5) < 0.01
    assert m["advantage"] < 0.03


def test_all_ties_count_half():
    fpr, tpr, thr = metrics.roc_curve(np.ones(4), np.ones(6))
    assert metrics.auc(fpr, tpr) == 0.5
    np.testing.assert_array_equal(fpr, [0.0, 1.0])
    np.testing.assert_array_equal(thr, [np.inf, 1.0])


def test_known_small_case_for_tpr_at_fpr():
    # members 10..1, non-members 0.5 and 7.5 ... hand-computed curve:
    members = np.arange(1.0, 11.0)  # 10 members
    non_members = np.array([7.5, 0.5, 0.4, 0.3])  # 4 non-members
    fpr, tpr, _ = metrics.roc_curve(members, non_members)
    # Thresholds 10, 9, 8 give 3 members and no non-member: TPR 0.3 at FPR 0.
    assert metrics.tpr_at_fpr(fpr, tpr, 0.0) == pytest.approx(0.3)
    assert metrics.tpr_at_fpr(fpr, tpr, 0.2) == pytest.approx(0.3)
    # At FPR 0.25 (7.5 included) all members down to 1 are caught.
    assert metrics.tpr_at_fpr(fpr, tpr, 0.25) == pytest.approx(1.0)
    # Advantage: threshold 1.0 -> TPR 1, FPR 0.25.
    assert metrics.advantage(fpr, tpr) == pytest.approx(0.75)
    # AUC: 7.5 beats 7 of the 10 members' pairs -> (40 - 7) / 40.
    assert metrics.auc(fpr, tpr) == pytest.approx(33 / 40)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_sklearn_on_random_data(seed, dtype):
    rng = np.random.default_rng(seed)
    n1, n0 = rng.integers(50, 500, size=2)
    pos = rng.normal(0.3, 1.0, n1).round(1).astype(dtype)  # rounding makes ties
    neg = rng.normal(0.0, 1.0, n0).round(1).astype(dtype)
    labels = np.r_[np.ones(n1), np.zeros(n0)]
    scores = np.r_[pos, neg]
    fpr, tpr, thr = metrics.roc_curve(pos, neg)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    np.testing.assert_allclose(thr[1:], sk_thr[1:], atol=1e-6)
    assert metrics.auc(fpr, tpr) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    assert metrics.advantage(fpr, tpr) == pytest.approx(np.max(sk_tpr - sk_fpr), abs=1e-12)


def test_tpr_at_fpr_matches_bruteforce_thresholds():
    rng = np.random.default_rng(3)
    pos, neg = rng.normal(1, 1, 300), rng.normal(0, 1, 700)
    fpr, tpr, _ = metrics.roc_curve(pos, neg)
    for target in (0.0, 0.001, 0.01, 0.1, 0.5):
        best = 0.0
        for t in np.r_[pos, neg]:
            if np.mean(neg >= t) <= target:
                best = max(best, np.mean(pos >= t))
        assert metrics.tpr_at_fpr(fpr, tpr, target) == pytest.approx(best)


def test_best_threshold_applies_as_score_geq_threshold():
    rng = np.random.default_rng(4)
    pos, neg = rng.normal(1, 1, 200), rng.normal(0, 1, 300)
    thr, acc = metrics.best_threshold(pos, neg)
    assert acc == pytest.approx(0.5 * (np.mean(pos >= thr) + np.mean(neg < thr)))
    grid = np.r_[pos, neg]
    brute = max(0.5 * (np.mean(pos >= t) + np.mean(neg < t)) for t in grid)
    assert acc == pytest.approx(brute)


@pytest.mark.parametrize("bad, match", [
    (([], [1.0]), "empty"),
    (([np.nan, 1.0], [0.0]), "NaN"),
    ((np.ones((2, 2)), [0.0]), "1-D"),
])
def test_bad_input_raises_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        metrics.roc_curve(*bad)


def test_tpr_at_fpr_rejects_out_of_range_target():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.tpr_at_fpr([0, 1], [0, 1], 1.5)
