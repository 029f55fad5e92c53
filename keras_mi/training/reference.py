"""The held-out reference set of the MMD defense, sorted by class.

`ReferenceSet` keeps the reference inputs as backend tensors sorted by
class, with each class's start offset and count, so a train step can draw a
class-matched reference batch with a few gathers. It is deliberately not a
Keras variable: it is not written into `.keras` files (a CIFAR reference set
would add ~120 MB) and a loaded model must be given one again with
`MMDModel.set_reference` before `fit`.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops

__all__ = ["ReferenceSet", "labels_to_int"]


def labels_to_int(y, num_classes=None, what="labels") -> np.ndarray:
    """Converts int labels, ``(n, 1)`` int labels or one-hot/soft rows to ints.

    Soft rows (mixup) map to their argmax. Raises `ValueError` on NaN,
    negative labels, labels ``>= num_classes`` or a one-hot width that does
    not match ``num_classes``.

    Example:
      >>> labels_to_int([[0.2, 0.8], [1.0, 0.0]]).tolist()
      [1, 0]
    """
    y = np.asarray(
        keras.ops.convert_to_numpy(y) if not isinstance(y, (np.ndarray, list, tuple)) else y
    )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:
        if np.isnan(y).any():
            raise ValueError(f"{what} contain NaN; fix the data before training.")
        if num_classes is not None and y.shape[1] != num_classes:
            raise ValueError(
                f"{what} are one-hot/soft rows of width {y.shape[1]} but the model has "
                f"{num_classes} outputs; give labels as ints in [0, {num_classes}) or rows of "
                f"width {num_classes}."
            )
        return np.argmax(y, axis=1).astype(np.int64)
    if y.ndim != 1:
        raise ValueError(
            f"{what} must be ints of shape (n,) or (n, 1), or one-hot/soft rows of shape "
            f"(n, num_classes); received shape {y.shape}."
        )
    if y.dtype.kind == "f":
        if np.isnan(y).any():
            raise ValueError(f"{what} contain NaN; fix the data before training.")
        if not np.all(y == np.round(y)):
            raise ValueError(f"{what} are 1-D floats with fractional values; give int class ids.")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(
            f"{what} contain the negative class id {int(y.min())}; use ids in [0, num_classes)."
        )
    if num_classes is not None and y.size and y.max() >= num_classes:
        raise ValueError(
            f"{what} contain class id {int(y.max())} but the model has {num_classes} outputs; "
            f"use ids in [0, {num_classes})."
        )
    return y


@dataclasses.dataclass(frozen=True)
class ReferenceSet:
    """A reference set sorted by class, ready for class-matched sampling.

    Attributes:
      x: Backend tensor (or nested structure of tensors) of inputs, sorted
        by class.
      labels: Backend int32 tensor ``(n,)``, sorted.
      offsets: Backend int32 tensor ``(num_classes,)``: start row of class c.
      counts: Backend int32 tensor ``(num_classes,)``: rows of class c.
      strides: Backend int32 tensor of primes larger than every class
        count (so each is coprime with every count); a sampler walks a
        class block with a random offset and one of these strides.
      class_counts: The same counts as a NumPy array (for checks).
      feature_shapes: Per-example input shapes (for checks).

    Example:
      >>> import numpy as np
      >>> ref = ReferenceSet.create(np.zeros((4, 2)), np.array([1, 0, 1, 0]), num_classes=2)
      >>> ref.class_counts.tolist()
      [2, 2]
    """

    x: object
    labels: object
    offsets: object
    counts: object
    strides: object
    class_counts: np.ndarray
    feature_shapes: tuple

    @property
    def num_examples(self) -> int:
        """Number of reference examples."""
        return int(self.class_counts.sum())

    @property
    def num_classes(self) -> int:
        """Number of classes the offsets/counts cover."""
        return int(self.class_counts.shape[0])

    @classmethod
    def create(cls, x, y, num_classes=None, seed=None) -> "ReferenceSet":
        """Validates ``(x, y)``, sorts it by class and moves it to the backend.

        Within each class the rows are shuffled with ``seed``.
        """
        flat = keras.tree.flatten(x)
        if not flat:
            raise ValueError("The reference inputs are empty; pass reference=(x_ref, y_ref).")
        arrays = [np.asarray(keras.ops.convert_to_numpy(t)) for t in flat]
        n = arrays[0].shape[0] if arrays[0].ndim else 0
        if n == 0:
            raise ValueError("The reference set is empty; it needs examples of every class.")
        for a in arrays:
            if a.shape[0] != n:
                raise ValueError(
                    "Reference inputs disagree on the number of rows: "
                    f"{[a.shape[0] for a in arrays]}."
                )
            if a.dtype.kind == "f" and np.isnan(a).any():
                raise ValueError("The reference inputs contain NaN; clean them before training.")
        labels = labels_to_int(y, num_classes=num_classes, what="Reference labels")
        if labels.shape[0] != n:
            raise ValueError(
                f"The reference set has {n} inputs but {labels.shape[0]} labels; they must match."
            )
        k = int(num_classes) if num_classes is not None else int(labels.max()) + 1
        shuffle = np.random.default_rng(seed).permutation(n)
        order = shuffle[np.argsort(labels[shuffle], kind="stable")]
        counts = np.bincount(labels, minlength=k).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        sorted_arrays = [ops.convert_to_tensor(a[order]) for a in arrays]
        return cls(
            x=keras.tree.pack_sequence_as(x, sorted_arrays)
            if len(flat) > 1 or not _is_leaf(x)
            else sorted_arrays[0],
            labels=ops.convert_to_tensor(labels[order].astype(np.int32)),
            offsets=ops.convert_to_tensor(offsets.astype(np.int32)),
            counts=ops.convert_to_tensor(counts.astype(np.int32)),
            strides=ops.convert_to_tensor(_primes_above(int(counts.max()), 64).astype(np.int32)),
            class_counts=counts,
            feature_shapes=tuple(tuple(a.shape[1:]) for a in arrays),
        )


def _primes_above(n: int, count: int) -> np.ndarray:
    """The ``count`` smallest primes greater than ``max(n, 1000)``."""
    primes = []
    candidate = max(n, 1000) + 1
    while len(primes) < count:
        if candidate > 1 and all(candidate % d for d in range(2, int(candidate**0.5) + 1)):
            primes.append(candidate)
        candidate += 1
    return np.asarray(primes, dtype=np.int64)


def _is_leaf(x) -> bool:
    return not isinstance(x, (list, tuple, dict))
