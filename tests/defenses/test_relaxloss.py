"""RelaxLossModel: its loss and step against NumPy, saving, JAX, bad input."""

import keras
import numpy as np
import pytest

from keras_mi.defenses.relaxloss_model import RelaxLossModel, relaxloss_terms


# ----------------------------------------------------------- NumPy reference
def np_relaxloss(w, x, y, k, alpha, upper, variant, epoch, training=True):
    """The authors' per-batch loss for logits ``x @ w`` (float64, independent)."""
    z = x.astype(np.float64) @ w.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    rows = np.arange(len(y))
    ce_each = -logp[rows, y]
    ce = ce_each.mean()
    if not training:
        return ce
    if epoch % 2 == 0:
        return abs(ce - alpha)
    if ce > alpha:
        return ce
    conf = np.minimum(p[rows, y], upper)
    soft = np.repeat(((1 - conf) / (k - 1))[:, None], k, axis=1)
    soft[rows, y] = conf
    soft_ce = -(soft * logp).sum(axis=1)
    if variant == "image":
        correct = (np.argmax(z, axis=1) == y).astype(np.float64)
        return np.mean((1 - correct) * soft_ce - ce_each)
    return soft_ce.mean()


@pytest.fixture
def batch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 5)).astype("float32")
    y = rng.integers(0, 4, 12)
    w = (0.7 * rng.normal(size=(5, 4))).astype("float32")
    return x, y, w


@pytest.mark.parametrize("variant", ["tabular", "image"])
def test_terms_match_numpy(batch, variant):
    x, y, w = batch
    k = w.shape[1]
    logits = x @ w
    ce, relaxed, flat = (float(t) for t in relaxloss_terms(logits, np.eye(k)[y], 5.0, 0.4, variant))
    assert ce == pytest.approx(np_relaxloss(w, x, y, k, 5.0, 0.4, variant, 0, training=False),
                               abs=1e-6)
    assert relaxed == pytest.approx(np_relaxloss(w, x, y, k, 5.0, 0.4, variant, 0), abs=1e-6)
    # epoch 1 with CE < α = 5: the flattening branch.
    assert flat == pytest.approx(np_relaxloss(w, x, y, k, 5.0, 0.4, variant, 1), abs=1e-6)


# alpha=5 > CE (below α), alpha=0.1 < CE (above α); even and odd epochs.
@pytest.mark.parametrize("variant", ["tabular", "image"])
@pytest.mark.parametrize("alpha", [5.0, 0.1])
@pytest.mark.parametrize("epoch", [0, 1])
def test_one_sgd_step_matches_numpy(batch, variant, alpha, epoch, np_grad, linear):
    x, y, w = batch
    k, lr = w.shape[1], 0.1
    model = RelaxLossModel(linear(w), alpha=alpha, upper=0.4, variant=variant)
    model.compile(keras.optimizers.SGD(lr))
    model.set_epoch(epoch)
    logs = model.train_on_batch(x, y, return_dict=True)

    def fun(v):
        return np_relaxloss(v, x, y, k, alpha, 0.4, variant, epoch)

    assert logs["loss"] == pytest.approx(fun(w), abs=1e-6)
    expected = w - lr * np_grad(fun, w)
    np.testing.assert_allclose(model.model.layers[0].get_weights()[0], expected, atol=1e-6)


def test_flattening_gradient_flows_through_the_soft_targets(batch, np_grad, linear):
    """The authors do not detach the targets; a detached version steps elsewhere."""
    x, y, w = batch
    k = w.shape[1]
    model = RelaxLossModel(linear(w), alpha=5.0, upper=0.9)
    model.compile(keras.optimizers.SGD(1.0))
    model.set_epoch(1)
    model.train_on_batch(x, y)
    got = w - model.model.layers[0].get_weights()[0]

    def detached(v):
        z = x.astype(np.float64) @ v
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        p0 = np.exp(x @ w - np.log(np.exp(x @ w).sum(axis=1, keepdims=True)))
        rows = np.arange(len(y))
        conf = np.minimum(p0[rows, y], 0.9)
        soft = np.repeat(((1 - conf) / (k - 1))[:, None], k, axis=1)
        soft[rows, y] = conf
        return -(soft * logp).sum(axis=1).mean()

    assert np.abs(got - np_grad(detached, w)).max() > 1e-3


def test_ascent_below_alpha_raises_the_loss(batch, linear):
    x, y, w = batch
    model = RelaxLossModel(linear(w), alpha=5.0, upper=0.4)
    model.compile(keras.optimizers.SGD(0.5))
    before = model.evaluate(x, y, verbose=0, return_dict=True)["ce"]
    model.train_on_batch(x, y)  # epoch 0, CE < α: gradient ascent on CE
    after = model.evaluate(x, y, verbose=0, return_dict=True)["ce"]
    assert after > before + 1e-3


def test_fit_alternates_by_epoch(batch, linear):
    """Full-batch fit: each epoch's logged loss is the NumPy loss of its parity."""
    x, y, w = batch
    k = w.shape[1]
    model = RelaxLossModel(linear(w), alpha=1.2, upper=0.4)
    model.compile(keras.optimizers.SGD(0.5))
    seen = []
    keep = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: seen.append(model.model.layers[0].get_weights()[0]))
    hist = model.fit(x, y, batch_size=len(x), epochs=4, shuffle=False, verbose=0,
                     callbacks=[keep]).history
    expected = [np_relaxloss(v, x, y, k, 1.2, 0.4, "tabular", e) for e, v in enumerate(seen)]
    np.testing.assert_allclose(hist["loss"], expected, atol=1e-6)
    assert int(model.epoch.numpy()) == 3


def test_keras_round_trip(tmp_path, batch, linear):
    x, y, w = batch
    model = RelaxLossModel(linear(w), alpha=0.5, upper=0.6, variant="image", name="rl")
    model.compile("sgd")
    model.fit(x, y, epochs=2, batch_size=6, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, RelaxLossModel)
    assert (loaded.alpha, loaded.upper, loaded.variant) == (0.5, 0.6, "image")
    assert int(loaded.epoch.numpy()) == 1
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 0.0}, "alpha"), ({"alpha": -1.0}, "alpha"), ({"alpha": float("nan")}, "alpha"),
    ({"alpha": float("inf")}, "alpha"), ({"upper": 0.0}, "upper"), ({"upper": 1.5}, "upper"),
    ({"upper": 0.25}, "1/K"), ({"variant": "cifar"}, "variant"),
])
def test_bad_hyper_parameters(batch, kwargs, match, linear):
    _, _, w = batch  # K = 4, so upper must exceed 0.25
    with pytest.raises(ValueError, match=match):
        RelaxLossModel(linear(w), **kwargs)


def test_sample_weights_refused(batch, linear):
    x, y, w = batch
    model = RelaxLossModel(linear(w))
    model.compile("sgd")
    with pytest.raises(ValueError, match="sample"):
        model.fit(x, y, sample_weight=np.ones(len(y)), verbose=0)


JAX = """
import json, os, sys, tempfile
import numpy as np
import keras
assert keras.backend.backend() == "jax"
from keras_mi.defenses.relaxloss_model import RelaxLossModel
tf_on_import = "tensorflow" in sys.modules
rng = np.random.default_rng(1)
x = rng.normal(size=(12, 5)).astype("float32"); y = rng.integers(0, 4, 12)
w = (0.7 * rng.normal(size=(5, 4))).astype("float32")
net = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, use_bias=False)])
net.layers[0].set_weights([w])
model = RelaxLossModel(net, alpha=1.2, upper=0.4)
model.compile(keras.optimizers.SGD(0.5))
seen = []
keep = keras.callbacks.LambdaCallback(
    on_epoch_begin=lambda e, logs: seen.append(net.layers[0].get_weights()[0].tolist()))
hist = model.fit(x, y, batch_size=12, epochs=4, shuffle=False, verbose=0, callbacks=[keep]).history
path = os.path.join(tempfile.mkdtemp(), "m.keras")
model.save(path)
loaded = keras.saving.load_model(path)
same = bool(np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0)))
print("RESULT " + json.dumps({"loss": hist["loss"], "seen": seen, "epoch": int(model.epoch.numpy()),
                              "same": same, "tf": tf_on_import}))
"""


@pytest.mark.slow
def test_runs_under_jax(batch, jax_child):
    x, y, w = batch
    out = jax_child(JAX)
    expected = [np_relaxloss(np.array(v), x, y, 4, 1.2, 0.4, "tabular", e)
                for e, v in enumerate(out["seen"])]
    np.testing.assert_allclose(out["loss"], expected, atol=1e-6)
    assert out["epoch"] == 3 and out["same"] and not out["tf"]
