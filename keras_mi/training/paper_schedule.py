"""The paper's alternating MMD schedule, inside one `model.fit` call.

The official code trains each epoch with an ordinary (or mixup) pass, then,
only if train accuracy - validation accuracy >= 3 points, makes a second
pass over the training data with MMD-only steps; the last epoch gets no MMD
pass. `PaperSchedule` reproduces this in one `fit`: it is a callback whose
`on_epoch_end` computes the gap and, when it triggers, runs the MMD-only
pass through `MMDModel.mmd_only_pass`. This works on TensorFlow (including
`tf.distribute`) and JAX, because at `on_epoch_end` both trainers have
synced their state back into the model's variables, and the next epoch
reads it from there.

Validation accuracy comes from ``val_<accuracy>`` when `fit` has
``validation_data``; otherwise it is measured on the reference set, as the
paper does (its validation set *is* the reference set).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from keras_mi.training.callbacks import AccuracyGap

__all__ = ["PaperSchedule", "iterate_batches"]


def _to_numpy(t):
    return np.asarray(t)


def iterate_batches(x, y, batch_size=None, steps=None, seed=None):
    """Yields ``(x_batch, y_batch)`` over one pass of fit-style training data.

    ``x`` may be arrays (with ``y``; shuffled with ``seed``), a
    `tf.data.Dataset` yielding ``(x, y[, sample_weight])`` or a
    `keras.utils.PyDataset`. ``steps`` caps the number of batches.

    Example:
      >>> import numpy as np
      >>> [b[1].tolist() for b in iterate_batches(np.zeros((3, 1)), np.arange(3), 2, seed=None)]
      [[0, 1], [2]]
    """
    count = 0
    if hasattr(x, "element_spec"):  # tf.data.Dataset
        source = iter(x)
    elif isinstance(x, keras.utils.PyDataset):
        source = (x[i] for i in range(len(x)))
    else:
        if y is None:
            raise ValueError(
                "The paper schedule needs labels: call fit(x, y) or fit(dataset of (x, y))."
            )
        n = int(np.shape(keras.tree.flatten(x)[0])[0])
        order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
        batch_size = batch_size or 32

        def gen():
            for s in range(0, n, batch_size):
                rows = order[s : s + batch_size]
                yield (
                    keras.tree.map_structure(lambda t: np.asarray(t)[rows], x),
                    np.asarray(y)[rows],
                )

        source = gen()
    for batch in source:
        if steps is not None and count >= steps:
            break
        if isinstance(batch, dict) or not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("The paper schedule needs batches of (x, y) or (x, y, sample_weight).")
        count += 1
        yield keras.tree.map_structure(_to_numpy, batch[0]), _to_numpy(batch[1])


def _training_rows(x, y, fit_kwargs):
    """``(x, y)`` without the rows `fit` holds out for ``validation_split``.

    Keras validates on the last ``validation_split`` fraction of array
    inputs when no ``validation_data`` is given; the MMD-only pass must not
    walk those rows. Datasets and generators cannot be split by `fit`.
    """
    split = fit_kwargs.get("validation_split") or 0.0
    if not split or fit_kwargs.get("validation_data") is not None or y is None:
        return x, y
    if hasattr(x, "element_spec") or isinstance(x, keras.utils.PyDataset):
        return x, y
    n = int(np.shape(keras.tree.flatten(x)[0])[0])
    keep = int(math.floor(n * (1.0 - float(split))))  # the split point of fit
    return keras.tree.map_structure(lambda t: t[:keep], x), y[:keep]


class PaperSchedule(AccuracyGap):
    """Runs an MMD-only pass after each epoch whose accuracy gap is large.

    Added automatically by `MMDModel.fit` when ``schedule="paper"``; writes
    ``gap``, ``mmd_pass`` (1.0 if a pass ran) and ``mmd_pass_mmd`` (mean
    MMD² over the pass, NaN when none ran) into the epoch logs.

    Args:
      x: The ``x`` given to `fit` (arrays, `tf.data.Dataset`,
        `PyDataset`).
      y: The ``y`` given to `fit` (arrays) or ``None``.
      fit_kwargs: The other `fit` arguments (``batch_size``,
        ``steps_per_epoch``, ``shuffle`` are used; with
        ``validation_split`` the MMD-only pass skips the held-out rows).
      accuracy: Log key of the train accuracy.

    Example:
      >>> MMDModel(net, reference=(xv, yv), schedule="paper").fit(x, y)  # doctest: +SKIP
    """

    def __init__(self, x, y, fit_kwargs, accuracy=None):
        super().__init__(accuracy=accuracy)
        self.fit_kwargs = dict(fit_kwargs)
        self.x, self.y = _training_rows(x, y, self.fit_kwargs)

    def _reference_accuracy(self):
        model = self.model
        ref = model.reference
        pred = model.predict(ref.x, batch_size=256, verbose=0)
        labels = keras.ops.convert_to_numpy(ref.labels)
        return float(np.mean(np.argmax(pred, axis=-1) == labels))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        train_acc, val_acc = self.train_and_val_accuracy(logs)
        if train_acc is None:
            raise RuntimeError(
                "The paper schedule needs a train accuracy metric in the logs; "
                "compile(..., metrics=['accuracy'])."
            )
        if val_acc is None:
            val_acc = self._reference_accuracy()
        gap = train_acc - val_acc
        logs["gap"] = gap
        last = epoch >= self.params.get("epochs", epoch + 1) - 1
        ran = gap >= self.model.gap_threshold and not last
        logs["mmd_pass"] = 1.0 if ran else 0.0
        logs["mmd_pass_mmd"] = self._mmd_pass(epoch) if ran else float("nan")

    def _mmd_pass(self, epoch):
        model = self.model
        seed = None
        if self.fit_kwargs.get("shuffle", True):
            seed = (0 if model.seed is None else int(model.seed)) * 100003 + epoch
        batches = iterate_batches(
            self.x,
            self.y,
            batch_size=self.fit_kwargs.get("batch_size"),
            steps=self.fit_kwargs.get("steps_per_epoch"),
            seed=seed,
        )
        return model.mmd_only_pass(batches)
