"""Traps a Keras user met with `MMDModel`: a new reference set after tracing,
subclassed models, `BackupAndRestore`, TensorBoard, ``validation_split`` in
the paper schedule, softmax outputs taken for logits.

The scenarios live in `keras_scenarios.py`: they run here on TensorFlow and,
for the JAX backend, once in a subprocess (the backend is fixed at import).
"""

import importlib.metadata
import json
import os
import pathlib
import re
import subprocess
import sys

import keras
import keras_scenarios as sc
import numpy as np
import pytest

from keras_mi.attacks import run_on_model
from keras_mi.training import MMDModel

ROOT = pathlib.Path(__file__).resolve().parents[2]
BACKENDS = ["tensorflow", "jax"]


@pytest.fixture(scope="module")
def jax_results():
    """All scenarios on the JAX backend, in one subprocess (one JAX start-up)."""
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    proc = subprocess.run([sys.executable, sc.__file__], capture_output=True, text=True, env=env,
                          timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["backend"] == "jax"
    return out


@pytest.fixture
def scenario(request):
    """``scenario(name)``: the scenario's result on the test's backend."""
    backend = request.node.callspec.params["backend"]

    def get(name):
        if backend == "jax":
            out = request.getfixturevalue("jax_results")[name]
        else:
            assert keras.backend.backend() == "tensorflow"
            out = sc.SCENARIOS[name]()
        assert "error" not in out, out.get("error")
        return out

    return get


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_reference_after_fit_and_evaluate_is_used(backend, scenario):
    out = scenario("set_reference")
    # The two reference sets give clearly different MMD² (NumPy, see the scenario).
    assert abs(out["expected_b"] - out["expected_a"]) > 0.1
    assert out["fit_a"] == pytest.approx(out["expected_a"], rel=1e-4)
    assert out["eval_a"] == pytest.approx(out["expected_a"], rel=1e-4)
    # After set_reference, the already traced fit and evaluate use the new set.
    assert out["fit_b"] == pytest.approx(out["expected_b"], rel=1e-4)
    assert out["eval_b"] == pytest.approx(out["expected_b"], rel=1e-4)
    # Loaded without a reference, evaluated (mmd 0), then given one: val_mmd is its MMD².
    assert out["loaded_eval_none"] == 0.0
    assert out["loaded_val_a"] == pytest.approx(out["expected_a"], rel=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_subclassed_model_trains(backend, scenario):
    out = scenario("subclassed")
    for case in ("uncalled", "called"):
        assert out[case]["num_classes"] == sc.CLASSES
        assert len(out[case]["mmd"]) == 2 and all(0.0 < v < 2.0 for v in out[case]["mmd"])
        assert all(np.isfinite(out[case]["loss"]))
    # Calling the net first builds the same weights (same seed): same training.
    np.testing.assert_allclose(out["called"]["loss"], out["uncalled"]["loss"], rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backup_and_restore_resumes_mmd_model(backend, scenario):
    out = scenario("backup_and_restore")
    # Interrupted after epoch 2 of 4: the second fit restores those weights
    # (not the zeros set in between) and runs the remaining 2 epochs.
    assert out["weights_restored"] is True
    assert out["resumed_epochs"] == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_tensorboard_writes_mmd_gap_and_val_mmd(backend, scenario):
    out = scenario("tensorboard")
    history, train, val = out["history"], out["scalars"]["train"], out["scalars"]["validation"]
    np.testing.assert_allclose(train["epoch_mmd"], history["mmd"], rtol=1e-6)
    np.testing.assert_allclose(train["epoch_gap"], history["gap"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(val["epoch_mmd"], history["val_mmd"], rtol=1e-6)


def test_tensorboard_and_its_requirements_are_pinned():
    base = (ROOT / "requirements" / "base.in").read_text().split()
    lock = dict(
        line.split("==") for line in (ROOT / "requirements" / "lock.txt").read_text().split()
    )
    lock = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in lock.items()}
    assert "tensorboard" in base
    assert lock["tensorboard"] == importlib.metadata.version("tensorboard")
    assert (
        lock["tensorboard"].split(".")[:2]
        == importlib.metadata.version("tensorflow").split(".")[:2]
    )
    for req in importlib.metadata.requires("tensorboard"):
        name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", req).group()).lower()
        if name == "setuptools":  # pip freeze never lists it (nor does the lock for TensorFlow)
            continue
        assert lock.get(name) == importlib.metadata.version(name), name


def test_paper_schedule_mmd_pass_skips_validation_split(monkeypatch):
    x, y = sc.train_data(n=80)
    x[:, 0] = np.arange(80)  # row ids, to see which rows the MMD-only pass trains on
    xr, yr = sc.train_data(n=30, seed=5)
    xr[:, 0] = -1.0
    model = MMDModel(sc._net(), reference=(xr, yr), schedule="paper", gap_threshold=-1.0, seed=0)
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    seen = []
    real = model.train_on_batch

    def recording(xb, yb, **kwargs):
        seen.extend(np.asarray(xb)[:, 0].astype(int).tolist())
        return real(xb, yb, **kwargs)

    monkeypatch.setattr(model, "train_on_batch", recording)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.25).history
    assert history["mmd_pass"] == [1.0, 0.0]
    # fit validates on the last 20 rows; the MMD-only pass walks the first 60 once.
    assert sorted(seen) == list(range(60))


def _softmax_pair():
    logits_net = sc._net()
    softmax_net = keras.Sequential([logits_net, keras.layers.Softmax()])
    return logits_net, softmax_net


def test_mmd_model_refuses_softmax_outputs_and_trains_with_from_logits_false():
    x, y = sc.train_data()
    xr, yr = sc.train_data(seed=5)
    _, softmax_net = _softmax_pair()
    model = MMDModel(softmax_net, reference=(xr, yr), sigma=sc.SIGMA, seed=0)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="from_logits=False"):
        model.fit(x, y, batch_size=20, epochs=1, verbose=0)
    model = MMDModel(softmax_net, reference=(xr, yr), sigma=sc.SIGMA, from_logits=False, seed=0)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=False))
    mmd = model.fit(x, y, batch_size=20, epochs=1, verbose=0).history["mmd"][0]
    assert 0.0 < mmd < 2.0


def test_run_on_model_refuses_softmax_outputs_and_accepts_from_logits_false():
    x, y = sc.train_data()
    logits_net, softmax_net = _softmax_pair()
    members, non_members = (x[:30], y[:30]), (x[30:], y[30:])
    with pytest.raises(ValueError, match="from_logits=False"):
        run_on_model(softmax_net, members, non_members, attacks=["loss"])
    want = run_on_model(logits_net, members, non_members, attacks=["loss", "entropy"])
    got = run_on_model(
        softmax_net, members, non_members, attacks=["loss", "entropy"], from_logits=False
    )
    # log(softmax(z)) = z - logsumexp(z): the same softmax, so the same scores and AUCs.
    for name in ("loss", "entropy"):
        assert got.get(name).auc == pytest.approx(want.get(name).auc, abs=1e-6)
