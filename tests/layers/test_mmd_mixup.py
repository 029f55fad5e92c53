"""MMD + mixup end to end: mixup_dataset feeding MMDModel, and how pairing works."""

import keras
import numpy as np
import pytest

from keras_mi.layers import MixUp

tf = pytest.importorskip("tensorflow")


def test_argmax_of_mixed_labels_keeps_the_class_histogram():
    # With one lam per batch every row's dominant class is its own class
    # (lam > 1/2) or its partner's (lam < 1/2); perm is a bijection, so the
    # multiset of dominant classes equals the un-mixed batch's labels, and
    # MMDModel's argmax pairing draws the same reference classes as pairing
    # on the clean labels (MMD² between sets ignores row order).
    rng = np.random.default_rng(0)
    layer = MixUp(alpha=1.0, num_classes=6, seed=1)
    sides = set()
    for _ in range(30):
        y = rng.integers(0, 6, size=32)
        x = rng.normal(size=(32, 3)).astype("float32")
        t = layer.get_random_transformation(x)
        lam = float(keras.ops.convert_to_numpy(t["mix_weight"]))
        y_mix = keras.ops.convert_to_numpy(layer.transform_labels(y, t))
        dominant = y_mix.argmax(axis=1)
        np.testing.assert_array_equal(
            np.bincount(dominant, minlength=6), np.bincount(y, minlength=6)
        )
        sides.add(lam > 0.5)
    assert sides == {True, False}  # both branches were exercised
    # One lam per example does not have this property in general.
    per_example = MixUp(alpha=1.0, num_classes=6, seed=1, per_example=True)
    y = np.arange(32) % 6
    mismatches = 0
    for _ in range(10):
        y_mix = keras.ops.convert_to_numpy(per_example((np.zeros((32, 1), "float32"), y))[1])
        mismatches += not np.array_equal(
            np.bincount(y_mix.argmax(1), minlength=6), np.bincount(y, minlength=6)
        )
    assert mismatches > 0


def _blobs(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]], "float32")
    x = (centers[y] + 0.5 * rng.normal(size=(n, 2))).astype("float32")
    return x, y


def test_mmd_plus_mixup_trains_end_to_end():
    # The README lines, on a tiny 3-class problem.
    from keras_mi.data import mixup_dataset
    from keras_mi.training import MMDModel

    x_train, y_train = _blobs(192, seed=0)
    x_ref, y_ref = _blobs(96, seed=1)
    x_test, y_test = _blobs(300, seed=2)
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(3)]
    )
    # --- begin README snippet ---
    model = MMDModel(net, reference=(x_ref, y_ref), weight=3.0, seed=0)
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train = mixup_dataset(x_train, y_train, num_classes=3, alpha=1.0, batch_size=32, seed=0)
    history = model.fit(train, epochs=15, verbose=0)
    # --- end README snippet ---
    mmd = history.history["mmd"]
    loss = history.history["loss"]
    assert np.all(np.isfinite(mmd)) and np.all(np.isfinite(loss)) and min(mmd) > 0
    assert loss[-1] < loss[0]
    # trained on mixed inputs only, it still classifies clean data
    logits = keras.ops.convert_to_numpy(model.predict(x_test, verbose=0))
    assert (logits.argmax(1) == y_test).mean() > 0.9
    # the soft-label loss saw mixed targets: a plain CE on hard labels of
    # the mixed stream would be far below the logged loss
    assert loss[-1] > 0.3
