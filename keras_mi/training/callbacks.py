"""Callbacks that write the train/validation accuracy gap into ``logs``."""

from __future__ import annotations

import keras

__all__ = ["ACCURACY_NAMES", "AccuracyGap"]

#: Log keys an accuracy metric may have, in the order they are looked for.
ACCURACY_NAMES = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy")


class AccuracyGap(keras.callbacks.Callback):
    """Adds ``logs["gap"] = train accuracy - validation accuracy`` per epoch.

    The gap (a fraction; 0.03 is 3 points) is the overfitting signal the
    paper's MMD schedule watches. It is written into the epoch ``logs``, so
    `History`, `CSVLogger` and `TensorBoard` record it when they come after
    this callback (`MMDModel.fit` puts it first). Nothing is written when the
    epoch has no validation accuracy.

    Args:
      accuracy: Log key of the train accuracy (``"accuracy"``...); found
        automatically when ``None``.

    Example:
      >>> model.fit(x, y, validation_data=(xv, yv), callbacks=[AccuracyGap()])  # doctest: +SKIP
      >>> model.history.history["gap"]  # doctest: +SKIP
    """

    def __init__(self, accuracy=None):
        super().__init__()
        self.accuracy = accuracy

    def _key(self, logs):
        if self.accuracy is not None:
            return self.accuracy if self.accuracy in logs else None
        for key in ACCURACY_NAMES:
            if key in logs:
                return key
        return None

    def train_and_val_accuracy(self, logs):
        """``(train_acc, val_acc)`` from ``logs``; either may be ``None``."""
        key = self._key(logs or {})
        if key is None:
            return None, None
        return float(logs[key]), (float(logs["val_" + key]) if "val_" + key in logs else None)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        train_acc, val_acc = self.train_and_val_accuracy(logs)
        if train_acc is not None and val_acc is not None:
            logs["gap"] = train_acc - val_acc
