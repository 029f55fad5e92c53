"""Score functions vs naive NumPy formulas, stability and bad input."""

import numpy as np
import pytest

from keras_mi.attacks import scores


def _naive(logits, labels):
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    py = p[rows, labels]
    mentr = -(1 - py) * np.log(py)
    for i in range(p.shape[1]):
        other = labels != i
        mentr[other] -= p[other, i] * np.log(1 - p[other, i])
    return {
        "loss": np.log(py),
        "confidence": py,
        "max_confidence": p.max(axis=1),
        "entropy": (p * np.log(p)).sum(axis=1),
        "modified_entropy": -mentr,
    }


@pytest.mark.parametrize("num_classes", [2, 10])
def test_scores_match_naive_formulas(num_classes):
    rng = np.random.default_rng(num_classes)
    logits = rng.normal(0, 3, (400, num_classes))
    labels = rng.integers(0, num_classes, 400)
    got = scores.compute_scores(logits, labels)
    want = _naive(logits, labels)
    for name in scores.SCORE_NAMES:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-8, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(scores.loss_score(logits, labels), want["loss"], rtol=1e-8)
    np.testing.assert_allclose(scores.entropy_score(logits), want["entropy"], rtol=1e-10)
    np.testing.assert_allclose(scores.modified_entropy_score(logits, labels),
                               want["modified_entropy"], rtol=1e-8)


def test_probability_input_gives_same_scores():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (50, 4))
    labels = rng.integers(0, 4, 50)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    a = scores.compute_scores(logits, labels)
    b = scores.compute_scores(probs, labels, from_logits=False)
    for name in scores.SCORE_NAMES:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=1e-12)


def test_huge_logits_stay_finite_and_ordered():
    # A naive softmax overflows here; log-softmax does not.
    logits = np.array([[1000.0, 0.0, 0.0], [0.0, 1000.0, 0.0], [50.0, 0.0, 0.0]])
    labels = np.array([0, 0, 0])
    got = scores.compute_scores(logits, labels)
    for name, s in got.items():
        assert np.isfinite(s).all(), name
    assert got["loss"][1] == pytest.approx(-1000.0)  # confidently wrong
    assert got["loss"][0] == 0.0
    # Mentr of a confidently wrong prediction is huge (not inf): p_1 log(1 - p_1) ~ -1000.
    assert got["modified_entropy"][1] < -900
    assert got["modified_entropy"][0] > got["modified_entropy"][2] > got["modified_entropy"][1]


def test_float32_logits_give_float32_scores():
    logits = np.random.default_rng(2).normal(size=(10, 3)).astype(np.float32)
    got = scores.compute_scores(logits, np.zeros(10, np.int64))
    assert all(v.dtype == np.float32 for v in got.values())


def test_correctness():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    np.testing.assert_array_equal(scores.correctness(logits, np.array([0, 0, 0])), [1, 0, 1])


@pytest.mark.parametrize("logits, labels, kw, match", [
    (np.array([[np.nan, 0.0]]), np.array([0]), {}, "NaN"),
    (np.zeros((0, 3)), np.zeros(0, int), {}, "no records"),
    (np.zeros((2, 3)), np.array([0, 3]), {}, r"\[0, 3\)"),
    (np.zeros((2, 3)), np.array([0]), {}, r"\(n,\)"),
    (np.zeros(3), np.array([0]), {}, "num_classes"),
    (np.array([[0.5, 0.6]]), np.array([0]), {"from_logits": False}, "sum to 1"),
    (np.array([[1.5, -0.5]]), np.array([0]), {"from_logits": False}, r"\[0, 1\]"),
    (np.zeros((2, 3)), np.array([0.0, 1.0]), {}, "integers"),
])
def test_bad_input(logits, labels, kw, match):
    with pytest.raises(ValueError, match=match):
        scores.compute_scores(logits, labels, **kw)


def test_unknown_score_name():
    with pytest.raises(ValueError, match="choose from"):
        scores.compute_scores(np.zeros((1, 2)), np.array([0]), ["lossy"])
