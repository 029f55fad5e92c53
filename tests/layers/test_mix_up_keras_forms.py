"""MixUp in Keras's own forms: a Functional model, ``{"images", "labels"}``
dicts (as `keras.layers.MixUp` takes), and the input's structure returned."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mi.layers import MixUp


def _np(t):
    return keras.ops.convert_to_numpy(t)


def _batch(n=8, d=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype("float32"), np.arange(n) % c


def _expected(x, y, seed, c=3):
    """NumPy mix with the transformation a fresh layer of this seed draws first."""
    t = MixUp(num_classes=c, seed=seed).get_random_transformation(x)
    lam, perm = float(_np(t["mix_weight"])), _np(t["permutation_order"])
    onehot = np.eye(c)[y]
    return lam * x + (1 - lam) * x[perm], lam * onehot + (1 - lam) * onehot[perm]


def test_mixup_in_a_functional_model():
    x, y = _batch()
    xi, yi = keras.Input((5,)), keras.Input((), dtype="int32")
    x_sym, y_sym = MixUp(num_classes=3, seed=4)((xi, yi))
    assert tuple(x_sym.shape) == (None, 5) and tuple(y_sym.shape) == (None, 3)
    model = keras.Model([xi, yi], [x_sym, y_sym])
    x_mix, y_mix = model([x, y], training=True)
    want_x, want_y = _expected(x, y, seed=4)
    np.testing.assert_allclose(_np(x_mix), want_x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(y_mix), want_y, rtol=1e-5, atol=1e-6)
    x_same, y_same = model([x, y], training=False)  # inference: no mixing
    np.testing.assert_array_equal(_np(x_same), x)
    np.testing.assert_array_equal(_np(y_same), np.eye(3)[y])


@pytest.mark.parametrize("key", ["images", "inputs"])
def test_dict_in_dict_out(key):
    x, y = _batch()
    out = MixUp(num_classes=3, seed=4)({key: x, "labels": y}, training=True)
    assert isinstance(out, dict) and sorted(out) == sorted([key, "labels"])
    want_x, want_y = _expected(x, y, seed=4)
    np.testing.assert_allclose(_np(out[key]), want_x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(out["labels"]), want_y, rtol=1e-5, atol=1e-6)


def test_dict_functional_model_and_other_structures():
    x, y = _batch()
    inputs = {
        "images": keras.Input((5,), name="images"),
        "labels": keras.Input((3,), name="labels"),
    }
    model = keras.Model(inputs, MixUp(seed=4)(inputs))
    out = model({"images": x, "labels": np.eye(3, dtype="float32")[y]}, training=True)
    assert isinstance(out, dict) and sorted(out) == ["images", "labels"]
    np.testing.assert_allclose(_np(out["images"]), _expected(x, y, seed=4)[0], rtol=1e-5, atol=1e-6)
    assert isinstance(MixUp(num_classes=3, seed=0)([x, y]), list)
    assert isinstance(MixUp(num_classes=3, seed=0)(x, y), tuple)
    with pytest.raises(ValueError, match="segmentation_masks"):
        MixUp(num_classes=3, seed=0)({"images": x, "labels": y, "segmentation_masks": x})


def _recover_mix(mixed, x):
    """``(lam, perm)`` with ``mixed[i] = lam_i * x[i] + (1 - lam_i) * x[perm[i]]``.

    For each row, the partner ``j`` and weight (least squares) that fit best;
    ``lam_i`` is NaN for a row mixed with itself (any weight fits).
    """
    lams, perm = [], []
    for i, row in enumerate(mixed):
        d = x[i] - x  # row - x[j] = lam * (x[i] - x[j])
        lam = np.clip(((row - x) * d).sum(1) / np.maximum((d * d).sum(1), 1e-12), 0.0, 1.0)
        err = np.abs(lam[:, None] * d + x - row).max(axis=1)
        j = int(np.argmin(err))
        assert err[j] < 1e-5
        lams.append(np.nan if j == i else lam[j])
        perm.append(j)
    return np.array(lams), np.array(perm)


def test_dict_elements_in_tf_data():
    x, y = _batch(n=8)
    ds = tf.data.Dataset.from_tensor_slices({"images": x, "labels": y}).batch(8)
    batch = next(iter(ds.map(MixUp(num_classes=3, seed=4))))
    assert sorted(batch) == ["images", "labels"]
    images, labels = batch["images"].numpy(), batch["labels"].numpy()
    lam, perm = _recover_mix(images, x)
    assert sorted(perm.tolist()) == list(range(8))
    lam = lam[~np.isnan(lam)]
    assert lam.size and 0.0 < lam[0] < 1.0
    np.testing.assert_allclose(lam, lam[0], atol=1e-5)  # one lam per batch
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(labels, lam[0] * onehot + (1 - lam[0]) * onehot[perm], atol=1e-5)
