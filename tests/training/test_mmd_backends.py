"""MMDModel under tf.distribute.MirroredStrategy and on the JAX backend.

Both run in a subprocess: logical devices and the Keras backend must be set
before TensorFlow / Keras initialize.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

DATA = """
import numpy as np
rng = np.random.default_rng(0)
y = rng.integers(0, 4, 320); x = rng.normal(size=(320, 12)).astype("float32")
x[np.arange(320), y] += 2.0
"""

MIRRORED = DATA + """
import json
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_mi.training import MMDModel
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}
with strategy.scope():
    for schedule in ("summed", "paper"):
        net = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="tanh"),
                                keras.layers.Dense(4)])
        model = MMDModel(net, reference=(x[160:], y[160:]), schedule=schedule,
                         gap_threshold=-1.0, seed=0)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        out[schedule] = model.fit(x[:160], y[:160], batch_size=32, epochs=2, verbose=0).history
print("RESULT " + json.dumps(out))
"""

JAX = DATA + """
import json, os, sys, tempfile
import keras
assert keras.backend.backend() == "jax"
from keras_mi.training import MMDModel
out = {"tf_loaded": "tensorflow" in sys.modules}
for schedule in ("summed", "paper"):
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="tanh"),
                            keras.layers.Dense(4)])
    model = MMDModel(net, reference=(x[160:], y[160:]), schedule=schedule, gap_threshold=-1.0,
                     seed=0)
    model.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    onehot = np.eye(4, dtype="float32")[y[:160]]
    val_onehot = np.eye(4, dtype="float32")[y[160:]]
    out[schedule] = model.fit(x[:160], onehot, batch_size=32, epochs=2, verbose=0,
                              validation_data=(x[160:], val_onehot)).history
path = os.path.join(tempfile.mkdtemp(), "m.keras")
model.save(path)
loaded = keras.saving.load_model(path, safe_mode=True)
out["same_predictions"] = bool(np.array_equal(loaded.predict(x, verbose=0),
                                              model.predict(x, verbose=0)))
print("RESULT " + json.dumps(out))
"""


def run_script(code, **env):
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=full_env, timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def check_histories(out):
    for schedule in ("summed", "paper"):
        h = out[schedule]
        assert len(h["loss"]) == 2 and all(v == v for v in h["loss"])
        assert all(v > 0 for v in h["mmd"])
    assert out["paper"]["mmd_pass"] == [1.0, 0.0]
    assert out["paper"]["mmd_pass_mmd"][0] > 0


@pytest.mark.slow
def test_mirrored_strategy_two_cpus():
    pytest.importorskip("tensorflow")
    out = run_script(MIRRORED, KERAS_BACKEND="tensorflow")
    assert out["replicas"] == 2
    check_histories(out)


@pytest.mark.slow
def test_jax_backend_fit_and_save():
    pytest.importorskip("jax")
    out = run_script(JAX, KERAS_BACKEND="jax")
    check_histories(out)
    assert "gap" in out["summed"] and "val_mmd" in out["summed"]
    assert out["same_predictions"]
