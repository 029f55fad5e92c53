"""AdvRegModel: its min-max step vs NumPy, the inference model learns, saving, JAX."""

import inspect

import keras
import numpy as np
import pytest

from keras_mi.defenses.advreg_model import AdvRegModel

K, D = 3, 4


# ----------------------------------------------------------- NumPy reference
def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def features(p, y):
    return np.concatenate([np.sort(p, axis=1), 2.0 * np.eye(K)[y] - 1.0], axis=1)


def h(feat, a, b):
    return 1.0 / (1.0 + np.exp(-(feat @ a + b)))


def np_terms(w, a, b, x, y, x_ref, y_ref):
    """(CE, gain, MSE) of one step; the reference batch repeats its one row."""
    p = softmax(x.astype(np.float64) @ w)
    ce = -np.log(p[np.arange(len(y)), y]).mean()
    p_ref = softmax(np.repeat(x_ref, len(y), axis=0).astype(np.float64) @ w)
    h_in = h(features(p, y), a, b)[:, 0]
    h_out = h(features(p_ref, np.repeat(y_ref, len(y))), a, b)[:, 0]
    gain = h_in.mean() - 0.5
    mse = (((h_in - 1) ** 2).sum() + (h_out ** 2).sum()) / (2 * len(y))
    return ce, gain, mse


def tiny_attack(a, b):
    probs, labels = keras.Input((K,)), keras.Input((K,))
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()([probs, labels]))
    model = keras.Model([probs, labels], out)
    model.layers[-1].set_weights([a.astype("float32"), b.astype("float32")])
    return model


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, D)).astype("float32")
    y = rng.integers(0, K, 8)
    w = rng.normal(size=(D, K)).astype("float32")
    a = rng.normal(size=(2 * K, 1)).astype("float32")
    b = np.array([0.1], "float32")
    x_ref, y_ref = rng.normal(size=(1, D)).astype("float32"), np.array([2])
    return x, y, w, a, b, x_ref, y_ref


@pytest.mark.parametrize("warmup, weight, attack_weight", [(0, 3.0, 1.0), (0, 0.5, 4.0),
                                                           (1, 3.0, 1.0)])
def test_one_sgd_step_matches_numpy(case, warmup, weight, attack_weight, np_grad, linear):
    x, y, w, a, b, x_ref, y_ref = case
    lr = 0.5
    model = AdvRegModel(linear(w), reference=(x_ref, y_ref), weight=weight,
                        attack_weight=attack_weight, warmup_epochs=warmup,
                        attack_model=tiny_attack(a, b), seed=0)
    model.compile(keras.optimizers.SGD(lr), keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    logs = model.train_on_batch(x, y, return_dict=True)
    on = 1.0 if warmup == 0 else 0.0
    ce, gain, mse = np_terms(w, a, b, x, y, x_ref, y_ref)
    assert logs["loss"] == pytest.approx(ce + weight * on * gain + attack_weight * mse, abs=1e-6)
    assert logs["gain"] == pytest.approx(gain, abs=1e-6)

    def f_loss(v):  # the classifier: CE + λ·gain, the inference model held fixed
        c, g, _ = np_terms(v, a, b, x, y, x_ref, y_ref)
        return c + weight * on * g

    def h_loss_a(v):  # the inference model: its MSE, the classifier's outputs held fixed
        return attack_weight * np_terms(w, v, b, x, y, x_ref, y_ref)[2]

    def h_loss_b(v):
        return attack_weight * np_terms(w, a, v, x, y, x_ref, y_ref)[2]

    np.testing.assert_allclose(model.model.layers[0].get_weights()[0],
                               w - lr * np_grad(f_loss, w), atol=1e-6)
    new_a, new_b = model.attack_model.layers[-1].get_weights()
    np.testing.assert_allclose(new_a, a - lr * np_grad(h_loss_a, a), atol=1e-6)
    np.testing.assert_allclose(new_b, b - lr * np_grad(h_loss_b, b), atol=1e-6)



def test_gain_is_the_pre_step_one_in_every_fresh_step(case, linear):
    """Regression: the gain once read h's weights a second time, detached
    (``stateless_call``); in TensorFlow's graph that read raced with the
    optimizer's in-place update, and about one step in four logged the gain
    of the updated kernel or bias. Eight fresh models, eight identical gains."""
    x, y, w, a, b, x_ref, y_ref = case
    ce, gain, mse = np_terms(w, a, b, x, y, x_ref, y_ref)
    logged = []
    for _ in range(8):
        model = AdvRegModel(linear(w), reference=(x_ref, y_ref), weight=0.5, attack_weight=4.0,
                            warmup_epochs=0, attack_model=tiny_attack(a, b), seed=0)
        model.compile(keras.optimizers.SGD(0.5), keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        logs = model.train_on_batch(x, y, return_dict=True)
        logged.append((logs["gain"], logs["loss"]))
    np.testing.assert_allclose(logged, [(gain, ce + 0.5 * gain + 4.0 * mse)] * 8, atol=1e-6)

def overfit(weight):
    """Members with random labels (pure memorization) vs reference rows."""
    rng = np.random.default_rng(0)
    n, d, k = 64, 40, 5
    x = rng.normal(size=(2 * n, d)).astype("float32")
    y = rng.integers(0, k, 2 * n)
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((d,)), keras.layers.Dense(64, activation="tanh"),
                            keras.layers.Dense(k)])
    model = AdvRegModel(net, reference=(x[n:], y[n:]), weight=weight, warmup_epochs=1, seed=0)
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.attack_accuracy((x[:n], y[:n]), (x[n:], y[n:]))
    model.fit(x[:n], y[:n], epochs=20, batch_size=32, verbose=0)
    return model, before, model.attack_accuracy((x[:n], y[:n]), (x[n:], y[n:])), (x, y, n)


@pytest.mark.slow
def test_inference_model_learns_and_the_defense_fights_it():
    """λ = 0: the inference model separates members from reference rows;
    λ = 10 (the authors' Location value) keeps it much closer to chance."""
    _, before, free, _ = overfit(0.0)
    _, _, defended, _ = overfit(10.0)
    assert abs(before - 0.5) < 0.1
    assert free > 0.7
    assert defended < free - 0.1


def test_keras_round_trip(tmp_path, case, linear):
    x, y, w, a, b, x_ref, y_ref = case
    model = AdvRegModel(linear(w), reference=(x_ref, y_ref), weight=2.0, attack_weight=0.5,
                        warmup_epochs=1, seed=3)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert (loaded.weight, loaded.attack_weight, loaded.warmup_epochs) == (2.0, 0.5, 1)
    assert float(loaded.penalty_on.numpy()) == 1.0
    for got, want in zip(loaded.attack_model.get_weights(), model.attack_model.get_weights()):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.reference is None
    loaded.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="reference"):
        loaded.fit(x, y, verbose=0)
    loaded.set_reference(x_ref, y_ref)
    loaded.fit(x, y, epochs=1, verbose=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"weight": -1.0}, "weight"), ({"weight": float("nan")}, "weight"),
    ({"attack_weight": 0.0}, "attack_weight"), ({"attack_weight": float("inf")}, "attack_weight"),
    ({"warmup_epochs": -1}, "warmup"), ({"warmup_epochs": 1.5}, "warmup"),
    ({"num_classes": 1}, "num_classes"),
])
def test_bad_hyper_parameters(case, kwargs, match, linear):
    with pytest.raises(ValueError, match=match):
        AdvRegModel(linear(case[2]), **kwargs)


def test_bad_reference(case, linear):
    x, y, w, *_ = case
    with pytest.raises(ValueError, match="class id 7"):
        AdvRegModel(linear(w), reference=(x, np.full(len(x), 7)))
    with pytest.raises(ValueError, match="as many inputs as labels"):
        AdvRegModel(linear(w), reference=(x, y[:3]))


JAX = """
import json, os, sys, tempfile
import numpy as np, keras
from keras_mi.defenses.advreg_model import AdvRegModel
""" + inspect.getsource(overfit) + """
assert keras.backend.backend() == "jax"
rng = np.random.default_rng(0)
x0 = rng.normal(size=(8, 4)).astype("float32"); y0 = rng.integers(0, 3, 8)
w0 = rng.normal(size=(4, 3)).astype("float32"); a0 = rng.normal(size=(6, 1)).astype("float32")
xr, yr = rng.normal(size=(1, 4)).astype("float32"), np.array([2])
net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, use_bias=False)])
net.layers[0].set_weights([w0])
p, l = keras.Input((3,)), keras.Input((3,))
att = keras.Model([p, l], keras.layers.Dense(1, activation="sigmoid")(
    keras.layers.Concatenate()([p, l])))
att.layers[-1].set_weights([a0, np.array([0.1], "float32")])
step = AdvRegModel(net, reference=(xr, yr), weight=3.0, warmup_epochs=0, attack_model=att)
step.compile(keras.optimizers.SGD(0.5),
             keras.losses.SparseCategoricalCrossentropy(from_logits=True))
loss = step.train_on_batch(x0, y0, return_dict=True)["loss"]
model, before, after, (x, y, n) = overfit(0.0)
path = os.path.join(tempfile.mkdtemp(), "m.keras")
model.save(path)
back = keras.saving.load_model(path)
print("RESULT " + json.dumps({
    "loss": loss, "w": net.layers[0].get_weights()[0].tolist(),
    "a": att.layers[-1].get_weights()[0].tolist(), "before": before, "after": after,
    "after_load": back.attack_accuracy((x[:n], y[:n]), (x[n:], y[n:]))}))
"""


@pytest.mark.slow
def test_runs_under_jax(case, np_grad, jax_child):
    x, y, w, a, b, x_ref, y_ref = case
    out = jax_child(JAX, timeout=600)
    ce, gain, mse = np_terms(w, a, b, x, y, x_ref, y_ref)
    assert out["loss"] == pytest.approx(ce + 3.0 * gain + mse, abs=1e-6)

    def f_loss(v):
        c, g, _ = np_terms(v, a, b, x, y, x_ref, y_ref)
        return c + 3.0 * g

    np.testing.assert_allclose(out["w"], w - 0.5 * np_grad(f_loss, w), atol=1e-6)
    np.testing.assert_allclose(
        out["a"], a - 0.5 * np_grad(lambda v: np_terms(w, v, b, x, y, x_ref, y_ref)[2], a),
        atol=1e-6)
    # The inference model learns under the JAX trainer too (its weights are
    # part of the trained state, not written by a callback).
    assert abs(out["before"] - 0.5) < 0.1 and out["after"] > 0.7
    assert out["after_load"] == pytest.approx(out["after"])
