"""MixUp inside tf.data, and `keras_mi.data.pipeline.mixup_dataset`."""

import numpy as np
import pytest
import scipy.stats

tf = pytest.importorskip("tensorflow")

from keras_mi.data.pipeline import mixup_dataset  # noqa: E402
from keras_mi.layers import MixUp  # noqa: E402


def _data(n=40, d=6, c=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, d)).astype("float32"), rng.integers(0, c, size=n)


def test_layer_in_dataset_map_matches_numpy():
    x, y = _data(n=24)
    layer = MixUp(num_classes=4, seed=2)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).map(layer)
    # The same layer seed, asked for transformations inside tf.data, reproduces the draws.
    sampler = MixUp(num_classes=4, seed=2)
    ts = tf.data.Dataset.from_tensor_slices(x).batch(8).map(sampler.get_random_transformation)
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 3
    for i, ((xm, ym), t) in enumerate(zip(batches, ts.as_numpy_iterator())):
        lam, perm = float(t["mix_weight"]), t["permutation_order"]
        xb, yb = x[8 * i : 8 * i + 8], np.eye(4)[y[8 * i : 8 * i + 8]]
        np.testing.assert_allclose(xm, lam * xb + (1 - lam) * xb[perm], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ym, lam * yb + (1 - lam) * yb[perm], rtol=1e-5, atol=1e-6)
    # the stream advances: the three batches used three different lam
    lams = [float(t["mix_weight"]) for t in ts.as_numpy_iterator()]
    assert len(set(lams)) == 3


def test_lambda_law_inside_tf_data():
    alpha, n = 0.5, 2000
    x = np.zeros((2 * n, 1), "float32")
    layer = MixUp(alpha=alpha, seed=5)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(2).map(layer.get_random_transformation)
    lam = np.array([float(t["mix_weight"]) for t in ds.as_numpy_iterator()])
    mean, var, _, kurt = scipy.stats.beta.stats(alpha, alpha, moments="mvsk")
    # 5 standard errors of the sample mean and sample variance (see test_mix_up.py)
    assert abs(lam.mean() - mean) < 5 * np.sqrt(var / n)
    assert abs(lam.var(ddof=1) - var) < 5 * np.sqrt((kurt + 2) * var**2 / n)
    assert scipy.stats.kstest(lam, scipy.stats.beta(alpha, alpha).cdf).pvalue > 1e-4


def test_tf_graph_errors_are_clear():
    x, y = _data(n=9)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).map(MixUp(num_classes=4, seed=0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least 2 examples"):
        list(ds)  # 9 = 4 + 4 + 1: the last batch has one example
    ds = tf.data.Dataset.from_tensor_slices((x, y + 1)).batch(3).map(MixUp(num_classes=4, seed=0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes=4"):
        list(ds)


def test_mixup_dataset_batches_and_reproducibility():
    x, y = _data(n=50, c=3)
    a = list(mixup_dataset(x, y, num_classes=3, batch_size=16, seed=4).as_numpy_iterator())
    b = list(mixup_dataset(x, y, num_classes=3, batch_size=16, seed=4).as_numpy_iterator())
    c = list(mixup_dataset(x, y, num_classes=3, batch_size=16, seed=5).as_numpy_iterator())
    assert [len(xb) for xb, _ in a] == [16, 16, 16, 2]
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.allclose(a[0][0], c[0][0])
    for xb, yb in a:
        assert yb.shape[1] == 3 and xb.dtype == np.float32
        np.testing.assert_allclose(yb.sum(axis=1), 1.0, atol=1e-6)
    # mixing is a convex combination of members of the set: the label mass
    # per class over an epoch equals the class counts
    mass = np.concatenate([yb for _, yb in a]).sum(axis=0)
    np.testing.assert_allclose(mass, np.bincount(y, minlength=3), atol=1e-3)


def test_mixup_dataset_epochs_differ_and_no_shuffle_keeps_order():
    x, y = _data(n=32, c=2)
    ds = mixup_dataset(x, y, num_classes=2, batch_size=32, seed=1, shuffle=False)
    e1, e2 = (next(iter(ds)) for _ in range(2))
    assert not np.allclose(e1[0].numpy(), e2[0].numpy())  # fresh lam / perm per epoch
    ds = mixup_dataset(x, y, num_classes=2, batch_size=32, seed=1, alpha=1e-4, shuffle=False)
    # alpha -> 0 puts lam at 0 or 1: each batch is the raw data or a row permutation of it
    for xb, _ in ds.repeat(4).as_numpy_iterator():
        np.testing.assert_allclose(np.sort(xb, axis=0), np.sort(x, axis=0), atol=1e-6)


def test_mixup_dataset_bad_input():
    x, y = _data(n=33, c=3)
    with pytest.raises(ValueError, match="one label per example"):
        mixup_dataset(x, y[:-1], num_classes=3)
    with pytest.raises(ValueError, match="last batch of one"):
        mixup_dataset(x, y, num_classes=3, batch_size=16)
    assert len(list(mixup_dataset(x, y, num_classes=3, batch_size=16, drop_remainder=True))) == 2
    with pytest.raises(ValueError, match="batch_size"):
        mixup_dataset(x, y, num_classes=3, batch_size=1)
    with pytest.raises(ValueError, match="alpha"):
        mixup_dataset(x, y, num_classes=3, alpha=0.0)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        mixup_dataset(x, y + 1, num_classes=3, batch_size=11)


@pytest.mark.slow
def test_mixup_dataset_is_the_same_under_jax():
    # The mixing runs as TF ops inside tf.data whatever the Keras backend,
    # so a seed gives the same batches under JAX (child process) as here.
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys, numpy as np, keras
        assert keras.backend.backend() == "jax"
        from keras_mi.data.pipeline import mixup_dataset
        keras.utils.set_random_seed(7)  # tf.data's shuffle also reads TF's global seed
        rng = np.random.default_rng(0)
        x = rng.random((40, 6)).astype("float32"); y = rng.integers(0, 4, 40)
        out = np.concatenate([np.concatenate([xb, yb], 1) for xb, yb in
                              mixup_dataset(x, y, num_classes=4, batch_size=16, seed=3).repeat(2)])
        np.save(sys.argv[1], out)
    """)
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"mixup_jax_{os.getpid()}.npy")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", code, path], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    from_jax = np.load(path)
    os.remove(path)
    import keras

    # Earlier tests in this process may have set TF's global seed, which
    # tf.data's seeded shuffle combines with its own: set the same one.
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.random((40, 6)).astype("float32")
    y = rng.integers(0, 4, 40)
    stream = mixup_dataset(x, y, num_classes=4, batch_size=16, seed=3).repeat(2)
    here = np.concatenate([np.concatenate([xb, yb], 1) for xb, yb in stream.as_numpy_iterator()])
    np.testing.assert_array_equal(here, from_jax)
