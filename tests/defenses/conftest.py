"""Shared helpers of the defense tests: a NumPy gradient, a linear logits model, a JAX child."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest


def _np_grad(fun, w, eps=1e-6):
    """Central-difference gradient of the scalar ``fun`` at ``w`` (float64)."""
    g = np.zeros_like(w, dtype=np.float64)
    for idx in np.ndindex(*w.shape):
        hi, lo = w.astype(np.float64).copy(), w.astype(np.float64).copy()
        hi[idx] += eps
        lo[idx] -= eps
        g[idx] = (fun(hi) - fun(lo)) / (2 * eps)
    return g


def _linear(w):
    """A bias-free linear logits model ``x @ w``."""
    net = keras.Sequential([keras.Input((w.shape[0],)),
                            keras.layers.Dense(w.shape[1], use_bias=False)])
    net.layers[0].set_weights([w])
    return net


def _jax_child(code, timeout=300):
    """Runs ``code`` in a Python child with ``KERAS_BACKEND=jax``; its last ``RESULT`` json."""
    env = dict(os.environ, KERAS_BACKEND="jax")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture
def np_grad():
    """`_np_grad`: the NumPy reference gradient."""
    return _np_grad


@pytest.fixture
def linear():
    """`_linear`: builds a linear logits model from a weight matrix."""
    return _linear


@pytest.fixture
def jax_child():
    """`_jax_child`: the ``RESULT`` of a script run under the JAX backend."""
    return _jax_child
