"""Synthetic pools for the experiment tests (tiny, trained in seconds)."""

import numpy as np


def three_class(n, seed):
    """A noisy 3-class task on 8 Gaussian features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = np.digitize(x[:, 0] + 0.5 * rng.normal(size=n), [-0.5, 0.5]).astype(np.int64)
    return x, y
