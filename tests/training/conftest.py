"""Small synthetic data and models for the MMDModel tests."""

import keras
import numpy as np
import pytest


@pytest.fixture
def toy():
    """(x, y) with 4 separable-ish classes and 12 features; 480 rows."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 480)
    x = rng.normal(size=(480, 12)).astype("float32")
    x[np.arange(480), y] += 2.0
    return x, y


def _make_net(seed=0, features=12, classes=4):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.Dense(32, activation="tanh"),
            keras.layers.Dense(classes),
        ]
    )


@pytest.fixture
def make_net():
    """Factory of a small tanh MLP ending in logits."""
    return _make_net
