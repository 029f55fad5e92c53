"""The top-level API: every exported name resolves; the core runs without TensorFlow."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import keras_mi

# Blocks `import tensorflow*` (and tf_keras/tensorflow_privacy) in the child,
# as on a GPU machine that has JAX but no TensorFlow.
_NO_TF_PRELUDE = textwrap.dedent("""
    import importlib.abc, sys
    class _NoTF(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tf_keras", "tensorflow_privacy"):
                raise ImportError(f"blocked for this test: {name}")
            return None
    sys.meta_path.insert(0, _NoTF())
""")


def test_every_public_name_resolves():
    for name in keras_mi.__all__:
        assert getattr(keras_mi, name) is not None, name


def test_unknown_name_raises_attribute_error():
    try:
        keras_mi.not_a_name  # noqa: B018
    except AttributeError as err:
        assert "not_a_name" in str(err)
    else:
        raise AssertionError("expected AttributeError")


def test_core_trains_and_attacks_with_jax_and_no_tensorflow():
    script = _NO_TF_PRELUDE + textwrap.dedent("""
        import numpy as np, keras, keras_mi
        assert keras.backend.backend() == "jax"
        rng = np.random.default_rng(0)
        x = rng.normal(size=(96, 6)).astype("float32"); y = (x[:, 0] > 0).astype("int64")
        net = keras_mi.build_model("mlp_tanh", (6,), 2, seed=0)
        model = keras_mi.MMDModel(net, reference=(x[64:], y[64:]), weight=1.0, seed=0)
        model.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True))
        xm, ym = keras_mi.MixUp(alpha=1.0, num_classes=2, seed=0)((x[:64], y[:64]), training=True)
        history = model.fit(np.asarray(xm), np.asarray(ym), epochs=2, batch_size=16, verbose=0)
        assert np.isfinite(history.history["mmd"][-1])
        out = keras_mi.ModelOutputs.from_model(model, members=(x[:32], y[:32]),
                                               non_members=(x[32:64], y[32:64]))
        report = keras_mi.attacks.run(out, attacks=["loss", "entropy"])
        assert 0.0 <= report.strongest().auc <= 1.0
        assert not any(m.startswith("tensorflow") for m in sys.modules)
        print("NO-TF-OK")
    """)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NO-TF-OK" in proc.stdout


_LOAD_IN_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    if sys.argv[1] == "keras_mi_first":
        import keras_mi
        # Registering keras-mi's classes waits for Keras: no TensorFlow yet.
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        import keras
    else:
        import keras, keras_mi
    x = np.load(sys.argv[4])
    mmd = keras.saving.load_model(sys.argv[2], safe_mode=True)
    mix = keras.saving.load_model(sys.argv[3], safe_mode=True)
    out = {"backend": keras.backend.backend(),
           "classes": [type(mmd).__name__, type(mix.layers[-1]).__name__],
           "pred": np.asarray(mmd.predict(x, verbose=0)).tolist(),
           "mix_eval": np.asarray(mix([x, np.arange(len(x)) % 3], training=False)[1]).tolist()}
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.parametrize(
    "backend,order", [("tensorflow", "keras_first"), ("jax", "keras_mi_first")]
)
def test_saved_models_load_in_a_fresh_process(tmp_path, backend, order):
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype("float32")
    y = np.arange(12) % 3
    net = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    keras_mi.MMDModel(net, reference=(x, y), weight=1.0, seed=0).save(tmp_path / "mmd.keras")
    xi, yi = keras.Input((5,)), keras.Input((), dtype="int32")
    keras.Model([xi, yi], keras_mi.MixUp(num_classes=3, seed=0)((xi, yi))).save(
        tmp_path / "mix.keras"
    )
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    args = [order, tmp_path / "mmd.keras", tmp_path / "mix.keras", tmp_path / "x.npy"]
    proc = subprocess.run([sys.executable, "-c", _LOAD_IN_FRESH_PROCESS, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["backend"] == backend and out["classes"] == ["MMDModel", "MixUp"]
    np.testing.assert_allclose(out["pred"], net.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # Not training: the MixUp layer one-hot encodes the labels and mixes nothing.
    np.testing.assert_array_equal(out["mix_eval"], np.eye(3)[y])
