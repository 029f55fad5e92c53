"""Architectures: Keras 3 and tf-keras builds are the same network, ending in logits."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_mi.models import architecture_spec, available_architectures, build_model

CASES = [("alexnet", (32, 32, 3), 10), ("mlp_tanh", (446,), 30),
         ("small_cnn", (28, 28, 1), 10), ("linear", (446,), 30)]


def _conv_params(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def _dense_params(n_in, n_out):
    return n_in * n_out + n_out


# Parameter counts worked out by hand from the PyTorch/TF-Privacy definitions.
EXPECTED_PARAMS = {
    # bearpaw CIFAR AlexNet: 32x32 input reaches the classifier as 1x1x256.
    "alexnet": (_conv_params(11, 3, 64) + _conv_params(5, 64, 192)
                + _conv_params(3, 192, 384) + _conv_params(3, 384, 256)
                + _conv_params(3, 256, 256) + _dense_params(256, 10)),
    "mlp_tanh": (_dense_params(446, 1024) + _dense_params(1024, 512)
                 + _dense_params(512, 256) + _dense_params(256, 30)),
    # TF-Privacy MNIST tutorial CNN: 28 -> 14 -> 13 -> 5 -> 4, so 4*4*32 = 512.
    "linear": _dense_params(446, 30),
    "small_cnn": (_conv_params(8, 1, 16) + _conv_params(4, 16, 32)
                  + _dense_params(512, 32) + _dense_params(32, 10)),
}


def _structure(model):
    return [(layer.name, type(layer).__name__, tuple(layer.output.shape),
             layer.count_params()) for layer in model.layers]


def test_available_architectures():
    assert available_architectures() == ["alexnet", "linear", "mlp_tanh", "small_cnn"]


@pytest.mark.parametrize("name,shape,classes", CASES)
def test_flavors_share_structure_and_parameter_count(name, shape, classes):
    k3 = build_model(name, shape, classes, seed=0)
    k2 = build_model(name, shape, classes, flavor="tf_keras", seed=0)
    assert _structure(k3) == _structure(k2)
    assert k3.count_params() == k2.count_params() == EXPECTED_PARAMS[name]
    assert k3.output_shape == k2.output_shape == (None, classes)


@pytest.mark.parametrize("name,shape,classes", CASES)
def test_same_weights_give_same_logits_in_both_flavors(name, shape, classes):
    k3 = build_model(name, shape, classes, seed=1)
    k2 = build_model(name, shape, classes, flavor="tf_keras", seed=2)
    k2.set_weights(k3.get_weights())
    x = np.random.default_rng(0).normal(size=(4,) + shape).astype("float32")
    out3 = np.asarray(k3.predict(x, verbose=0))
    out2 = np.asarray(k2.predict(x, verbose=0))
    np.testing.assert_allclose(out3, out2, rtol=1e-4, atol=1e-5)
    # Logits, not probabilities: unbounded and rows do not sum to one.
    assert k3.layers[-1].get_config()["activation"] == "linear"
    assert not np.allclose(out3.sum(axis=1), 1.0)


def test_alexnet_padding_matches_pytorch_arithmetic():
    # PyTorch: out = floor((in + 2p - k) / s) + 1 with p=5, k=11, s=4.
    model = build_model("alexnet", (32, 32, 3), 10)
    assert tuple(model.get_layer("conv1").output.shape) == (None, 8, 8, 64)
    assert tuple(model.get_layer("pool3").output.shape) == (None, 1, 1, 256)


def test_seed_makes_initialization_reproducible():
    a = build_model("mlp_tanh", (20,), 3, seed=7).get_weights()
    b = build_model("mlp_tanh", (20,), 3, seed=7).get_weights()
    c = build_model("mlp_tanh", (20,), 3, seed=8).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_mlp_flattens_image_inputs():
    model = build_model("mlp_tanh", (8, 8, 1), 4)
    assert model.layers[0].name == "flatten"
    assert model.count_params() == (_dense_params(64, 1024) + _dense_params(1024, 512)
                                    + _dense_params(512, 256) + _dense_params(256, 4))


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="resnet", input_shape=(32, 32, 3), num_classes=10), "Unknown architecture"),
    (dict(name="alexnet", input_shape=(3072,), num_classes=10), "channels-last"),
    (dict(name="alexnet", input_shape=(16, 16, 3), num_classes=10), "too small"),
    (dict(name="mlp_tanh", input_shape=(10,), num_classes=1), "num_classes"),
    (dict(name="mlp_tanh", input_shape=(0,), num_classes=3), "positive"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(**kwargs)


def test_bad_flavor_raises():
    with pytest.raises(ValueError, match="flavor"):
        build_model("mlp_tanh", (4,), 2, flavor="torch")


def test_spec_is_flavor_independent():
    names = [s.name for s in architecture_spec("alexnet", (32, 32, 3), 10)]
    assert names[0] == "pad1" and names[-1] == "logits"


def test_keras3_build_runs_under_jax_without_tensorflow():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import keras
        assert keras.backend.backend() == "jax", keras.backend.backend()
        from keras_mi.models import build_model
        for name, shape in [("alexnet", (32, 32, 3)), ("mlp_tanh", (446,)),
                            ("small_cnn", (28, 28, 1))]:
            model = build_model(name, shape, 5, seed=0)
            out = np.asarray(model(np.ones((2,) + shape, "float32")))
            assert out.shape == (2, 5) and np.all(np.isfinite(out)), name
        leaked = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras")]
        assert not leaked, leaked
        print("OK")
    """)
    # XLA's optimizing passes cost most of this test's time (weight initializers compile per
    # layer shape) and are irrelevant to what it checks: turn them off.
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_backend_optimization_level=0 "
                         "--xla_llvm_disable_expensive_passes=true")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
