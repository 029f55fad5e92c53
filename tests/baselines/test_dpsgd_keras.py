"""DP-SGD on Keras 3 / JAX (keras_mi.baselines.dpsgd_keras) against NumPy and TF-Privacy.

The test process runs Keras on TensorFlow, so everything that trains runs in
``KERAS_BACKEND=jax`` subprocesses (one for the fast checks, one per side of
the TF-Privacy comparison); NumPy references are computed here.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

from keras_mi.baselines.dpsgd_keras import poisson_batch_cap, sample_batches

pytest.importorskip("jax")
pytest.importorskip("dp_accounting")


def _run_jax(code, cache_dir=None):
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
           "JAX_PLATFORMS": "cpu"}
    if cache_dir is not None:  # repeated identical steps compile once (test speed only)
        env.update(JAX_COMPILATION_CACHE_DIR=str(cache_dir),
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, err[-4000:]
    return json.loads(lines[-1][len("RESULT "):])


# ---- NumPy references -------------------------------------------------------


def _linear_data():
    rng = np.random.default_rng(0)
    x = (2.0 * rng.normal(size=(20, 5))).astype("float32")
    y = rng.integers(0, 4, 20)
    w = (0.5 * rng.normal(size=(5, 4))).astype("float32")
    b = (0.1 * rng.normal(size=4)).astype("float32")
    mask = np.r_[np.ones(17), np.zeros(3)].astype("float32")
    return x, y, w, b, mask


def _numpy_clipped_sum(x, y, w, b, mask, clip):
    """Per-example softmax cross-entropy gradients of x @ w + b, clipped, summed."""
    x, w, b = (np.asarray(a, np.float64) for a in (x, w, b))
    logits = x @ w + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    err = p - np.eye(w.shape[1])[y]                        # dL/dlogits per example
    gw = x[:, :, None] * err[:, None, :]                   # (n, d, k)
    norms = np.sqrt((gw ** 2).sum(axis=(1, 2)) + (err ** 2).sum(axis=1))
    factor = mask * np.minimum(1.0, clip / norms)
    loss = -np.log(p[np.arange(len(y)), y])
    return ((factor[:, None, None] * gw).sum(0), (factor[:, None] * err).sum(0),
            float((mask * loss).sum()), int((mask * (norms > clip)).sum()), norms)


# ---- one JAX subprocess for the fast checks ----------------------------------

FAST_CHECKS = r"""
import json, sys
import numpy as np
import jax, keras
assert keras.backend.backend() == "jax"
from keras_mi.baselines.dpsgd_keras import (make_clipped_gradient_sum, sample_batches,
                                            train_dpsgd_keras)
out = {}

def linear(d, k, weights=None):
    m = keras.Sequential([keras.Input((d,)), keras.layers.Dense(k)])
    if weights is not None:
        m.set_weights(weights)
    return m

# 1. The clipped sum of one padded, masked batch, both per-example methods.
rng = np.random.default_rng(0)
x = (2.0 * rng.normal(size=(20, 5))).astype("float32"); y = rng.integers(0, 4, 20)
w = (0.5 * rng.normal(size=(5, 4))).astype("float32")
b = (0.1 * rng.normal(size=4)).astype("float32")
mask = np.r_[np.ones(17), np.zeros(3)].astype("float32")
model = linear(5, 4, [w, b])
for method in ("vmap", "dense"):
    fn, used = make_clipped_gradient_sum(model, 3.0, method)
    (gw, gb), loss, clipped = jax.jit(fn)([v.value for v in model.trainable_variables], [],
                                          x, y.astype("int32"), mask)
    out["clipped_" + method] = [used, np.asarray(gw).tolist(), np.asarray(gb).tolist(),
                                float(loss), float(clipped)]

# 2. Zero noise, clip above every gradient, shuffled batches == plain Keras SGD,
#    after each of 3 steps (one step per epoch: n=48, batch 32), with momentum.
rng = np.random.default_rng(1)
x2 = rng.normal(size=(48, 6)).astype("float32"); y2 = rng.integers(0, 3, 48)
def mlp():  # seeded initializers (keras.utils.set_random_seed would import TensorFlow)
    init = keras.initializers.GlorotUniform
    return keras.Sequential([keras.Input((6,)),
                             keras.layers.Dense(8, activation="tanh", kernel_initializer=init(5)),
                             keras.layers.Dense(3, kernel_initializer=init(6))])
init = mlp().get_weights()
ref = mlp(); ref.set_weights(init)
ref.compile(optimizer=keras.optimizers.SGD(0.3, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
batches = sample_batches(48, 32, 1, 3, "shuffle", np.random.default_rng(7))
reference = []
for idx in batches:
    ref.train_on_batch(x2[idx], y2[idx])
    reference.append(ref.get_weights())
diffs = {}
for method, lengths in (("dense", (1, 2, 3)), ("vmap", (3,))):
    diffs[method] = []
    for steps in lengths:
        m = mlp(); m.set_weights(init)
        r = train_dpsgd_keras(m, x2, y2, noise_multiplier=0.0, l2_norm_clip=1e6, batch_size=32,
                              epochs=steps, learning_rate=0.3, momentum=0.9, sampling="shuffle",
                              delta=1e-3, seed=7, per_example=method)
        assert r.per_example_method == method and r.steps == steps
        assert r.history["clipped_fraction"] == [0.0] * steps
        diffs[method].append(max(float(np.max(np.abs(a - c)))
                                 for a, c in zip(m.get_weights(), reference[steps - 1])))
out["sgd_diffs"] = diffs
out["sgd_moved"] = max(float(np.max(np.abs(a - c))) for a, c in zip(init, reference[-1]))

# 3. Poisson sampling, zero noise, clipping active: 4 steps from a known start.
x3, y3 = x2[:40, :5], y2[:40] % 4
m = linear(5, 4, [w, b])
r = train_dpsgd_keras(m, x3, y3, noise_multiplier=0.0, l2_norm_clip=0.5, batch_size=10,
                      epochs=1, learning_rate=0.5, sampling="poisson", delta=1e-3, seed=11)
out["poisson_steps"] = [np.asarray(v).tolist() for v in m.get_weights()]
out["poisson_sizes"] = r.batch_sizes.tolist()
out["poisson_cap"] = r.padded_batch_size
# The same run with a cap below most draws: overflowing steps go in chunks.
m = linear(5, 4, [w, b])
r = train_dpsgd_keras(m, x3, y3, noise_multiplier=0.0, l2_norm_clip=0.5, batch_size=10,
                      epochs=1, learning_rate=0.5, sampling="poisson", delta=1e-3, seed=11,
                      overflow_probability=0.9)
out["overflow_steps"] = [np.asarray(v).tolist() for v in m.get_weights()]
out["overflow"] = [r.padded_batch_size, r.overflow_steps]

# 4. Noise: q = 1 (every example in the one batch), one step of lr 1.
rng = np.random.default_rng(2)
# A 300 x 256 kernel (own RNG draw, >= 65,536 entries) and a bias (the flat draw).
x4 = rng.normal(size=(64, 300)).astype("float32"); y4 = rng.integers(0, 256, 64)
start = [(0.01 * rng.normal(size=(300, 256))).astype("float32"), np.zeros(256, "float32")]
m = linear(300, 256, start)
fn, _ = make_clipped_gradient_sum(m, 2.0, "dense")
(sw, sb), _, _ = jax.jit(fn)([v.value for v in m.trainable_variables], [], x4, y4.astype("int32"),
                    np.ones(64, "float32"))
r = train_dpsgd_keras(m, x4, y4, noise_multiplier=0.5, l2_norm_clip=2.0, batch_size=64,
                      epochs=1, learning_rate=1.0, delta=1e-3, seed=3)
after = m.get_weights()
out["noise_kernel"] = (-(after[0] - start[0]) * 64 - np.asarray(sw)).ravel()[::10].tolist()
out["noise_bias"] = (-(after[1] - start[1]) * 64 - np.asarray(sb)).ravel().tolist()
out["noise_eps"] = r.epsilon

# 5. Bad input: the error, and the weights untouched.
def attempt(model, x, y, **kw):
    before = [w.copy() for w in model.get_weights()]
    args = dict(noise_multiplier=1.0, batch_size=8, epochs=1, delta=1e-3)
    args.update(kw)
    try:
        train_dpsgd_keras(model, x, y, **args)
        msg = "NO ERROR"
    except (ValueError, RuntimeError) as exc:
        msg = f"{type(exc).__name__}: {exc}"
    same = all(np.array_equal(a, c) for a, c in zip(before, model.get_weights()))
    return [msg, same]

xs, ys = x2[:40, :5], y2[:40]
bn = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4),
                       keras.layers.BatchNormalization(name="bn_1"), keras.layers.Dense(3)])
drop = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dropout(0.5),
                         keras.layers.Dense(3)])
lnorm = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4),
                          keras.layers.LayerNormalization(), keras.layers.Dense(3)])
errors = {
    "epsilon_zero": attempt(linear(5, 3), xs, ys, noise_multiplier=None, target_epsilon=0.0),
    "epsilon_negative": attempt(linear(5, 3), xs, ys, noise_multiplier=None, target_epsilon=-1.0),
    "delta_one_over_n": attempt(linear(5, 3), xs, ys, delta=1 / 40),
    "clip_zero": attempt(linear(5, 3), xs, ys, l2_norm_clip=0.0),
    "clip_negative": attempt(linear(5, 3), xs, ys, l2_norm_clip=-1.0),
    "batchnorm": attempt(bn, xs, ys),
    "batchnorm_nested": attempt(keras.Sequential([keras.Input((5,)), keras.Sequential(
        [keras.Input((5,)), keras.layers.BatchNormalization(name="deep_bn")]),
        keras.layers.Dense(3)]), xs, ys),
    "dropout": attempt(drop, xs, ys),
    "batch_too_large": attempt(linear(5, 3), xs, ys, batch_size=41),
    "labels": attempt(linear(5, 2), xs, ys),
    "dense_forced_on_layernorm": attempt(lnorm, xs, ys, per_example="dense"),
}
r = train_dpsgd_keras(linear(5, 3), xs, ys, target_epsilon=4.0, batch_size=4, epochs=1,
                      delta=1e-3)
out["calibrated"] = [r.noise_multiplier, r.epsilon, r.steps, r.privacy.sampling_assumption]
r = train_dpsgd_keras(linear(5, 3), xs, ys, noise_multiplier=0.0, batch_size=8, epochs=1,
                      delta=1e-3, sampling="shuffle")
out["shuffle_assumption"] = r.privacy.sampling_assumption


def rank3():
    return keras.Sequential([keras.Input((3, 4)), keras.layers.Dense(5), keras.layers.Flatten(),
                             keras.layers.Dense(3)])
x3d = np.random.default_rng(4).normal(size=(40, 3, 4)).astype("float32")
errors["dense_forced_rank3"] = attempt(rank3(), x3d, ys, per_example="dense")
out["rank3_auto"] = train_dpsgd_keras(rank3(), x3d, ys, noise_multiplier=0.0, batch_size=8,
                                      epochs=1, delta=1e-3).per_example_method
out["errors"] = errors
out["tf_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras"))
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    return _result(_run_jax(FAST_CHECKS, tmp_path_factory.mktemp("jax_cache")))


@pytest.mark.parametrize("method", ["vmap", "dense"])
def test_clipped_sum_matches_numpy_for_linear_softmax(fast, method):
    x, y, w, b, mask = _linear_data()
    gw, gb, loss, clipped, norms = _numpy_clipped_sum(x, y, w, b, mask, clip=3.0)
    # The case is informative: some masked-in gradients are clipped, some not.
    assert 0 < clipped < mask.sum() and (norms[mask == 0] > 3.0).any()
    used, got_w, got_b, got_loss, got_clipped = fast["clipped_" + method]
    assert used == method
    np.testing.assert_allclose(got_w, gw, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(got_b, gb, atol=1e-6, rtol=1e-5)
    assert got_loss == pytest.approx(loss, rel=1e-5)
    assert got_clipped == clipped


def test_zero_noise_and_huge_clip_is_plain_sgd_step_for_step(fast):
    assert fast["sgd_moved"] > 1e-2  # the three SGD steps really move the weights
    for method in ("vmap", "dense"):
        assert max(fast["sgd_diffs"][method]) < 1e-5, fast["sgd_diffs"]


def test_poisson_steps_match_numpy_dpsgd(fast):
    # Replays the sampler (same seed) and applies W -= lr * clipped_sum / (q n).
    x, y, w, b, _ = _linear_data()
    rng = np.random.default_rng(1)
    x2 = rng.normal(size=(48, 6)).astype("float32")
    y2 = rng.integers(0, 3, 48)
    x3, y3 = x2[:40, :5], y2[:40] % 4
    batches = sample_batches(40, 10, 4, 1, "poisson", np.random.default_rng(11))
    assert [len(i) for i in batches] == fast["poisson_sizes"]
    assert len(set(fast["poisson_sizes"])) > 1  # sizes vary: not fixed batches
    w, b = w.astype(np.float64), b.astype(np.float64)
    for idx in batches:
        mask = np.ones(len(idx))
        gw, gb, _, _, _ = _numpy_clipped_sum(x3[idx], y3[idx], w, b, mask, clip=0.5)
        w, b = w - 0.5 * gw / 10, b - 0.5 * gb / 10
    np.testing.assert_allclose(fast["poisson_steps"][0], w, atol=1e-5)
    np.testing.assert_allclose(fast["poisson_steps"][1], b, atol=1e-5)
    assert fast["poisson_cap"] == poisson_batch_cap(40, 0.25, 4)
    # Overflow (cap 12 < sizes 13, 17, 13) changes nothing but the speed.
    assert fast["overflow"] == [12, 3] and fast["poisson_sizes"] == [13, 17, 13, 11]
    np.testing.assert_allclose(fast["overflow_steps"][0], w, atol=1e-5)
    np.testing.assert_allclose(fast["overflow_steps"][1], b, atol=1e-5)


@pytest.mark.parametrize("part,size", [("noise_kernel", 7680), ("noise_bias", 256)])
def test_noise_is_gaussian_with_stddev_sigma_times_clip(fast, part, size):
    noise = np.asarray(fast[part])  # the kernel's every 10th entry, all of the bias
    assert noise.size == size
    # sigma * C = 0.5 * 2.0 = 1.0 on the clipped *sum*; a wrong scale (e.g. no
    # factor C, or divided by the batch twice) is far outside this band.
    assert abs(noise.mean()) < 4 / math.sqrt(size)
    assert abs(noise.std() - 1.0) < 6 / math.sqrt(2 * size)
    assert stats.kstest(noise, "norm", args=(0.0, 1.0)).pvalue > 1e-3
    assert np.isfinite(fast["noise_eps"]) and fast["noise_eps"] > 0


@pytest.mark.parametrize("case,match", [
    ("epsilon_zero", "target_epsilon must be a finite number > 0"),
    ("epsilon_negative", "target_epsilon must be a finite number > 0"),
    ("delta_one_over_n", r"delta must lie in \(0, 1/n\)"),
    ("clip_zero", "l2_norm_clip must be > 0"),
    ("clip_negative", "l2_norm_clip must be > 0"),
    ("batchnorm", "'bn_1' is a BatchNormalization"),
    ("batchnorm_nested", "'deep_bn' is a BatchNormalization"),
    ("dropout", "non-trainable state in training mode"),
    ("batch_too_large", r"batch_size \(41\) must not exceed"),
    ("labels", r"Labels must lie in \[0, 2\)"),
    ("dense_forced_on_layernorm", "per_example=.dense. needs"),
    ("dense_forced_rank3", "gets rank-3 inputs"),
])
def test_bad_input_fails_before_training(fast, case, match):
    msg, weights_untouched = fast["errors"][case]
    assert msg.startswith("ValueError"), msg
    assert __import__("re").search(match, msg), msg
    assert weights_untouched


def test_target_epsilon_uses_the_shared_accountant_and_names_the_sampler(fast):
    from keras_mi.baselines import compute_epsilon, noise_multiplier_for_epsilon
    sigma, eps, steps, assumption = fast["calibrated"]
    assert steps == 40 // 4
    assert sigma == noise_multiplier_for_epsilon(4.0, 40, 4, 1, delta=1e-3, steps=steps)
    assert eps == pytest.approx(compute_epsilon(40, 4, sigma, 1, 1e-3, steps=steps), rel=1e-12)
    assert eps <= 4.0
    assert "which is what the trainer does" in assumption
    assert "shuffled fixed-size batches" in fast["shuffle_assumption"]


def test_auto_falls_back_to_vmap_where_the_dense_identity_does_not_hold(fast):
    # Dense on (batch, 3, 4) inputs sums outer products over positions.
    assert fast["rank3_auto"] == "vmap"


def test_jax_path_never_imports_tensorflow(fast):
    assert fast["tf_loaded"] == []


def test_tensorflow_backend_is_refused_with_a_clear_error():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() == "jax":
        pytest.skip("this process runs the JAX backend")
    from keras_mi.baselines.dpsgd_keras import train_dpsgd_keras
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(RuntimeError, match="needs the JAX backend.*KERAS_BACKEND=jax"):
        train_dpsgd_keras(model, np.zeros((8, 3)), np.zeros(8, int), noise_multiplier=1.0,
                          batch_size=4, epochs=1, delta=1e-2)


# ---- sampling (NumPy only) -----------------------------------------------------


def _binomial_chi2_pvalue(sizes, n, q):
    """Chi-square goodness of fit of batch sizes to Binomial(n, q) (tails pooled)."""
    lo, hi = stats.binom.ppf(0.005, n, q), stats.binom.ppf(0.995, n, q)
    edges = np.arange(lo, hi + 1)
    observed = np.array([(sizes < lo).sum()] + [(sizes == k).sum() for k in edges[:-1]]
                        + [(sizes >= hi).sum()])
    probs = np.r_[stats.binom.cdf(lo - 1, n, q), stats.binom.pmf(edges[:-1], n, q),
                  stats.binom.sf(hi - 1, n, q)]
    return stats.chisquare(observed, probs * len(sizes)).pvalue


def test_poisson_batch_sizes_are_binomial():
    n, batch, steps = 1000, 50, 4000
    batches = sample_batches(n, batch, steps, 1, "poisson", np.random.default_rng(0))
    sizes = np.array([len(b) for b in batches])
    assert _binomial_chi2_pvalue(sizes, n, batch / n) > 1e-3
    assert sizes.mean() == pytest.approx(50, abs=4 * math.sqrt(47.5 / steps))
    assert sizes.var() == pytest.approx(n * 0.05 * 0.95, rel=0.1)
    # The check has power: the same sizes do not pass as Binomial(n, 1.1 q),
    # and fixed-size shuffled batches are not binomial at all.
    assert _binomial_chi2_pvalue(sizes, n, 1.1 * batch / n) < 1e-6
    shuffled = sample_batches(n, batch, n // batch, 3, "shuffle", np.random.default_rng(0))
    assert {len(b) for b in shuffled} == {batch}
    # Within a Poisson batch an example appears at most once; across batches
    # every example is equally likely (membership frequency ~ q).
    assert all(len(np.unique(b)) == len(b) for b in batches[:50])
    counts = np.bincount(np.concatenate(batches), minlength=n) / steps
    assert abs(counts.mean() - 0.05) < 1e-3 and counts.std() < 0.01


def test_poisson_batch_cap_bounds_overflow_by_union_bound():
    n, q, steps = 2000, 128 / 2000, 150
    cap = poisson_batch_cap(n, q, steps, overflow_probability=1e-6)
    assert steps * stats.binom.sf(cap, n, q) <= 1e-6 < steps * stats.binom.sf(cap - 1, n, q)
    assert 128 < cap < 2 * 128
    assert poisson_batch_cap(n, q, steps, 1e-3) < cap
    with pytest.raises(ValueError, match="overflow_probability"):
        poisson_batch_cap(n, q, steps, 0.0)


# ---- agreement with TF-Privacy (3 seeds each) -----------------------------------

AGREE_DATA = """
import numpy as np
rng = np.random.default_rng(123)
y = rng.integers(0, 4, 1280)
centers = rng.normal(scale=0.8, size=(4, 16))
x = (centers[y] + rng.normal(size=(1280, 16))).astype("float32")
x_train, y_train, x_test, y_test = x[:256], y[:256], x[256:], y[256:]
SETTINGS = dict(noise_multiplier=1.0, l2_norm_clip=1.0, batch_size=32, epochs=2,
                learning_rate=0.5, delta=1e-3)
"""

AGREE_JAX = AGREE_DATA + """
import json
from keras_mi.models import build_model
from keras_mi.baselines.dpsgd_keras import train_dpsgd_keras
accs = []
for seed in range(3):
    model = build_model("mlp_tanh", (16,), 4, seed=seed)
    r = train_dpsgd_keras(model, x_train, y_train, seed=seed, sampling="poisson", **SETTINGS)
    logits = model.predict(x_test, verbose=0, batch_size=1024)
    accs.append(float(np.mean(np.argmax(logits, 1) == y_test)))
print("RESULT " + json.dumps({"acc": accs, "epsilon": r.epsilon, "steps": r.steps}))
"""

AGREE_TF = AGREE_DATA + """
import json, os, tempfile
os.environ["TF_USE_LEGACY_KERAS"] = "1"
from keras_mi.baselines.dpsgd_worker import run
work = tempfile.mkdtemp()
np.savez(f"{work}/data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
         x_non_members=x_test[:8], y_non_members=y_test[:8])
accs = []
for seed in range(3):
    request = dict(data=f"{work}/data.npz", out_dir=f"{work}/out{seed}", architecture="mlp_tanh",
                   input_shape=[16], num_classes=4, private=True, num_microbatches=None,
                   momentum=0.0, seed=seed, verbose=0, accountant="rdp", **SETTINGS)
    result = run(request)
    accs.append(result["test_accuracy"])
print("RESULT " + json.dumps({"acc": accs, "epsilon": result["epsilon"], "steps": result["steps"]}))
"""


def _tf_privacy_available():
    return (importlib.util.find_spec("tensorflow_privacy") is not None
            and importlib.util.find_spec("tf_keras") is not None)


@pytest.mark.slow
@pytest.mark.skipif(not _tf_privacy_available(), reason="TF-Privacy / tf-keras not installed")
def test_keras3_jax_dpsgd_matches_tf_privacy_accuracy_and_epsilon(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}
    env.pop("KERAS_BACKEND", None)
    tf_proc = subprocess.Popen([sys.executable, "-c", AGREE_TF], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    jax_out = _result(_run_jax(AGREE_JAX, tmp_path / "jax_cache"), timeout=400)
    tf_out = _result(tf_proc, timeout=400)
    # epsilon: the same accountant call with the same steps on both sides.
    assert jax_out["steps"] == tf_out["steps"] == 2 * (256 // 32)
    assert jax_out["epsilon"] == pytest.approx(tf_out["epsilon"], rel=1e-12)
    # Accuracy: two one-sided Welch t-tests (TOST) at alpha = 0.05 with an
    # equivalence margin of 0.05 -- the 90% confidence interval of the mean
    # difference over seeds must lie inside (-0.05, 0.05). (Noise at sigma=1
    # costs this task ~2 points; sigma=3 costs ~40, so a mis-scaled noise or a
    # missing clip lands far outside the margin.)
    a, b = np.asarray(jax_out["acc"]), np.asarray(tf_out["acc"])
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else 4
    half_width = stats.t.ppf(0.95, df) * se
    diff = a.mean() - b.mean()
    assert abs(diff) + half_width < 0.05, (a, b, diff, half_width)
    assert a.min() > 0.8 and b.min() > 0.8  # both learned (chance is 0.25)
