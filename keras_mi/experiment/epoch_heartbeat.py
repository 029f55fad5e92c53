"""A Keras callback that prints a line now and then while a quiet fit runs.

The bank protocol fits its models with ``verbose=0`` (a Location bank of 16
models of 30 epochs would print hundreds of progress lines a minute), but a
CIFAR-10 AlexNet bank model can take ten minutes on two CPU cores: without
a line now and then a run looks hung. This module imports Keras; import it
where a model is fitted.
"""

from __future__ import annotations

import math
import time

import keras


class EpochHeartbeat(keras.callbacks.Callback):
    """Prints ``epoch e/E, loss ..., elapsed`` at most once per ``every_s`` seconds.

    Quiet for fits shorter than ``every_s``; at most one line per epoch.

    Args:
      every_s: the least number of seconds between two lines (> 0).
      prefix: what each line starts with (e.g. which bank model it is).
      write: where the lines go (default ``print`` with ``flush=True``).

    Raises:
      ValueError: ``every_s`` is not a positive finite number.

    Example:
      >>> model.fit(x, y, epochs=150, verbose=0,
      ...           callbacks=[EpochHeartbeat(60, prefix="  bank model 3:")])  # doctest: +SKIP
    """

    def __init__(self, every_s: float = 60.0, prefix: str = "", write=None):
        super().__init__()
        if not (isinstance(every_s, (int, float)) and every_s > 0 and math.isfinite(every_s)):
            raise ValueError(f"every_s must be a positive number of seconds; got {every_s!r}.")
        self.every_s, self.prefix = float(every_s), prefix
        self._write = write or (lambda line: print(line, flush=True))
        self._start = self._last = 0.0

    def on_train_begin(self, logs=None):
        self._start = self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        if now - self._last < self.every_s:
            return
        self._last = now
        epochs = (self.params or {}).get("epochs", "?")
        loss = (logs or {}).get("loss")
        shown = "" if loss is None else f", loss {float(loss):.4f}"
        head = f"{self.prefix} " if self.prefix else ""
        self._write(f"{head}epoch {epoch + 1}/{epochs}{shown}, {now - self._start:.0f} s")
