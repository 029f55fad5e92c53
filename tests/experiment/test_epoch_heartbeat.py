"""EpochHeartbeat: a line now and then from a quiet fit, and none from a short one."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_mi.experiment.epoch_heartbeat import EpochHeartbeat  # noqa: E402


def _fit(callback, epochs=3):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.arange(16, dtype="float32").reshape(8, 2) / 16
    history = model.fit(x, np.arange(8) % 2, epochs=epochs, verbose=0, callbacks=[callback])
    return history.history["loss"]


def test_every_epoch_is_reported_when_the_interval_is_tiny():
    lines = []
    losses = _fit(EpochHeartbeat(1e-9, prefix="  mmd:", write=lines.append))
    assert [line.split(",")[0] for line in lines] == [f"  mmd: epoch {e}/3" for e in (1, 2, 3)]
    # the loss Keras logged for that epoch
    assert [float(line.split("loss ")[1].split(",")[0]) for line in lines] == pytest.approx(
        losses, abs=1e-4)
    assert all(line.endswith(" s") for line in lines)


def test_a_fit_shorter_than_the_interval_prints_nothing():
    lines = []
    _fit(EpochHeartbeat(3600, write=lines.append))
    assert lines == []


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), "60", None])
def test_bad_interval_is_refused(bad):
    with pytest.raises(ValueError, match="every_s must be a positive number"):
        EpochHeartbeat(bad)
