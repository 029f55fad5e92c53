"""label_smoothing, confidence_penalty, early_stopping: math vs NumPy, JAX, saving, bounds."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_mi.defenses import get_defense
from keras_mi.experiment import ExperimentConfig, TrainingRecipe, run_experiment
from keras_mi.experiment.train import fit_plan

REPO = pathlib.Path(__file__).resolve().parents[2]


def _data(n, seed, d=8, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = np.digitize(x[:, 0] + 0.5 * rng.normal(size=n), [-0.5, 0.5]).astype(np.int64)
    return x, y


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _logits(n=7, k=5, seed=0):
    return (3.0 * np.random.default_rng(seed).normal(size=(n, k))).astype("float32")


def test_confidence_penalty_matches_numpy():
    from keras_mi.defenses import ConfidencePenalty

    z = _logits()
    y = np.array([0, 4, 2, 2, 1, 3, 0])
    log_p = _log_softmax(z.astype(np.float64))
    nll = -log_p[np.arange(len(y)), y]
    entropy = -(np.exp(log_p) * log_p).sum(axis=1)
    for beta in (0.1, 2.0):
        want = np.mean(nll - beta * entropy)
        got = float(ConfidencePenalty(beta=beta)(y, z))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        # Labels shaped (batch, 1), as Keras may pass them.
        np.testing.assert_allclose(float(ConfidencePenalty(beta=beta)(y[:, None], z)), want,
                                   rtol=1e-6, atol=1e-6)
    per_example = ConfidencePenalty(beta=0.5, reduction=None)(y, z)
    np.testing.assert_allclose(np.asarray(per_example), nll - 0.5 * entropy, rtol=1e-6,
                               atol=1e-6)


def test_confidence_penalty_gradient_step_matches_numpy():
    """One SGD step of a linear model: d/dz of CE − β·H, by hand."""
    import keras

    from keras_mi.defenses import ConfidencePenalty

    x, y = _data(16, seed=3)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, use_bias=False)])
    w0 = model.get_weights()[0].astype(np.float64)
    beta, lr = 0.7, 0.5
    model.compile(optimizer=keras.optimizers.SGD(lr), loss=ConfidencePenalty(beta=beta))
    model.train_on_batch(x, y)
    z = x.astype(np.float64) @ w0
    log_p = _log_softmax(z)
    p = np.exp(log_p)
    onehot = np.eye(3)[y]
    # dCE/dz = p − onehot;  dH/dz_j = −p_j (log p_j + H).
    entropy = -(p * log_p).sum(axis=1, keepdims=True)
    d_h = -p * (log_p + entropy)
    grad_z = (p - onehot - beta * d_h) / len(y)
    want = w0 - lr * x.astype(np.float64).T @ grad_z
    np.testing.assert_allclose(model.get_weights()[0], want, rtol=1e-5, atol=1e-6)


def test_confidence_penalty_keras_round_trip(tmp_path):
    import keras

    from keras_mi.defenses import ConfidencePenalty

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=ConfidencePenalty(beta=0.3))
    path = tmp_path / "cp.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, ConfidencePenalty) and loaded.loss.beta == 0.3
    z, y = _logits(k=3), np.array([0, 1, 2, 2, 1, 0, 0])
    np.testing.assert_allclose(float(loaded.loss(y, z)),
                               float(ConfidencePenalty(beta=0.3)(y, z)), rtol=1e-7)
    again = ConfidencePenalty.from_config(ConfidencePenalty(beta=0.3).get_config())
    assert again.beta == 0.3
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="beta must be a positive"):
            ConfidencePenalty(beta=bad)


def test_label_smoothing_loss_is_smoothed_cross_entropy():
    cfg = ExperimentConfig().with_overrides({"label_smoothing.epsilon": 0.2})
    x, y = _data(7, seed=1)
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(5)])
    plan = get_defense("label_smoothing").build(model, cfg, {"train": (x, y)}, 5, 0, None)
    xs, targets = plan.data
    assert xs is x and targets.shape == (7, 5)
    z = _logits()
    smooth = 0.8 * np.eye(5)[y] + 0.2 / 5
    want = np.mean(-(smooth * _log_softmax(z.astype(np.float64))).sum(axis=1))
    np.testing.assert_allclose(float(plan.loss(targets, z)), want, rtol=1e-6, atol=1e-6)


def test_early_stopping_watches_the_reference_set_and_keeps_the_best_epoch():
    import keras

    x, y = _data(48, seed=4)
    # Shuffled labels: the held-out loss soon rises while training goes on.
    ref = (_data(40, seed=5)[0], np.random.default_rng(0).permutation(_data(40, seed=5)[1]))
    cfg = ExperimentConfig(training=TrainingRecipe(epochs=40, batch_size=16,
                                                   learning_rate=0.05))
    cfg.early_stopping.patience = 2
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64, activation="tanh"),
                              keras.layers.Dense(3)])
    plan = get_defense("early_stopping").build(model, cfg, {"train": (x, y), "reference": ref},
                                               3, 0, None)
    assert plan.fit_kwargs["validation_data"][0] is ref[0]  # the reference split, not members
    history = fit_plan(plan, cfg.training, steps_per_epoch=3)
    val = np.array(history.history["val_loss"])
    assert len(val) < 40  # it stopped
    best = int(np.argmin(val))
    assert len(val) == best + 1 + 2  # patience 2 after the best epoch
    # The weights kept are the best epoch's: their reference loss is the minimum.
    z = np.asarray(model.predict(ref[0], verbose=0), np.float64)
    ref_loss = np.mean(-_log_softmax(z)[np.arange(len(ref[1])), ref[1]])
    np.testing.assert_allclose(ref_loss, val.min(), rtol=1e-5)


def test_mmd_early_stopping_is_mmd_stopped_at_its_best_reference_epoch():
    import keras

    from keras_mi.training import MMDModel

    x, y = _data(48, seed=4)
    ref = (_data(40, seed=5)[0], np.random.default_rng(0).permutation(_data(40, seed=5)[1]))
    cfg = ExperimentConfig(training=TrainingRecipe(epochs=40, batch_size=16,
                                                   learning_rate=0.05),
                           mmd_weight=3.0, mmd_sigma=0.1)
    cfg.early_stopping.patience = 2
    data = {"train": (x, y), "reference": ref}

    def fitted(name):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64, activation="tanh"),
                                  keras.layers.Dense(3)])
        plan = get_defense(name).build(model, cfg, data, 3, 0, None)
        return model, plan, fit_plan(plan, cfg.training, steps_per_epoch=3)

    model, plan, history = fitted("mmd+early_stopping")
    assert isinstance(plan.model, MMDModel) and plan.model.weight == 3.0
    assert plan.fit_kwargs["validation_data"][0] is ref[0]
    val = np.array(history.history["val_loss"])
    assert len(val) < 40 and len(val) == int(np.argmin(val)) + 1 + 2
    assert "mmd" in history.history  # the MMD² was in the loss
    # The kept weights are the best epoch's, and val_loss is the cross-entropy alone.
    z = np.asarray(model.predict(ref[0], verbose=0), np.float64)
    ref_loss = np.mean(-_log_softmax(z)[np.arange(len(ref[1])), ref[1]])
    np.testing.assert_allclose(ref_loss, val.min(), rtol=1e-5)
    # Same seed and stopping rule without the MMD²: another model.
    plain, _, _ = fitted("early_stopping")
    assert np.abs(plain.predict(ref[0], verbose=0) - z).max() > 1e-3


@pytest.mark.parametrize("values, message", [
    ({"label_smoothing.epsilon": 1.0}, "label_smoothing.epsilon must lie in (0, 1)"),
    ({"label_smoothing.epsilon": 0.0}, "label_smoothing.epsilon must lie in (0, 1)"),
    ({"confidence_penalty.beta": -0.1}, "confidence_penalty.beta must lie in (0, 10]"),
    ({"confidence_penalty.beta": 11}, "confidence_penalty.beta must lie in (0, 10]"),
    ({"early_stopping.patience": 1001}, "early_stopping.patience must lie in 0..1000"),
    ({"early_stopping.min_delta": -1e-3}, "early_stopping.min_delta must lie in [0, 10]"),
])
def test_out_of_range_settings_fail_before_anything_is_written(tmp_path, values, message):
    cfg = ExperimentConfig(dataset="synthetic", defenses=["none", "label_smoothing",
                                                          "confidence_penalty",
                                                          "early_stopping"])
    cfg = cfg.with_overrides({k: str(v) for k, v in values.items()})
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        run_experiment(cfg, out, data=_data(400, 0), verbose=0)
    assert not out.exists()


_JAX_SCRIPT = textwrap.dedent("""
    import json, numpy as np, keras
    assert keras.backend.backend() == "jax"
    from keras_mi.experiment import ExperimentConfig, SplitSizes, TrainingRecipe
    from keras_mi.experiment.train import train_keras_defense
    from keras_mi.defenses import ConfidencePenalty
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8)).astype("float32"); y = rng.integers(0, 3, 32)
    cfg = ExperimentConfig(split=SplitSizes(members=32), training=TrainingRecipe(
        epochs=2, batch_size=16))
    out = {}
    for name in ("label_smoothing", "confidence_penalty", "early_stopping",
                 "mmd+early_stopping"):
        m = train_keras_defense(name, cfg, {"train": (x, y), "reference": (x[:16], y[:16])},
                                (8,), 3, "linear", seed=1).model
        out[name] = bool(np.isfinite(m.predict(x, verbose=0)).all())
    z = rng.normal(size=(5, 3)).astype("float32"); t = np.array([0, 1, 2, 1, 0])
    out["cp"] = float(ConfidencePenalty(beta=0.4)(t, z))
    out["backend"] = keras.backend.backend()
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.slow
def test_the_three_defenses_train_under_the_jax_backend():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _JAX_SCRIPT], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT")][-1]
    got = json.loads(line[len("RESULT"):])
    assert got["label_smoothing"] and got["confidence_penalty"] and got["early_stopping"]
    assert got["mmd+early_stopping"]
    assert got["backend"] == "jax"
    # (Keras's own fit may load TensorFlow for its data adapter when it is installed,
    # so no claim about sys.modules here: the defenses' math ran on JAX.)
    rng = np.random.default_rng(0)
    rng.normal(size=(32, 8)), rng.integers(0, 3, 32)  # the script's draws, in its order
    z, t = rng.normal(size=(5, 3)).astype("float32"), np.array([0, 1, 2, 1, 0])
    log_p = _log_softmax(z.astype(np.float64))
    want = np.mean(-log_p[np.arange(5), t] + 0.4 * (np.exp(log_p) * log_p).sum(axis=1))
    np.testing.assert_allclose(got["cp"], want, rtol=1e-6, atol=1e-6)
