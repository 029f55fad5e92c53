"""MMD² estimators against an independent NumPy implementation."""

import numpy as np
import pytest
from keras import ops

from keras_mi.losses import gaussian_kernel, mmd2, pairwise_squared_distances, softmax_mmd2


def np_kernel(a, b, sigmas):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return sum(np.exp(-d / (2.0 * s * s)) for s in sigmas)


def np_mmd2(a, b, sigmas=(1.0,), unbiased=False):
    kaa, kbb, kab = np_kernel(a, a, sigmas), np_kernel(b, b, sigmas), np_kernel(b, a, sigmas)
    n, m = len(a), len(b)
    if unbiased:
        term_a = (kaa.sum() - np.trace(kaa)) / (n * (n - 1))
        term_b = (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
    else:
        term_a, term_b = kaa.mean(), kbb.mean()
    return term_a + term_b - 2.0 * kab.mean()


def np_softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("sigma", [1.0, 0.3, [0.5, 1.0, 2.0]])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mmd2_matches_numpy(unbiased, sigma, seed):
    rng = np.random.default_rng(seed)
    a = np_softmax(rng.normal(size=(17, 10)) * 3).astype("float32")
    b = np_softmax(rng.normal(size=(23, 10)) * 3 + 0.5).astype("float32")
    sigmas = sigma if isinstance(sigma, list) else [sigma]
    want = np_mmd2(a, b, sigmas, unbiased)
    got = float(ops.convert_to_numpy(mmd2(a, b, sigma=sigma, unbiased=unbiased)))
    assert got == pytest.approx(want, abs=1e-6)


def test_kernel_matches_numpy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(7, 4))
    got = ops.convert_to_numpy(gaussian_kernel(a, b, sigma=[1.0, 2.0]))
    np.testing.assert_allclose(got, np_kernel(a, b, [1.0, 2.0]), atol=1e-6)


def test_identical_sets_give_zero_and_shift_grows():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(32, 6)).astype("float32")
    assert float(ops.convert_to_numpy(mmd2(a, a))) == pytest.approx(0.0, abs=1e-7)
    values = [float(ops.convert_to_numpy(mmd2(a, a + shift))) for shift in (0.1, 0.3, 0.6, 1.0)]
    assert all(lo < hi for lo, hi in zip(values, values[1:])), values
    assert values[0] > 0


def test_unbiased_is_near_zero_for_same_distribution_but_biased_is_positive():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
    unbiased = float(ops.convert_to_numpy(mmd2(a, b, unbiased=True)))
    biased = float(ops.convert_to_numpy(mmd2(a, b)))
    assert abs(unbiased) < 0.01
    assert biased > unbiased


def test_distances_are_never_negative_for_large_equal_rows():
    a = np.full((3, 50), 1e3, dtype="float32") + np.arange(3, dtype="float32")[:, None] * 1e-3
    d = ops.convert_to_numpy(pairwise_squared_distances(a, a))
    assert (d >= 0).all()


def test_softmax_mmd2_extreme_and_float16_logits():
    rng = np.random.default_rng(6)
    za = (rng.normal(size=(16, 10)) * 1e4).astype("float16")
    zb = rng.normal(size=(16, 10)).astype("float16")
    got = float(ops.convert_to_numpy(softmax_mmd2(za, zb)))
    want = np_mmd2(np_softmax(za.astype(np.float64)), np_softmax(zb.astype(np.float64)))
    assert np.isfinite(got)
    assert got == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("sigma", [0.0, -1.0, [], [1.0, 0.0], float("nan")])
def test_bad_sigma_raises(sigma):
    with pytest.raises(ValueError, match="sigma"):
        mmd2(np.zeros((2, 2)), np.zeros((2, 2)), sigma=sigma)


def test_unbiased_needs_two_rows_and_shapes_must_match():
    with pytest.raises(ValueError, match="at least 2 rows"):
        mmd2(np.zeros((1, 3)), np.zeros((4, 3)), unbiased=True)
    with pytest.raises(ValueError, match="same number of features"):
        mmd2(np.zeros((2, 3)), np.zeros((2, 4)))


def test_small_bandwidth_separates_same_mean_sets_that_sigma_one_barely_sees():
    # Why a smaller σ closes the *accuracy* gap (docs/benchmarks.md, "MMD and
    # the accuracy gap"): softmax vectors are at most √2 apart, so with σ = 1
    # the RBF kernel's leading (quadratic) term dominates, and it only compares
    # the sets' means. Train outputs that are all "0.6 on the true class" then
    # look much like reference outputs that are 60 % confident-correct and
    # 40 % confident-wrong, although their accuracies differ.
    num_classes, n = 4, 90
    one_hot = np.eye(num_classes)
    soft = np.full((n, num_classes), 0.4 / 3)
    soft[:, 0] = 0.6  # every row correct, 0.6 confident
    wrong = np.repeat(one_hot[1:], [12, 12, 12], axis=0)
    bimodal = np.concatenate([np.repeat(one_hot[:1], 54, axis=0), wrong])  # 60 % correct
    np.testing.assert_allclose(soft.mean(0), bimodal.mean(0), atol=1e-12)
    wide = float(mmd2(soft, bimodal, sigma=1.0))
    narrow = float(mmd2(soft, bimodal, sigma=0.1))
    np.testing.assert_allclose(wide, np_mmd2(soft, bimodal, (1.0,)), rtol=1e-5)
    np.testing.assert_allclose(narrow, np_mmd2(soft, bimodal, (0.1,)), rtol=1e-5)
    # Measured: 0.0997 vs 1.413. A kernel that only compared means would give 0.
    assert narrow > 10 * wide
