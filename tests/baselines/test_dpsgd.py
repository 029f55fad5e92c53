"""DP-SGD through the child process: outputs, ε, clipping, errors."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

# find_spec, not importorskip: TF-Privacy's top-level import needs the _compat hook.
if importlib.util.find_spec("tensorflow_privacy") is None or \
        importlib.util.find_spec("tf_keras") is None:
    pytest.skip("TF-Privacy / tf-keras not installed", allow_module_level=True)

from keras_mi.baselines import compute_epsilon, train_dpsgd  # noqa: E402
from keras_mi.baselines.dpsgd import _run_child  # noqa: E402
from keras_mi.outputs import ModelOutputs  # noqa: E402


def _blobs(n, dim=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    centers = rng.normal(scale=3.0, size=(classes, dim))
    x = centers[y] + rng.normal(size=(n, dim))
    return x.astype("float32"), y.astype("int64")


@pytest.fixture(scope="module")
def data():
    x, y = _blobs(320)
    return (x[:128], y[:128]), (x[128:224], y[128:224]), (x[224:], y[224:])


def test_tiny_dpsgd_run_returns_outputs_and_epsilon(data, tmp_path, capfd):
    members, non_members, test = data
    result = train_dpsgd(members, non_members, test=test, input_shape=(12,), num_classes=3,
                         noise_multiplier=0.7, l2_norm_clip=1.0, batch_size=32, epochs=3,
                         learning_rate=0.2, delta=1e-3, seed=0, work_dir=tmp_path,
                         verbose=1)
    assert "Epoch 3/3" in capfd.readouterr().out  # the child's progress is forwarded
    assert set(result.outputs.logits) == {"members", "non_members", "test"}
    np.testing.assert_array_equal(result.outputs.labels["members"], members[1])
    assert result.outputs.logits["non_members"].shape == (96, 3)
    # epsilon recomputed independently from the run's hyperparameters (4 steps/epoch).
    assert result.privacy.steps == 3 * (128 // 32)
    assert result.epsilon == pytest.approx(
        compute_epsilon(128, 32, 0.7, 3, 1e-3), rel=1e-9)
    assert np.isfinite(result.epsilon) and result.epsilon > 0
    assert len(result.epoch_time_s) == 3 and len(result.history["loss"]) == 3
    # Well-separated blobs: even noisy training beats chance (1/3).
    assert result.test_accuracy > 0.5
    # What the parent returns is exactly what the child wrote; the model is kept.
    on_disk = ModelOutputs.load_npz(tmp_path / "out" / "outputs.npz")
    np.testing.assert_array_equal(on_disk.logits["test"], result.outputs.logits["test"])
    assert os.path.exists(result.model_path)
    summary = json.loads((tmp_path / "out" / "result.json").read_text())
    assert summary["epsilon"] == pytest.approx(result.epsilon)


@pytest.mark.slow
def test_clipping_is_applied_per_example(data, tmp_path):
    # Without noise and with a vanishing clip norm, DP-SGD cannot move the
    # weights, so the logits equal those of the (seeded) initial model.
    tf_keras = pytest.importorskip("tf_keras")  # noqa: F841
    from keras_mi.models import build_model
    members, non_members, _ = data
    result = train_dpsgd(members, non_members, input_shape=(12,), num_classes=3,
                         noise_multiplier=0.0, l2_norm_clip=1e-9, batch_size=32, epochs=1,
                         learning_rate=0.5, delta=1e-3, seed=3, verbose=0)
    init = build_model("mlp_tanh", (12,), 3, flavor="tf_keras", seed=3)
    expected = init.predict(non_members[0], verbose=0)
    np.testing.assert_allclose(result.outputs.logits["non_members"], expected, atol=1e-5)
    assert result.epsilon == float("inf") and result.model_path is None


def test_child_error_reaches_the_user(tmp_path):
    request = {"data": str(tmp_path / "missing.npz"), "out_dir": str(tmp_path / "out")}
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    with pytest.raises(RuntimeError, match="(?s)worker failed.*missing.npz"):
        _run_child(path, verbose=0, timeout=300)


@pytest.mark.parametrize("kwargs,match", [
    (dict(noise_multiplier=-1.0), "noise_multiplier"),
    (dict(noise_multiplier=1.0, l2_norm_clip=0.0), "l2_norm_clip"),
    (dict(noise_multiplier=1.0, batch_size=32, num_microbatches=5), "divisible"),
    (dict(noise_multiplier=1.0, delta=1 / 128), "delta"),
    (dict(), "exactly one"),
    (dict(noise_multiplier=1.0, architecture="alexnet"), "channels-last"),
])
def test_bad_arguments_fail_before_spawning(data, kwargs, match, monkeypatch):
    members, non_members, _ = data

    def no_child(*args, **kw):
        raise AssertionError("the child process must not start")

    monkeypatch.setattr("keras_mi.baselines.dpsgd._run_child", no_child)
    with pytest.raises(ValueError, match=match):
        train_dpsgd(members, non_members, input_shape=(12,), num_classes=3, verbose=0,
                    **kwargs)


def test_bad_labels_fail(data):
    members, non_members, _ = data
    with pytest.raises(ValueError, match="labels"):
        train_dpsgd((members[0], members[1] + 5), non_members, input_shape=(12,),
                    num_classes=3, noise_multiplier=1.0, verbose=0)


def test_batchnorm_is_refused_with_the_layer_name():
    from keras_mi.baselines.dpsgd_worker import _check_no_batchnorm

    class BatchNormalization:  # stands in for tf_keras.layers.BatchNormalization
        name = "bn_3"

    class Dense:
        name = "dense1"

    class Model:
        layers = [Dense(), BatchNormalization()]

    with pytest.raises(ValueError, match="'bn_3' is a BatchNormalization"):
        _check_no_batchnorm(Model())
    Model.layers = [Dense()]
    _check_no_batchnorm(Model())


def test_worker_module_imports_no_keras_or_tensorflow():
    code = ("import sys, keras_mi.baselines.dpsgd_worker; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('keras', 'tensorflow', 'tf_keras', 'tensorflow_privacy')]; "
            "assert not bad, bad; print('OK')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-2000:]
