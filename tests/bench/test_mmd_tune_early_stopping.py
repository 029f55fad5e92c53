"""bench/mmd_tune.py: early stopping keeps the best epoch; batch size and epochs per entry."""


import numpy as np
import pytest
from _bench_module import load_bench_module


@pytest.fixture(scope="module")
def mmd_tune():
    return load_bench_module("mmd_tune")


def _reference_loss(model, reference):
    logits = np.asarray(model.predict(reference[0], verbose=0), dtype=np.float64)
    logits -= logits.max(1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return float(-log_p[np.arange(len(reference[1])), reference[1]].mean())


@pytest.mark.parametrize("mmd", [{}, {"sigma": [0.1], "weight": 1.0}])
def test_early_stopping_returns_a_model_no_worse_on_the_reference_loss(mmd_tune, mmd):
    # Random labels: the members are memorized and the reference loss rises
    # after the first epochs, so a 40-epoch fit overfits it.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12)).astype("float32")
    y = rng.integers(0, 3, size=200)
    reference = (rng.normal(size=(150, 12)).astype("float32"), rng.integers(0, 3, size=150))
    full = mmd_tune.make_train_fn(mmd, reference, 3, epochs=40)(x, y, seed=3)
    stopped = mmd_tune.make_train_fn({**mmd, "early_stopping": 2}, reference, 3,
                                     epochs=40)(x, y, seed=3)
    assert _reference_loss(stopped, reference) < _reference_loss(full, reference) - 0.05


def test_batch_size_and_epoch_multiple_set_the_steps(mmd_tune):
    # 200 records at batch 64 for 2 x 3 epochs: 4 steps an epoch, 24 in all
    # (the default batch of 128 for 2 epochs would take 4).
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 12)).astype("float32")
    y = rng.integers(0, 3, size=200)
    reference = (x[:60], y[:60])
    model = mmd_tune.make_train_fn({"batch_size": 64, "epoch_multiple": 3}, reference, 3,
                                   epochs=2)(x, y, seed=0)
    assert int(model.optimizer.iterations.numpy()) == 24
    plain = mmd_tune.make_train_fn({}, reference, 3, epochs=2)(x, y, seed=0)
    assert int(plain.optimizer.iterations.numpy()) == 4
