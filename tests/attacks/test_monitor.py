"""AttackMonitor writes attack metrics into Keras logs."""

import csv

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_mi import attacks  # noqa: E402 (after the skip: the monitor imports Keras)
from keras_mi.attacks.monitor import AttackMonitor  # noqa: E402
from keras_mi.outputs import ModelOutputs  # noqa: E402


def _data(seed=0, n=96, d=20, k=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * n, d)).astype("float32")
    y = rng.integers(0, k, 2 * n)  # random labels: only memorisation helps
    return (x[:n], y[:n]), (x[n:], y[n:])


def _model(d=20, k=4):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((d,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(k)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_history_csv_and_early_stopping_see_the_keys(tmp_path, capsys):
    (xm, ym), (xn, yn) = _data()
    model = _model()
    monitor = AttackMonitor((xm, ym), (xn, yn), attacks=("loss", "entropy"), every=2,
                            sample=None, fpr_targets=(0.1,), reference=(xn[:40], yn[:40]))
    log = tmp_path / "log.csv"
    stop = keras.callbacks.EarlyStopping(monitor="mia_loss_auc", mode="max", patience=100)
    hist = model.fit(xm, ym, epochs=5, batch_size=32, verbose=0,
                     callbacks=[monitor, keras.callbacks.CSVLogger(str(log)), stop])
    assert capsys.readouterr().out == ""  # never prints
    h = hist.history
    for key in ("mia_loss_auc", "mia_loss_advantage", "mia_entropy_auc",
                "mia_loss_tpr_at_0.1", "mia_ref_loss_auc"):
        assert len(h[key]) == 5, key
    assert sorted(monitor.history) == [0, 2, 4]
    assert h["mia_loss_auc"][1] == h["mia_loss_auc"][0]  # carried between evaluations
    # The model memorises random labels, so the loss attack gets stronger.
    assert h["mia_loss_auc"][4] > h["mia_loss_auc"][0]
    # The last value is what run() reports on the final model.
    out = ModelOutputs.from_model(model, members=(xm, ym), non_members=(xn, yn))
    assert h["mia_loss_auc"][4] == pytest.approx(attacks.run(out, ["loss"]).get("loss").auc)
    with open(log) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and float(rows[4]["mia_loss_auc"]) == pytest.approx(h["mia_loss_auc"][4])


def test_sample_is_fixed_and_bad_arguments_raise():
    (xm, ym), (xn, yn) = _data()
    a = AttackMonitor((xm, ym), (xn, yn), sample=10, seed=3)
    b = AttackMonitor((xm, ym), (xn, yn), sample=10, seed=3)
    np.testing.assert_array_equal(a._members[0], b._members[0])
    assert len(a._members[1]) == 10
    with pytest.raises(ValueError, match="shadow"):
        AttackMonitor((xm, ym), (xn, yn), attacks=("loss_class",))
    with pytest.raises(ValueError, match="every"):
        AttackMonitor((xm, ym), (xn, yn), every=0)
    with pytest.raises(ValueError, match="one-hot"):
        AttackMonitor((xm, np.eye(4)[ym]), (xn, yn))
    with pytest.raises(ValueError, match="metric"):
        AttackMonitor((xm, ym), (xn, yn), metrics=("ppv",))


def test_run_on_model_matches_run_on_its_outputs():
    (xm, ym), (xn, yn) = _data(seed=1)
    model = _model()
    model.fit(xm, ym, epochs=3, batch_size=32, verbose=0)
    report = attacks.run_on_model(model, (xm, ym), (xn, yn), reference=(xn[:30], yn[:30]),
                                  attacks=["gap", "loss"])
    out = ModelOutputs.from_model(model, members=(xm, ym), non_members=(xn, yn))
    assert report.get("loss").auc == pytest.approx(attacks.run(out, ["loss"]).get("loss").auc)
    assert report.get("gap", positives="reference").n_members == 30
