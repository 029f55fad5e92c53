"""MixUp layer: the mixing math vs NumPy, the Beta law of lam, tf.data, seeds, config, errors."""

import keras
import numpy as np
import pytest
import scipy.stats

from keras_mi.layers import MixUp


def _np(t):
    return keras.ops.convert_to_numpy(t)


def _batch(n=8, d=5, c=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = rng.integers(0, c, size=n)
    return x, y


def _numpy_mix(values, lam, perm):
    lam = np.asarray(lam, dtype=np.float64)
    if lam.ndim == 1:
        lam = lam.reshape((-1,) + (1,) * (values.ndim - 1))
    return lam * values + (1.0 - lam) * values[perm]


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_mixed_labels_are_distributions(alpha):
    x, y = _batch(n=16, c=5)
    _, y_mix = MixUp(alpha=alpha, num_classes=5, seed=3)((x, y))
    y_mix = _np(y_mix)
    np.testing.assert_allclose(y_mix.sum(axis=1), 1.0, atol=1e-6)
    assert (y_mix >= 0).all()
    # each row puts weight only on its own class and its partner's
    assert ((y_mix > 1e-6).sum(axis=1) <= 2).all()


@pytest.mark.parametrize("per_example", [False, True])
def test_mix_matches_numpy_recomputation(per_example):
    x, y = _batch(n=12, d=3, c=4, seed=1)
    sampler = MixUp(alpha=0.7, num_classes=4, seed=11, per_example=per_example)
    layer = MixUp(alpha=0.7, num_classes=4, seed=11, per_example=per_example)
    t = sampler.get_random_transformation(x)
    lam, perm = _np(t["mix_weight"]), _np(t["permutation_order"])
    assert lam.shape == ((12,) if per_example else ())
    assert sorted(perm.tolist()) == list(range(12))
    x_mix, y_mix = layer((x, y))  # same seed: call() draws the same transformation
    np.testing.assert_allclose(_np(x_mix), _numpy_mix(x, lam, perm), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        _np(y_mix), _numpy_mix(np.eye(4)[y], lam, perm), rtol=1e-5, atol=1e-6
    )
    # and the apply step alone, on an image-shaped batch (rank 4)
    imgs = np.random.default_rng(2).random((12, 2, 2, 3)).astype("float32")
    np.testing.assert_allclose(
        _np(sampler.transform_inputs(imgs, t)), _numpy_mix(imgs, lam, perm), rtol=1e-5, atol=1e-6)


def test_soft_and_column_labels_accepted():
    x, y = _batch(n=6, c=3, seed=4)
    onehot = np.eye(3, dtype="float32")[y]
    a = MixUp(num_classes=3, seed=5)((x, y))[1]
    b = MixUp(num_classes=3, seed=5)((x, y[:, None]))[1]
    c = MixUp(seed=5)((x, onehot))[1]  # soft labels need no num_classes
    np.testing.assert_allclose(_np(a), _np(b))
    np.testing.assert_allclose(_np(a), _np(c), atol=1e-6)


def _assert_beta_moments(lam, alpha):
    n = lam.size
    mean, var, _, kurt = scipy.stats.beta.stats(alpha, alpha, moments="mvsk")
    assert mean == pytest.approx(0.5) and var == pytest.approx(1 / (4 * (2 * alpha + 1)))
    # 5 standard errors (a false alarm ~1e-6): the sample mean has sd
    # sqrt(var / n); the sample variance has sd sqrt((mu4 - var^2) / n) with
    # the fourth central moment mu4 = (kurt + 3) var^2.
    assert abs(lam.mean() - mean) < 5 * np.sqrt(var / n)
    assert abs(lam.var(ddof=1) - var) < 5 * np.sqrt((kurt + 2) * var**2 / n)


@pytest.mark.parametrize("alpha", [0.05, 0.5, 1.0, 2.0])
def test_lambda_follows_beta_law(alpha):
    # per_example=True runs the same sampler with shape (batch,): 20,000 draws at once
    layer = MixUp(alpha=alpha, seed=123, per_example=True)
    lam = _np(
        layer.get_random_transformation(np.zeros((20_000, 1), "float32"))["mix_weight"]
    ).astype(np.float64)
    _assert_beta_moments(lam, alpha)
    assert ((lam >= 0) & (lam <= 1)).all()
    if alpha >= 0.5:
        # the whole law too (KS). Not at small alpha: float32 rounds lam within
        # 6e-8 of 1 to exactly 1.0, a mass of 2 * F(6e-8) (~0.4 at alpha=0.05)
        # that KS sees as a jump at 1.0.
        assert scipy.stats.kstest(lam, scipy.stats.beta(alpha, alpha).cdf).pvalue > 1e-4


def test_lambda_per_batch_follows_beta_law():
    # one lam per batch (the default): 300 batches
    layer = MixUp(alpha=1.0, seed=321)
    x = np.zeros((2, 1), "float32")
    lam = np.array(
        [float(_np(layer.get_random_transformation(x)["mix_weight"])) for _ in range(300)]
    )
    _assert_beta_moments(lam, 1.0)


def test_small_alpha_gives_lambda_near_0_or_1():
    # G1 / (G1 + G2) would be 0/0 here; the log-space sampler must not return 0.5
    lam = _np(MixUp(alpha=0.005, seed=1, per_example=True).get_random_transformation(
        np.zeros((4000, 1), "float32"))["mix_weight"])
    assert np.isfinite(lam).all()
    near_ends = np.minimum(lam, 1 - lam) < 1e-3
    expected = 2 * scipy.stats.beta(0.005, 0.005).cdf(1e-3)
    assert abs(near_ends.mean() - expected) < 5 * np.sqrt(expected * (1 - expected) / lam.size)
    assert 0.4 < (lam < 0.5).mean() < 0.6


def test_training_false_is_identity():
    x, y = _batch(n=6, c=4)
    layer = MixUp(num_classes=4, seed=0)
    x_out, y_out = layer((x, y), training=False)
    np.testing.assert_array_equal(_np(x_out), x)
    np.testing.assert_array_equal(_np(y_out), np.eye(4, dtype="float32")[y])
    # and the default (training) does change the batch
    assert not np.allclose(_np(layer((x, y))[0]), x)


def test_same_seed_same_output_different_seed_differs():
    x, y = _batch(n=10, c=3)
    runs = [[_np(MixUp(num_classes=3, seed=s)((x, y))[0]) for _ in range(1)] for s in (7, 7, 8)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert not np.allclose(runs[0][0], runs[2][0])
    # successive calls draw fresh transformations
    layer = MixUp(num_classes=3, seed=7)
    assert not np.allclose(_np(layer((x, y))[0]), _np(layer((x, y))[0]))


def test_get_config_round_trip():
    layer = MixUp(alpha=0.4, num_classes=7, seed=9, per_example=True, name="mix")
    config = layer.get_config()
    assert {k: config[k] for k in ("alpha", "num_classes", "seed", "per_example")} == {
        "alpha": 0.4, "num_classes": 7, "seed": 9, "per_example": True}
    clone = MixUp.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, MixUp) and restored.get_config() == config
    x, y = _batch(n=5, c=7)
    np.testing.assert_array_equal(_np(layer((x, y))[0]), _np(restored((x, y))[0]))


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan"), "1"])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        MixUp(alpha=alpha)
    assert MixUp(alpha=np.float32(0.5)).alpha == 0.5  # NumPy scalars are numbers too


def test_bad_batches():
    x, y = _batch(n=6, c=3)
    layer = MixUp(num_classes=3, seed=0)
    with pytest.raises(ValueError, match="at least 2 examples"):
        layer((x[:1], y[:1]))
    with pytest.raises(ValueError, match="one label per example"):
        layer((x, y[:5]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        layer((x, y + 1))
    with pytest.raises(ValueError, match="num_classes"):
        MixUp(seed=0)((x, y))  # integer labels, no num_classes
    with pytest.raises(ValueError, match="4 columns but num_classes=3"):
        layer((x, np.eye(4, dtype="float32")[y % 4]))
    with pytest.raises(ValueError, match="sum to 1"):
        layer((x, np.random.default_rng(0).normal(size=(6, 3)).astype("float32")))
    with pytest.raises(ValueError, match="NaN"):
        layer((np.where(x > 1, np.nan, x), y))
    with pytest.raises(ValueError, match="needs labels"):
        layer(x)
