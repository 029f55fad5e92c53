"""The top-level API: every exported name resolves; the core runs without TensorFlow."""

import os
import subprocess
import sys
import textwrap

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
