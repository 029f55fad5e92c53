"""TF-Privacy's three DP-SGD paths in the worker compute the same step as NumPy.

``dpsgd_worker`` trains with ``DPKerasSGDOptimizer`` ("microbatched"),
``VectorizedDPKerasSGDOptimizer`` ("vectorized") or ``DPSequential`` with the
layer registry ("fast_clipping"). With zero noise, one full-batch step of a
softmax regression must equal ``W0 - lr * sum_i clip_C(g_i) / B``, computed
here in NumPy from the initial weights, with a clip that cuts some gradients
and not others.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    from keras_mi.baselines import dpsgd_worker
    from keras_mi.models import build_model
    work = sys.argv[1]
    req = json.loads(sys.argv[2])
    w0 = build_model("linear", (req["d"],), req["k"], flavor="tf_keras", seed=req["seed"])
    out = {"w0": [w.tolist() for w in w0.get_weights()]}
    for path in ("microbatched", "vectorized", "fast_clipping"):
        r = dpsgd_worker.run(dict(
            data=os.path.join(work, "data.npz"), out_dir=os.path.join(work, path),
            architecture="linear", input_shape=[req["d"]], num_classes=req["k"],
            l2_norm_clip=req["clip"], noise_multiplier=0.0, num_microbatches=None,
            batch_size=req["n"], epochs=1, learning_rate=req["lr"], momentum=0.0,
            seed=req["seed"], verbose=0, tf_privacy_optimizer=path))
        import tf_keras
        m = tf_keras.models.load_model(os.path.join(work, path, "model.h5"), compile=False)
        out[path] = {"weights": [w.tolist() for w in m.get_weights()],
                     "tf_privacy_path": r["tf_privacy_path"]}
    print("RESULT" + json.dumps(out))
""")


def _numpy_step(w, b, x, y, clip, lr):
    logits = x @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    delta = p - np.eye(w.shape[1])[y]                       # dloss/dlogits, per example
    gw = x[:, :, None] * delta[:, None, :]                  # (n, d, k)
    norms = np.sqrt((gw ** 2).sum((1, 2)) + (delta ** 2).sum(1))
    scale = np.minimum(1.0, clip / norms)
    n = len(x)
    return (w - lr * np.einsum("n,ndk->dk", scale, gw) / n,
            b - lr * (scale[:, None] * delta).sum(0) / n, norms)


def test_three_tf_privacy_paths_match_numpy_dpsgd_step(tmp_path):
    rng = np.random.default_rng(0)
    n, d, k, clip, lr, seed = 32, 8, 3, 0.8, 0.5, 3
    x = rng.normal(size=(n, d)).astype("float32") * rng.uniform(0.1, 1.5, size=(n, 1))
    y = rng.integers(0, k, n)
    np.savez(tmp_path / "data.npz", x_train=x, y_train=y, x_non_members=x, y_non_members=y)
    req = dict(n=n, d=d, k=k, clip=clip, lr=lr, seed=seed)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), json.dumps(req)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    w0, b0 = (np.array(v, dtype="float64") for v in out["w0"])
    w1, b1, norms = _numpy_step(w0, b0, x.astype("float64"), y, clip, lr)
    assert 0 < np.mean(norms > clip) < 1  # the clip cuts some gradients, not all
    assert out["fast_clipping"]["tf_privacy_path"] == "fast_clipping"  # Dense is registered
    for path in ("microbatched", "vectorized", "fast_clipping"):
        got_w, got_b = (np.array(v) for v in out[path]["weights"])
        np.testing.assert_allclose(got_w, w1, atol=1e-6, err_msg=path)
        np.testing.assert_allclose(got_b, b1, atol=1e-6, err_msg=path)
    # and the step moved the weights (the comparison is not vacuous)
    assert np.max(np.abs(w1 - w0)) > 1e-2


def test_unknown_tf_privacy_optimizer_is_refused_before_spawning():
    from keras_mi.baselines import train_dpsgd

    x = np.zeros((20, 4), "float32")
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="tf_privacy_optimizer must be one of"):
        train_dpsgd((x, y), (x, y), input_shape=(4,), num_classes=2, noise_multiplier=1.0,
                    batch_size=10, epochs=1, tf_privacy_optimizer="ghost")
