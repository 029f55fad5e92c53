"""class_conditional_mmd2 against an independent NumPy loop over classes."""

import numpy as np
import pytest

from keras_mi.losses.class_mmd import class_conditional_mmd2


def _np_kernel(a, b, sigma):
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-d / (2 * sigma**2))


def _np_mmd2(a, b, sigma, unbiased):
    kaa, kbb, kab = _np_kernel(a, a, sigma), _np_kernel(b, b, sigma), _np_kernel(a, b, sigma)
    if unbiased:
        n = len(a)

        def off(k):
            return (k.sum() - np.trace(k)) / (n * (n - 1))

        return off(kaa) + off(kbb) - 2 * kab.mean()
    return kaa.mean() + kbb.mean() - 2 * kab.mean()


def _np_class_mmd2(a, b, labels, sigma, unbiased):
    total, weight = 0.0, 0
    for c in np.unique(labels):
        rows = labels == c
        if unbiased and rows.sum() < 2:
            continue
        total += rows.sum() * _np_mmd2(a[rows], b[rows], sigma, unbiased)
        weight += rows.sum()
    return total / weight


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_loop_over_classes(unbiased, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=24)
    labels[:2] = 5  # a class with one row only when unbiased drops it below
    labels[1] = 6
    a = _softmax(rng.normal(size=(24, 7)) * 3).astype("float32")
    b = _softmax(rng.normal(size=(24, 7)) * 3).astype("float32")
    for sigma in (1.0, 0.3):
        got = float(class_conditional_mmd2(a, b, labels, sigma=sigma, unbiased=unbiased))
        want = _np_class_mmd2(a.astype(np.float64), b.astype(np.float64), labels, sigma, unbiased)
        assert got == pytest.approx(want, abs=1e-6)


def test_zero_for_identical_and_grows_with_within_class_shift():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 8)
    a = _softmax(rng.normal(size=(24, 3))).astype("float32")
    assert float(class_conditional_mmd2(a, a, labels)) == pytest.approx(0.0, abs=1e-7)
    sharper = [float(class_conditional_mmd2(a, _softmax(np.log(a) * t).astype("float32"), labels))
               for t in (1.5, 3.0, 6.0)]
    assert 0 < sharper[0] < sharper[1] < sharper[2]


def test_ignores_cross_class_differences_that_pooled_mmd_sees():
    """Swapping which rows of a class come first changes nothing; only class pairs count."""
    from keras_mi.losses import mmd2

    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 6)
    a = _softmax(rng.normal(size=(24, 5)) * 2).astype("float32")
    perm = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in range(4)])
    b = a[perm]  # same rows, shuffled within each class
    assert float(class_conditional_mmd2(a, b, labels)) == pytest.approx(0.0, abs=1e-6)
    assert float(mmd2(a, b)) == pytest.approx(0.0, abs=1e-6)
    # Paired by class but with the class outputs exchanged: the pooled MMD
    # cannot tell (same multiset), the class-conditional one can.
    swapped = np.concatenate([a[labels == (c + 1) % 4] for c in range(4)])
    assert float(mmd2(a, swapped)) == pytest.approx(0.0, abs=1e-6)
    assert float(class_conditional_mmd2(a, swapped, labels)) > 1e-3


@pytest.mark.parametrize("seed", [0, 1])
def test_unmatched_reference_sample_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=10)
    labels_b = np.concatenate([labels, labels, [4]])  # two reference rows each, one extra class
    a = _softmax(rng.normal(size=(10, 5)) * 2).astype("float32")
    b = _softmax(rng.normal(size=(21, 5)) * 2).astype("float32")
    want = sum((labels == c).sum() / len(labels)
               * _np_mmd2_unequal(a[labels == c], b[labels_b == c], 0.5)
               for c in np.unique(labels))
    got = float(class_conditional_mmd2(a, b, labels, sigma=0.5, labels_b=labels_b))
    assert got == pytest.approx(want, abs=1e-6)
    # Row-matched labels give the matched estimator.
    matched = float(class_conditional_mmd2(a, b[:10], labels, sigma=0.5))
    assert float(class_conditional_mmd2(a, b[:10], labels, sigma=0.5,
                                        labels_b=labels)) == pytest.approx(matched, abs=1e-6)
    with pytest.raises(ValueError, match="biased"):
        class_conditional_mmd2(a, b, labels, labels_b=labels_b, unbiased=True)


def _np_mmd2_unequal(a, b, sigma):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (_np_kernel(a, a, sigma).mean() + _np_kernel(b, b, sigma).mean()
            - 2 * _np_kernel(a, b, sigma).mean())
