"""MMDModel: clear errors before training; .keras round trip without the reference."""

import keras
import numpy as np
import pytest

from keras_mi.training import MMDModel

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weight": -0.1}, "weight"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": [1.0, -2.0]}, "sigma"),
        ({"schedule": "alternate"}, "schedule"),
        ({"gap_threshold": 3.0}, "gap_threshold"),
        ({"kernel": "cauchy"}, "kernel"),
        ({"statistic": "confidence"}, "statistic"),
        ({"reference_multiple": 0}, "reference_multiple"),
        ({"reference_multiple": 1.5}, "reference_multiple"),
        ({"reference_multiple": True}, "reference_multiple"),
        ({"reference_multiple": 2, "unbiased": True}, "biased"),
    ],
)
def test_bad_hyperparameters(make_net, toy, kwargs, match):
    x, y = toy
    with pytest.raises(ValueError, match=match):
        MMDModel(make_net(), reference=(x, y), **kwargs)


def compiled(model):
    model.compile("adam", SCCE, metrics=["accuracy"])
    return model


def test_fit_without_reference(make_net, toy):
    x, y = toy
    model = compiled(MMDModel(make_net()))
    with pytest.raises(RuntimeError, match="set_reference"):
        model.fit(x, y, epochs=1, verbose=0)


def test_reference_missing_a_training_class(make_net, toy):
    x, y = toy
    keep = y[240:] != 2
    model = compiled(MMDModel(make_net(), reference=(x[240:][keep], y[240:][keep])))
    with pytest.raises(ValueError, match=r"no examples of classes \[2\]"):
        model.fit(x[:240], y[:240], epochs=1, verbose=0)
    # Fine when training has no class 2 either.
    train = y[:240] != 2
    model.fit(x[:240][train], y[:240][train], epochs=1, verbose=0, batch_size=32)


def test_reference_smaller_than_a_batch(make_net, toy):
    x, y = toy
    model = compiled(MMDModel(make_net(), reference=(x[:20], y[:20])))
    with pytest.raises(ValueError, match="batch"):
        model.fit(x[20:], y[20:], batch_size=64, epochs=1, verbose=0)


def test_mismatched_feature_shapes(make_net, toy):
    x, y = toy
    with pytest.raises(ValueError, match="shape"):
        MMDModel(make_net(), reference=(x[:, :10], y))
    model = compiled(MMDModel(make_net(features=10), reference=(x[:, :10], y)))
    with pytest.raises(ValueError, match="per-example shape"):
        model.fit(x, y, epochs=1, verbose=0)


def test_mismatched_label_encodings(make_net, toy):
    x, y = toy
    with pytest.raises(ValueError, match="width 5"):
        MMDModel(make_net(), reference=(x, np.eye(5)[y % 5]))
    model = compiled(MMDModel(make_net(), reference=(x, y)))
    with pytest.raises(ValueError, match="width 3"):
        model.fit(x, np.eye(3)[y % 3], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="class id 7"):
        model.fit(x, np.where(y == 0, 7, y), epochs=1, verbose=0)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.set_reference(bad, y)


def test_dataset_label_width_checked(make_net, toy):
    tf = pytest.importorskip("tensorflow")
    x, y = toy
    model = compiled(MMDModel(make_net(), reference=(x, y)))
    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(6, dtype="float32")[y])).batch(32)
    with pytest.raises(ValueError, match="width 6"):
        model.fit(ds, epochs=1, verbose=0)


def test_save_load_round_trip(make_net, toy, tmp_path):
    x, y = toy
    big_reference = (np.repeat(x, 20, axis=0), np.repeat(y, 20))  # ~460 KB of inputs
    model = compiled(
        MMDModel(
            make_net(),
            reference=big_reference,
            weight=1.5,
            sigma=[0.5, 1.0],
            seed=4,
            kernel="imq",
            statistic="log_odds",
            reference_multiple=2,
        )
    )
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    path = tmp_path / "mmd.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, MMDModel)
    assert (loaded.weight, loaded.sigma, loaded.seed) == (1.5, [0.5, 1.0], 4)
    assert (loaded.kernel, loaded.statistic, loaded.reference_multiple) == ("imq", "log_odds", 2)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # The reference set is not in the file.
    inner = tmp_path / "inner.keras"
    model.model.save(inner)
    assert path.stat().st_size < inner.stat().st_size + 100_000
    assert loaded.reference is None
    with pytest.raises(RuntimeError, match="set_reference"):
        loaded.fit(x, y, epochs=1, verbose=0)
    loaded.set_reference(x, y)
    hist = loaded.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert hist.history["mmd"][0] > 0
