"""HAMP: soft labels, loss and step vs NumPy; the output modification; saving; JAX."""

import keras
import numpy as np
import pytest

from keras_mi.defenses.hamp_model import HAMPModel, hamp_loss, hamp_soft_label
from keras_mi.defenses.hamp_outputs import HAMPOutputs, rank_replace


# ----------------------------------------------------------- NumPy references
def np_get_top1(num_classes, threshold, increment=0.01):
    """The authors' ``get_top1`` loop (float accumulation, as they wrote it)."""
    preds = np.zeros(num_classes)
    preds[1] = 1.0
    while True:
        preds[1] -= increment
        preds[:1] += increment / (num_classes - 1)
        preds[2:] += increment / (num_classes - 1)
        if np.sum(-preds * np.log(preds)) >= threshold:
            return preds[1], preds[2]


def np_hamp_loss(w, x, y, k, top1, rest, alpha):
    z = x.astype(np.float64) @ w.astype(np.float64)
    logp = z - z.max(axis=1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    t = np.full((len(y), k), rest)
    t[np.arange(len(y)), y] = top1
    kl = np.mean(t * (np.log(t) - logp))  # torch kl_div, reduction="mean"
    entropy = np.mean(-(np.exp(logp) * logp).sum(axis=1))
    return kl - alpha * entropy


def np_alter_output(output, reference):
    """The authors' ``alter_output`` re-ordering loop."""
    out_sorted = np.sort(output, axis=1)
    ref_sorted = np.sort(reference, axis=1)
    new = np.zeros(output.shape)
    for i in range(output.shape[0]):
        for j in range(output.shape[1]):
            new[i][np.where(output[i] == out_sorted[i][j])] = ref_sorted[i][j]
    return new


@pytest.fixture
def batch():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(10, 6)).astype("float32")
    y = rng.integers(0, 5, 10)
    w = (0.8 * rng.normal(size=(6, 5))).astype("float32")
    return x, y, w


# ------------------------------------------------------------------ training
@pytest.mark.parametrize("k, gamma", [(30, 0.5), (10, 0.95), (100, 0.5), (5, 0.3)])
def test_soft_label_matches_the_authors_loop(k, gamma):
    top1, rest = hamp_soft_label(k, gamma)
    ref_top1, ref_rest = np_get_top1(k, gamma * np.log(k))
    assert top1 == pytest.approx(ref_top1, abs=1e-6)
    assert rest == pytest.approx(ref_rest, abs=1e-6)
    p = np.array([top1] + [rest] * (k - 1))
    assert -(p * np.log(p)).sum() >= gamma * np.log(k)


def test_loss_matches_numpy(batch):
    x, y, w = batch
    top1, rest = hamp_soft_label(5, 0.5)
    t = np.full((len(y), 5), rest)
    t[np.arange(len(y)), y] = top1
    got = float(hamp_loss(x @ w, t, 0.3))
    assert got == pytest.approx(np_hamp_loss(w, x, y, 5, top1, rest, 0.3), abs=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.001, 0.5])
def test_one_sgd_step_matches_numpy(batch, alpha, np_grad, linear):
    x, y, w = batch
    model = HAMPModel(linear(w), gamma=0.5, alpha=alpha)
    model.compile(keras.optimizers.SGD(1.0))
    logs = model.train_on_batch(x, y, return_dict=True)
    top1, rest = hamp_soft_label(5, 0.5)

    def fun(v):
        return np_hamp_loss(v, x, y, 5, top1, rest, alpha)

    assert logs["loss"] == pytest.approx(fun(w), abs=1e-6)
    np.testing.assert_allclose(model.model.layers[0].get_weights()[0], w - np_grad(fun, w),
                               atol=1e-6)


def test_training_lowers_confidence(batch, linear):
    """Fitted to HAMP's labels, the top-1 probability settles near ``top1``, not 1."""
    _, y, _ = batch
    x = np.random.default_rng(5).normal(size=(len(y), 20)).astype("float32")
    model = HAMPModel(linear(np.zeros((20, 5), "float32")), gamma=0.5, alpha=0.0)
    model.compile(keras.optimizers.Adam(0.05))
    model.fit(x, y, epochs=300, batch_size=10, verbose=0)
    p = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(x, verbose=0)))
    top1, _ = hamp_soft_label(5, 0.5)
    np.testing.assert_allclose(p[np.arange(len(y)), y], top1, atol=0.05)


# ------------------------------------------------------ output modification
def test_rank_replace_matches_the_authors_loop():
    rng = np.random.default_rng(3)
    out, ref = rng.normal(size=(7, 6)), rng.normal(size=(7, 6))
    got = keras.ops.convert_to_numpy(rank_replace(out.astype("float32"), ref.astype("float32")))
    np.testing.assert_allclose(got, np_alter_output(out, ref), atol=1e-6)


def test_outputs_are_the_random_inputs_logits_in_the_queries_ranking(batch, linear):
    x, _, w = batch
    net = linear(w)
    defended = HAMPOutputs(net, sampler="uniform", low=-1.0, high=1.0, seed=0)
    r = np.random.default_rng(4).uniform(-1, 1, size=x.shape).astype("float32")
    defended.random_inputs = lambda inputs: keras.ops.convert_to_tensor(r)
    got = defended.predict(x, verbose=0, batch_size=len(x))
    np.testing.assert_allclose(got, np_alter_output(x @ w, r @ w), atol=1e-5)
    # training=True: the plain logits.
    plain = keras.ops.convert_to_numpy(defended(x, training=True))
    np.testing.assert_allclose(plain, x @ w, atol=1e-5)


def test_predict_keeps_the_ranking_and_hides_the_confidence(batch, linear):
    x, _, w = batch
    net = linear(w)  # no bias: an all-zero random input would tie its logits
    defended = HAMPOutputs(net, sampler="uniform", seed=1)
    got = defended.predict(x, verbose=0)
    plain = x @ w
    np.testing.assert_array_equal(np.argsort(got, axis=1), np.argsort(plain, axis=1))
    assert np.abs(got - plain).max() > 0.1


def test_samplers_draw_from_their_support():
    net = keras.Sequential([keras.Input((2, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    x = np.zeros((4000, 2, 3), "float32")
    r = keras.ops.convert_to_numpy(HAMPOutputs(net, sampler="bernoulli", seed=0).random_inputs(
        keras.ops.convert_to_tensor(x)))
    assert set(np.unique(r)) == {0.0, 1.0} and abs(r.mean() - 0.5) < 0.02
    low, high = [-2.0, 0.0, 1.0], [-1.0, 0.5, 3.0]  # per channel
    r = keras.ops.convert_to_numpy(HAMPOutputs(net, low=low, high=high, seed=0).random_inputs(
        keras.ops.convert_to_tensor(x)))
    assert np.all(r >= np.array(low)) and np.all(r <= np.array(high))
    np.testing.assert_allclose(r.mean(axis=(0, 1)), (np.array(low) + high) / 2, atol=0.05)


# ------------------------------------------------------------------- saving
def test_keras_round_trips(tmp_path, batch, linear):
    x, y, w = batch
    model = HAMPModel(linear(w), gamma=0.7, alpha=0.01)
    model.compile("sgd")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "train.keras")
    loaded = keras.saving.load_model(tmp_path / "train.keras")
    assert (loaded.gamma, loaded.alpha, loaded.num_classes) == (0.7, 0.01, 5)
    assert (loaded.top1, loaded.rest) == (model.top1, model.rest)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    defended = HAMPOutputs(model.model, low=[-1.0] * 6, high=2.0, seed=5)
    defended.save(tmp_path / "outputs.keras")
    back = keras.saving.load_model(tmp_path / "outputs.keras")
    assert isinstance(back, HAMPOutputs) and back.low == [-1.0] * 6 and back.sampler == "uniform"
    # Same seed state: the same random inputs, so the same defended outputs.
    np.testing.assert_allclose(back.predict(x, verbose=0), defended.predict(x, verbose=0),
                               atol=1e-6)


# -------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, match", [
    ({"gamma": 0.0}, "gamma"), ({"gamma": 1.0}, "gamma"), ({"gamma": -0.5}, "gamma"),
    ({"alpha": -0.1}, "alpha"), ({"alpha": float("nan")}, "alpha"),
    ({"increment": 0.0}, "increment"), ({"increment": 0.5}, "increment"),
])
def test_bad_training_hyper_parameters(batch, kwargs, match, linear):
    with pytest.raises(ValueError, match=match):
        HAMPModel(linear(batch[2]), **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"sampler": "gauss"}, "sampler"), ({"low": 1.0, "high": 1.0}, "high"),
    ({"low": [0.0, 0.0], "high": [1.0, 1.0, 1.0]}, "broadcast"), ({"high": float("inf")}, "finite"),
])
def test_bad_output_hyper_parameters(batch, kwargs, match, linear):
    with pytest.raises(ValueError, match=match):
        HAMPOutputs(linear(batch[2]), **kwargs)


JAX = """
import json, os, sys, tempfile
import numpy as np
import keras
assert keras.backend.backend() == "jax"
from keras_mi.defenses.hamp_model import HAMPModel
from keras_mi.defenses.hamp_outputs import HAMPOutputs
tf_on_import = "tensorflow" in sys.modules
rng = np.random.default_rng(2)
x = rng.normal(size=(10, 6)).astype("float32"); y = rng.integers(0, 5, 10)
w = (0.8 * rng.normal(size=(6, 5))).astype("float32")
net = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, use_bias=False)])
net.layers[0].set_weights([w])
model = HAMPModel(net, gamma=0.5, alpha=0.001)
model.compile(keras.optimizers.SGD(1.0))
loss = float(model.train_on_batch(x, y))
after = net.layers[0].get_weights()[0].tolist()
x = rng.normal(size=(10, 16)).astype("float32")
net = keras.Sequential([keras.Input((16,)), keras.layers.Dense(
    5, bias_initializer=keras.initializers.RandomNormal(seed=0))])
defended = HAMPOutputs(net, sampler="bernoulli", seed=0)
path = os.path.join(tempfile.mkdtemp(), "m.keras")
defended.save(path)
back = keras.saving.load_model(path)
a = defended.predict(np.tile(x, (4, 1)), batch_size=10, verbose=0)
b = back.predict(np.tile(x, (4, 1)), batch_size=10, verbose=0)
plain = net.predict(x, verbose=0)
print("RESULT " + json.dumps({
    "loss": loss, "after": after, "same_after_load": bool(np.allclose(a, b, atol=1e-6)),
    "ranking": bool((np.argsort(a, 1) == np.argsort(np.tile(plain, (4, 1)), 1)).all()),
    "batches_differ": bool(np.abs(a[:10] - a[10:20]).max() > 1e-4), "tf": tf_on_import}))
"""


@pytest.mark.slow
def test_runs_under_jax(batch, np_grad, jax_child):
    x, y, w = batch
    out = jax_child(JAX)
    top1, rest = hamp_soft_label(5, 0.5)

    def fun(v):
        return np_hamp_loss(v, x, y, 5, top1, rest, 0.001)

    assert out["loss"] == pytest.approx(fun(w), abs=1e-6)
    np.testing.assert_allclose(out["after"], w - np_grad(fun, w), atol=1e-6)
    assert out["same_after_load"] and out["ranking"] and out["batches_differ"] and not out["tf"]
