"""Kernels, kernel MMD² and the true-class log-odds against NumPy."""

import numpy as np
import pytest

from keras_mi.losses import KERNELS, kernel_matrix, mmd2, true_class_log_odds
from keras_mi.losses.class_mmd import class_conditional_mmd2


def _np_kernel(a, b, kernel, sigmas):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    dist = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    total = 0.0
    for s in sigmas:
        if kernel == "gaussian":
            total = total + np.exp(-dist**2 / (2 * s * s))
        elif kernel == "laplacian":
            total = total + np.exp(-dist / s)
        else:
            total = total + 1.0 / np.sqrt(1.0 + dist**2 / (s * s))
    return total


def _np_mmd2(a, b, kernel, sigmas):
    def k(u, v):
        return _np_kernel(u, v, kernel, sigmas)

    return k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean()


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("sigmas", [(0.5,), (0.1, 1.0, 3.0)])
def test_kernel_matrix_matches_numpy(kernel, sigmas):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 3)).astype("float32"), rng.normal(size=(5, 3)).astype("float32")
    got = np.asarray(kernel_matrix(a, b, kernel, list(sigmas)))
    np.testing.assert_allclose(got, _np_kernel(a, b, kernel, sigmas), rtol=1e-5, atol=1e-6)
    # The diagonal of k(a, a) is one per bandwidth.
    np.testing.assert_allclose(np.diag(np.asarray(kernel_matrix(a, a, kernel, list(sigmas)))),
                               len(sigmas), rtol=1e-5)


@pytest.mark.parametrize("kernel", KERNELS)
def test_mmd2_and_class_mmd2_match_numpy_for_every_kernel(kernel):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(12, 1)).astype("float32")
    b = (rng.normal(size=(12, 1)) * 2 + 1).astype("float32")
    labels = np.array([0] * 5 + [1] * 7)
    assert float(mmd2(a, b, sigma=[0.5, 2.0], kernel=kernel)) == pytest.approx(
        _np_mmd2(a, b, kernel, (0.5, 2.0)), abs=1e-6)
    want = sum((labels == c).sum() * _np_mmd2(a[labels == c], b[labels == c], kernel, (1.0,))
               for c in (0, 1)) / len(labels)
    got = float(class_conditional_mmd2(a, b, labels, sigma=1.0, kernel=kernel))
    assert got == pytest.approx(want, abs=1e-6)


def test_heavy_tail_keeps_a_pull_on_far_rows():
    # One training row far (10 units) from every reference row: the Gaussian
    # kernel's gradient on it is ~0, the inverse multiquadric's is not.
    tf = pytest.importorskip("tensorflow")
    ref = np.zeros((4, 1), "float32")
    grads = {}
    for kernel in ("gaussian", "imq"):
        far = tf.Variable([[10.0]] + [[0.0]] * 3)
        with tf.GradientTape() as tape:
            value = mmd2(far, ref, sigma=1.0, kernel=kernel)
        grads[kernel] = abs(float(tape.gradient(value, far).numpy()[0, 0]))
    assert grads["gaussian"] < 1e-15
    assert grads["imq"] > 1e-3


def test_unknown_kernel_and_bad_bandwidth_are_refused():
    with pytest.raises(ValueError, match="kernel"):
        kernel_matrix(np.zeros((2, 1)), np.zeros((2, 1)), "cauchy")
    with pytest.raises(ValueError, match="sigma"):
        mmd2(np.zeros((2, 1)), np.zeros((2, 1)), sigma=0.0, kernel="imq")
    with pytest.raises(ValueError, match="sigma"):
        kernel_matrix(np.zeros((2, 1)), np.zeros((2, 1)), "laplacian", sigma=[])


def test_true_class_log_odds_matches_numpy_and_stays_finite():
    rng = np.random.default_rng(2)
    z = (rng.normal(size=(20, 5)) * 3).astype("float32")
    y = rng.integers(0, 5, size=20)
    p = np.exp(z - z.max(1, keepdims=True)).astype(np.float64)
    p /= p.sum(1, keepdims=True)
    py = p[np.arange(20), y]
    want = np.log(py) - np.log1p(-py)
    got = np.asarray(true_class_log_odds(z, y))
    assert got.shape == (20, 1)
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-5, atol=1e-5)
    # p_y rounds to 1 in float32 here; the log-odds is still the logit gap.
    extreme = np.array([[60.0, 0.0, 0.0]], "float32")
    assert float(np.asarray(true_class_log_odds(extreme, np.array([0])))[0, 0]) == pytest.approx(
        60.0 - np.log(2.0), rel=1e-6)
