"""Auditing train_dpsgd_keras with a canary: the empirical ε lower bound
(keras_mi.baselines.audit) must not exceed the accountant's ε.

The runs train in one ``KERAS_BACKEND=jax`` subprocess (the test process runs
Keras on TensorFlow). Design, chosen so the audit is as tight as it gets
cheaply and the neighbouring datasets are exactly the ones the accountant
covers (add/remove one record, same sampling rate):

* a bias-free linear model from zero weights, 20 records, full batches
  (``q = 1``, no subsampling amplification), 2 steps;
* the canary sits alone in an input dimension the other records never use,
  with a gradient far above the clipping norm; "canary out" puts an all-zero
  record in its slot instead, whose gradient is exactly zero (no bias), so
  the out-runs are DP-SGD on the dataset without the canary, at the same
  ``n`` and ``q``;
* the attack score is the canary's negated loss under the final model.

With ``runs`` seeds per side the bound can reach about
``log((runs / 2) / log(40))``: 64 runs per side can show more than the
accountant's ε at σ = 3, which the control (σ = 0.1) checks, so a trainer
adding far too little noise would fail this test.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from keras_mi.baselines.audit import empirical_epsilon

pytest.importorskip("jax")
pytest.importorskip("dp_accounting")

RUNS = 64
DELTA = 1e-3

CANARY_RUNS = r"""
import json, sys
import numpy as np
import keras
assert keras.backend.backend() == "jax"
from keras_mi.baselines.dpsgd_keras import train_dpsgd_keras

def canary_scores(noise, runs, with_canary):
    rng = np.random.default_rng(0)
    x = np.zeros((20, 6), "float32")
    x[1:, :5] = rng.normal(size=(19, 5))
    y = rng.integers(0, 2, 20)
    y[0] = 1
    canary = np.zeros(6, "float32")
    canary[5] = 10.0
    if with_canary:
        x[0] = canary  # else x[0] = 0: exactly zero gradient, the canary is absent
    scores, eps = [], None
    for seed in range(runs):
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(
            2, use_bias=False, kernel_initializer="zeros")])
        r = train_dpsgd_keras(model, x, y, noise_multiplier=noise, l2_norm_clip=1.0,
                              batch_size=20, epochs=2, learning_rate=1.0, delta=DELTA,
                              seed=seed + (10**6 if with_canary else 0))
        logits = np.asarray(model(canary[None]))[0].astype(float)
        scores.append(float(logits[1] - np.logaddexp(logits[0], logits[1])))  # -loss
        eps = r.epsilon
    return scores, eps

out = {}
for noise in (3.0, 0.1):
    members, eps = canary_scores(noise, RUNS, True)
    non_members, _ = canary_scores(noise, RUNS, False)
    out[str(noise)] = {"members": members, "non_members": non_members, "epsilon": eps}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax_cache")  # identical steps compile once
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
           "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    code = f"RUNS, DELTA = {RUNS}, {DELTA}\n" + textwrap.dedent(CANARY_RUNS)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_canary_lower_bound_does_not_exceed_the_accountant(canary):
    run = canary["3.0"]
    audit = empirical_epsilon(run["members"], run["non_members"], delta=DELTA)
    assert 1.0 < run["epsilon"] < 2.0  # σ = 3, two full-batch steps: a small ε
    assert audit.epsilon <= run["epsilon"], audit


def test_the_audit_has_power_against_too_little_noise(canary):
    # Same runs with σ = 0.1: the canary is plain to see, and the bound
    # exceeds what the σ = 3 accountant allows (so that test can fail).
    run = canary["0.1"]
    audit = empirical_epsilon(run["members"], run["non_members"], delta=DELTA)
    assert audit.epsilon > canary["3.0"]["epsilon"], audit
    assert audit.epsilon <= run["epsilon"]
