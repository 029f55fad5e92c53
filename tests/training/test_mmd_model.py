"""MMDModel: loss composition, class matching, no gradient to the reference."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_mi.losses import mmd2
from keras_mi.losses.class_mmd import class_conditional_mmd2
from keras_mi.training import MMDModel

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def one_per_class(x, y, k=4):
    rows = [int(np.nonzero(y == c)[0][0]) for c in range(k)]
    return x[rows], y[rows]


@pytest.mark.parametrize("per_class", [True, False])
def test_loss_is_ce_plus_weight_times_mmd(make_net, toy, per_class):
    x, y = toy
    # One reference row per class: the class-matched batch is deterministic.
    xr, yr = one_per_class(x, y)
    model = MMDModel(make_net(), reference=(xr, yr), weight=2.5, seed=0, per_class=per_class)
    model.compile("sgd", SCCE)
    xb, yb = x[100:164], y[100:164]
    logits = model(xb)
    got = float(ops.convert_to_numpy(model.compute_loss(xb, yb, logits, training=True)))
    z = ops.convert_to_numpy(logits)
    zr = ops.convert_to_numpy(model(xr))[yb]
    p = softmax(z)
    ce = -np.mean(np.log(p[np.arange(len(yb)), yb]))
    pr = softmax(zr)
    if per_class:
        # Σ_c (n_c / n) MMD²(train rows of c, their reference rows).
        mmd = sum((yb == c).sum() / len(yb) * float(ops.convert_to_numpy(
            mmd2(p[yb == c].astype("float32"), pr[yb == c].astype("float32"))))
            for c in np.unique(yb))
    else:
        mmd = float(ops.convert_to_numpy(mmd2(p.astype("float32"), pr.astype("float32"))))
    assert mmd > 1e-4
    assert got == pytest.approx(ce + 2.5 * mmd, rel=1e-5)
    # Evaluation loss is the compiled loss only.
    ev = float(ops.convert_to_numpy(model.compute_loss(xb, yb, logits, training=False)))
    assert ev == pytest.approx(ce, rel=1e-5)


@pytest.mark.parametrize("kernel", ["gaussian", "imq"])
def test_log_odds_statistic_is_class_mmd_of_true_class_log_odds(make_net, toy, kernel):
    x, y = toy
    xr, yr = one_per_class(x, y)
    model = MMDModel(make_net(), reference=(xr, yr), weight=0.7, sigma=[1.0, 4.0], seed=0,
                     kernel=kernel, statistic="log_odds")
    model.compile("sgd", SCCE)
    xb, yb = x[100:164], y[100:164]
    logits = model(xb)
    got = float(ops.convert_to_numpy(model.compute_loss(xb, yb, logits, training=True)))
    p = softmax(ops.convert_to_numpy(logits))
    pr = softmax(ops.convert_to_numpy(model(xr))[yb])
    rows = np.arange(len(yb))
    phi = np.log(p[rows, yb] / (1 - p[rows, yb]))
    phi_r = np.log(pr[rows, yb] / (1 - pr[rows, yb]))

    def k(u, v):
        d2 = (u[:, None] - v[None, :]) ** 2
        if kernel == "gaussian":
            return sum(np.exp(-d2 / (2 * s * s)) for s in (1.0, 4.0))
        return sum(1 / np.sqrt(1 + d2 / (s * s)) for s in (1.0, 4.0))

    mmd = sum((yb == c).mean() * (k(phi[yb == c], phi[yb == c]).mean()
                                   + k(phi_r[yb == c], phi_r[yb == c]).mean()
                                   - 2 * k(phi[yb == c], phi_r[yb == c]).mean())
              for c in np.unique(yb))
    ce = -np.mean(np.log(p[rows, yb]))
    assert mmd > 1e-4
    assert got == pytest.approx(ce + 0.7 * mmd, rel=1e-5)


def test_reference_multiple_compares_each_class_with_more_reference_rows(make_net, toy):
    x, y = toy
    # Two reference rows per class; a multiple of 2 draws each row of a class
    # equally often, so each class's reference sample is exactly its two rows.
    rows = [int(i) for c in range(4) for i in np.nonzero(y == c)[0][:2]]
    xr, yr = x[rows], y[rows]
    model = MMDModel(make_net(), reference=(xr, yr), weight=1.3, sigma=0.5, seed=0,
                     reference_multiple=2)
    model.compile("sgd", SCCE)
    xb, yb = x[100:164], y[100:164]
    logits = model(xb)
    got = float(ops.convert_to_numpy(model.compute_loss(xb, yb, logits, training=True)))
    p = softmax(ops.convert_to_numpy(logits))
    pr = softmax(ops.convert_to_numpy(model(xr)))

    def k(u, v):
        return np.exp(-((u[:, None, :] - v[None, :, :]) ** 2).sum(-1) / (2 * 0.25))

    mmd = sum((yb == c).mean() * (k(p[yb == c], p[yb == c]).mean()
                                   + k(pr[yr == c], pr[yr == c]).mean()
                                   - 2 * k(p[yb == c], pr[yr == c]).mean())
              for c in np.unique(yb))
    ce = -np.mean(np.log(p[np.arange(len(yb)), yb]))
    assert mmd > 1e-4
    assert got == pytest.approx(ce + 1.3 * mmd, rel=1e-5)


@pytest.mark.parametrize("encoding", ["int", "int_col", "onehot", "soft"])
def test_reference_batch_is_class_matched(make_net, toy, encoding):
    x, y = toy
    model = MMDModel(make_net(), reference=(x[240:], y[240:]), seed=1)
    yb = y[:96]
    labels = {
        "int": yb,
        "int_col": yb[:, None],
        "onehot": np.eye(4, dtype="float32")[yb],
        "soft": 0.7 * np.eye(4, dtype="float32")[yb] + 0.1,
    }[encoding]
    idx = ops.convert_to_numpy(
        model._reference_indices(
            model._labels_of(ops.convert_to_tensor(labels), ops.zeros((96, 4)))
        )
    )
    ref_labels = ops.convert_to_numpy(model.reference.labels)
    np.testing.assert_array_equal(ref_labels[idx], yb)
    # Without replacement: no repeats within a class (each class has >= 40 rows).
    assert len(np.unique(idx)) == len(idx)
    # Fresh draws every step.
    idx2 = ops.convert_to_numpy(model._reference_indices(ops.convert_to_tensor(yb.astype("int32"))))
    assert not np.array_equal(idx, idx2)


def test_replace_true_is_class_matched_and_wraps_when_short(make_net, toy):
    x, y = toy
    xr, yr = one_per_class(x, y)
    for replace in (True, False):
        model = MMDModel(make_net(), reference=(xr, yr), replace=replace, seed=2)
        idx = ops.convert_to_numpy(
            model._reference_indices(ops.convert_to_tensor(y[:50].astype("int32")))
        )
        np.testing.assert_array_equal(ops.convert_to_numpy(model.reference.labels)[idx], y[:50])


@pytest.mark.parametrize("per_class", [False, True])
def test_reference_outputs_get_no_gradient(make_net, toy, per_class):
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("uses tf.GradientTape")
    x, y = toy
    xr, yr = one_per_class(x, y)
    model = MMDModel(make_net(), reference=(xr, yr), seed=0, per_class=per_class)
    stat = (lambda a, b: class_conditional_mmd2(a, b, yb)) if per_class else mmd2
    xb, yb = x[:32], y[:32]
    weights = model.trainable_variables
    with tf.GradientTape() as tape:
        got = model.reference_mmd2(yb, model(xb, training=True))
    g_model = tape.gradient(got, weights)
    # Same MMD with the reference softmax as a constant: the gradients agree.
    const_ref = tf.constant(softmax(ops.convert_to_numpy(model(xr))[yb]), tf.float32)
    with tf.GradientTape() as tape:
        want = stat(tf.nn.softmax(model(xb, training=True)), const_ref)
    g_const = tape.gradient(want, weights)
    # And they differ from the gradient with the reference path left open.
    with tf.GradientTape() as tape:
        both = stat(tf.nn.softmax(model(xb)), tf.nn.softmax(model(tf.gather(xr, yb))))
    g_open = tape.gradient(both, weights)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    for a, b in zip(g_model, g_const):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-7)
    assert any(not np.allclose(a.numpy(), b.numpy(), rtol=1e-3) for a, b in zip(g_open, g_const))
    # The reference inputs themselves receive no gradient.
    xr_t = tf.constant(xr)
    model.set_reference(xr, yr)
    with tf.GradientTape() as tape:
        tape.watch(xr_t)
        out = mmd2(
            tf.nn.softmax(model(xb)), tf.stop_gradient(tf.nn.softmax(model(tf.gather(xr_t, yb))))
        )
    assert tape.gradient(out, xr_t) is None


def test_fit_summed_arrays_and_dataset_log_mmd_and_gap(make_net, toy):
    tf = pytest.importorskip("tensorflow")
    x, y = toy
    model = MMDModel(make_net(), reference=(x[320:], y[320:]), weight=3.0, seed=0)
    model.compile("adam", SCCE, metrics=["accuracy"])
    hist = model.fit(
        x[:320], y[:320], batch_size=32, epochs=2, verbose=0, validation_data=(x[320:], y[320:])
    )
    h = hist.history
    assert {"mmd", "val_mmd", "gap", "accuracy", "val_accuracy"} <= set(h)
    assert all(v > 0 for v in h["mmd"])
    np.testing.assert_allclose(
        h["gap"], np.array(h["accuracy"]) - np.array(h["val_accuracy"]), atol=1e-9
    )
    onehot = np.eye(4, dtype="float32")[y[:320]]
    ds = tf.data.Dataset.from_tensor_slices((x[:320], onehot)).batch(32)
    model.compile(
        "adam", keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    h2 = model.fit(ds, epochs=1, verbose=0).history
    assert h2["mmd"][0] > 0 and np.isfinite(h2["loss"][0])


def test_mmd_steps_pull_train_outputs_towards_reference_outputs(make_net, toy):
    # The reference side is a constant in each step, so what the MMD term
    # minimizes is the MMD to the reference outputs as they were: measure
    # that against a frozen copy of them.
    x, y = toy
    xr, yr = x[240:], y[240:]
    xb, yb = x[:64], y[:64]
    after = {}
    for weight in (0.0, 100.0):
        model = MMDModel(make_net(seed=3), reference=(xr, yr), weight=weight, seed=0)
        model.compile(keras.optimizers.SGD(0.001), SCCE)
        frozen = ops.softmax(model(xr))
        before = float(ops.convert_to_numpy(mmd2(ops.softmax(model(xb)), frozen)))
        for _ in range(5):
            model.train_on_batch(xb, yb)
        after[weight] = float(ops.convert_to_numpy(mmd2(ops.softmax(model(xb)), frozen)))
    assert after[100.0] < 0.85 * before
    assert after[100.0] < 0.85 * after[0.0]


def test_paper_schedule_passes_and_last_epoch(make_net, toy):
    x, y = toy
    model = MMDModel(
        make_net(), reference=(x[320:], y[320:]), schedule="paper", gap_threshold=-1.0, seed=0
    )
    model.compile("adam", SCCE, metrics=["accuracy"])
    h = model.fit(x[:320], y[:320], batch_size=64, epochs=3, verbose=0).history
    assert h["mmd_pass"] == [1.0, 1.0, 0.0]
    assert np.isfinite(h["mmd_pass_mmd"][:2]).all() and np.isnan(h["mmd_pass_mmd"][2])
    assert len(h["gap"]) == 3
    # The MMD pass moves the weights: same run with no pass ends elsewhere.
    never = MMDModel(
        make_net(), reference=(x[320:], y[320:]), schedule="paper", gap_threshold=1.0, seed=0
    )
    never.compile("adam", SCCE, metrics=["accuracy"])
    h2 = never.fit(x[:320], y[:320], batch_size=64, epochs=3, verbose=0).history
    assert h2["mmd_pass"] == [0.0, 0.0, 0.0]
    assert not np.allclose(model.predict(x[:20], verbose=0), never.predict(x[:20], verbose=0))


def test_paper_schedule_needs_accuracy_metric(make_net, toy):
    x, y = toy
    model = MMDModel(make_net(), reference=(x[320:], y[320:]), schedule="paper")
    model.compile("adam", SCCE)
    with pytest.raises(ValueError, match="accuracy"):
        model.fit(x[:320], y[:320], epochs=1, verbose=0)


def test_without_replacement_draws_are_uniform_and_varied(make_net, toy):
    x, y = toy
    rows = np.nonzero(y == 1)[0][:40]
    xr = np.concatenate([x[rows], x[y != 1][:30]])
    yr = np.concatenate([y[rows], y[y != 1][:30]])
    model = MMDModel(make_net(), reference=(xr, yr), seed=5)
    labels = ops.convert_to_tensor(np.ones(10, "int32"))
    draws = np.stack([ops.convert_to_numpy(model._reference_indices(labels)) for _ in range(300)])
    assert all(len(set(d)) == 10 for d in draws)  # distinct within each batch
    hits = np.bincount(draws.ravel(), minlength=len(yr))
    class_rows = np.nonzero(ops.convert_to_numpy(model.reference.labels) == 1)[0]
    assert hits[class_rows].sum() == draws.size
    assert 40 < hits[class_rows].min() and hits[class_rows].max() < 120  # expected 75 each
    assert len({tuple(d[:2]) for d in draws}) > 100  # not a few fixed windows


def test_weight_zero_ends_with_the_weights_of_a_plain_fit(make_net, toy):
    """λ = 0 is plain training: same optimizer, data order and steps give the same weights."""
    x, y = toy
    plain, wrapped_net = make_net(seed=3), make_net(seed=3)
    plain.compile(keras.optimizers.SGD(0.1, momentum=0.9), SCCE)
    plain.fit(x, y, batch_size=48, epochs=3, shuffle=False, verbose=0)
    wrapped = MMDModel(wrapped_net, reference=(x[:120], y[:120]), weight=0.0, sigma=0.1, seed=0)
    wrapped.compile(keras.optimizers.SGD(0.1, momentum=0.9), SCCE)
    wrapped.fit(x, y, batch_size=48, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(plain.get_weights(), wrapped_net.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # And λ > 0 does move them (the test could fail).
    moved_net = make_net(seed=3)
    moved = MMDModel(moved_net, reference=(x[:120], y[:120]), weight=1.0, sigma=0.1, seed=0)
    moved.compile(keras.optimizers.SGD(0.1, momentum=0.9), SCCE)
    moved.fit(x, y, batch_size=48, epochs=3, shuffle=False, verbose=0)
    assert not all(np.allclose(a, b, atol=1e-5)
                   for a, b in zip(plain.get_weights(), moved_net.get_weights()))
