"""Model outputs on disk: the seam between training and attacking.

A trained target (by keras-mi, by TF-Privacy's DP-SGD in its own process, or
by anyone else) is attacked from its logits and the true labels only, so
attacks never import training code. On disk this is one ``.npz`` file with
arrays named ``<split>_logits`` (float, ``(n, num_classes)``, pre-softmax)
and ``<split>_labels`` (int, ``(n,)``) for each split present; ``members`` and
``non_members`` are required, ``reference`` (the MMD validation set),
``test`` and ``shadow`` are optional. Plain numpy: no pickle.

:func:`predict_logits` is keras-mi's one way to get logits from a model (the
target's in :meth:`ModelOutputs.from_model`, a shadow's, the training
monitor's); it refuses softmax outputs, which the attacks would misread.
"""

from __future__ import annotations

import dataclasses
import pathlib
import warnings
from typing import Dict, Optional, Tuple

import numpy as np

from keras_mi._atomic import atomic_save_npz

SPLITS = ("members", "non_members", "reference", "test", "shadow")
REQUIRED_SPLITS = ("members", "non_members")


def looks_like_probabilities(outputs, atol: float = 1e-3) -> bool:
    """True when every row of ``outputs`` is non-negative and sums to 1.

    Softmax outputs always pass; logits of a trained or freshly initialised
    model essentially never do on more than a row or two.

    Example:
      >>> looks_like_probabilities(np.array([[0.25, 0.75], [1.0, 0.0]]))
      True
    """
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim < 2 or out.shape[-1] < 2 or not out.size:
        return False
    return bool(np.all(out >= 0.0) and np.allclose(out.sum(axis=-1), 1.0, atol=atol))


def probabilities_to_logits(probs) -> np.ndarray:
    """``log(p)``: logits whose softmax is ``p`` (zeros clipped to float32's tiny).

    Example:
      >>> np.exp(probabilities_to_logits([[0.25, 0.75]])).round(2).tolist()
      [[0.25, 0.75]]
    """
    probs = np.asarray(probs, dtype=np.float64)
    return np.log(np.clip(probs, np.finfo(np.float32).tiny, None)).astype(np.float32)


#: What :func:`predict_logits` does with outputs that look like probabilities.
ON_PROBABILITIES = ("raise", "warn", "ignore")


def predict_logits(model, x, batch_size: int = 1024, *, dtype=None,
                   on_probabilities: str = "raise") -> np.ndarray:
    """The logits of ``model`` on ``x``: ``model.predict``, or a plain callable.

    Args:
      model: a Keras model (anything with ``predict(x, batch_size=, verbose=)``
        or ``predict(x)``) or a callable ``model(x)``, ending in logits.
      x: the inputs.
      batch_size: for ``model.predict``.
      dtype: cast the outputs to this dtype first (``None`` keeps the model's).
      on_probabilities: ``"raise"`` (default), ``"warn"`` or ``"ignore"`` when
        every row is non-negative and sums to 1 (a model ending in softmax).

    Returns:
      ``(n, num_classes)`` finite logits.

    Raises:
      ValueError: outputs not ``(len(x), classes)``, NaN or inf, or (with
        ``on_probabilities="raise"``) softmax outputs.

    Example:
      >>> predict_logits(lambda v: v * 2.0, np.array([[1.0, -1.0]])).tolist()
      [[2.0, -2.0]]
      >>> predict_logits(lambda v: v, np.array([[0.25, 0.75]]))  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: the model's outputs look like probabilities ...
    """
    if on_probabilities not in ON_PROBABILITIES:
        raise ValueError(f"on_probabilities must be one of {ON_PROBABILITIES}, "
                         f"got {on_probabilities!r}.")
    x = np.asarray(x)
    if hasattr(model, "predict"):
        try:
            out = model.predict(x, batch_size=batch_size, verbose=0)
        except TypeError:
            out = model.predict(x)
    elif callable(model):
        out = model(x)
    else:
        raise ValueError("the model must have .predict or be a callable.")
    out = np.asarray(out) if dtype is None else np.asarray(out, dtype=dtype)
    if out.ndim != 2 or len(out) != len(x):
        raise ValueError(f"the model must output (n, classes) logits; got {out.shape}.")
    if not np.all(np.isfinite(out)):
        raise ValueError("the model output NaN or inf logits; check its training.")
    if on_probabilities != "ignore" and looks_like_probabilities(out):
        message = ("the model's outputs look like probabilities (non-negative, each row sums "
                   "to 1: it ends in softmax); attacks expect logits: drop the final softmax "
                   "(or convert them with probabilities_to_logits).")
        if on_probabilities == "raise":
            raise ValueError(message)
        warnings.warn(message, stacklevel=2)
    return out


@dataclasses.dataclass
class ModelOutputs:
    """Logits and integer labels of one model on each split.

    Attributes:
      logits: split name -> ``(n, num_classes)`` float array of logits.
      labels: split name -> ``(n,)`` int array of true labels.

    Example:
      >>> out = ModelOutputs.from_arrays(
      ...     members=(np.zeros((2, 3)), np.array([0, 1])),
      ...     non_members=(np.zeros((2, 3)), np.array([2, 0])))
      >>> out.num_classes
      3
    """

    logits: Dict[str, np.ndarray]
    labels: Dict[str, np.ndarray]

    def __post_init__(self):
        for split in REQUIRED_SPLITS:
            if split not in self.logits:
                raise ValueError(f"ModelOutputs needs the '{split}' split.")
        num_classes = None
        for split, logits in self.logits.items():
            if split not in SPLITS:
                raise ValueError(f"Unknown split '{split}'; expected one of {SPLITS}.")
            logits = np.asarray(logits)
            labels = np.asarray(self.labels.get(split))
            if logits.ndim != 2 or labels.ndim != 1 or len(logits) != len(labels):
                raise ValueError(
                    f"Split '{split}': logits must be (n, classes) and labels (n,), "
                    f"got {logits.shape} and {labels.shape}.")
            if num_classes is None:
                num_classes = logits.shape[1]
            elif logits.shape[1] != num_classes:
                raise ValueError(
                    f"Split '{split}' has {logits.shape[1]} classes, others {num_classes}.")
            if not np.all(np.isfinite(logits)):
                raise ValueError(f"Split '{split}': logits contain NaN or inf.")
            if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
                raise ValueError(
                    f"Split '{split}': labels must lie in [0, {num_classes}).")
            self.logits[split] = logits
            self.labels[split] = labels.astype(np.int64)

    @property
    def num_classes(self) -> int:
        return self.logits["members"].shape[1]

    @classmethod
    def from_arrays(cls, **splits: Tuple[np.ndarray, np.ndarray]) -> "ModelOutputs":
        """Builds from ``split=(logits, labels)`` keyword arguments."""
        return cls(logits={k: v[0] for k, v in splits.items() if v is not None},
                   labels={k: v[1] for k, v in splits.items() if v is not None})

    @classmethod
    def from_model(cls, model, batch_size: int = 1024, from_logits: bool = True,
                   **splits: Tuple[np.ndarray, np.ndarray]) -> "ModelOutputs":
        """Runs the model on each ``split=(x, y)`` (:func:`predict_logits`).

        Args:
          model: a model ending in logits (or in softmax, with
            ``from_logits=False``: its probabilities ``p`` become ``log(p)``,
            the same softmax, so the same attack scores).
          batch_size: for ``model.predict``.
          from_logits: whether the model outputs logits.
          **splits: ``split=(x, y)`` for each split (``None`` skips one).

        Raises:
          ValueError: ``from_logits=True`` but every split's outputs are
            non-negative and sum to 1 per row (a softmax model).

        Example:
          >>> out = ModelOutputs.from_model(lambda v: v, members=(np.eye(2), [0, 1]),
          ...                               non_members=(np.eye(2)[::-1] * 3, [0, 1]))
          >>> out.logits["non_members"].tolist()
          [[0.0, 3.0], [3.0, 0.0]]
        """
        logits = {name: predict_logits(model, xy[0], batch_size, on_probabilities="ignore")
                  for name, xy in splits.items() if xy is not None}
        if not from_logits:
            logits = {name: probabilities_to_logits(v) for name, v in logits.items()}
        elif logits and all(looks_like_probabilities(v) for v in logits.values()):
            raise ValueError(
                "expected logits, but the model's outputs are non-negative and sum to 1 per row "
                "(it ends in softmax): pass from_logits=False, or a model without the final "
                "softmax.")
        return cls.from_arrays(**{name: (logits[name], np.asarray(xy[1]))
                                  for name, xy in splits.items() if xy is not None})

    def save_npz(self, path) -> None:
        """Writes atomically (temp file + rename), so a crash never leaves half a file."""
        path = pathlib.Path(path)
        arrays = {}
        for split in self.logits:
            arrays[f"{split}_logits"] = self.logits[split]
            arrays[f"{split}_labels"] = self.labels[split]
        atomic_save_npz(path, **arrays)

    @classmethod
    def load_npz(cls, path) -> "ModelOutputs":
        """Reads a file written by :meth:`save_npz`, checked as on construction.

        Raises:
          FileNotFoundError: no file at ``path``.
          ValueError: the file is truncated, not an npz of this layout, or
            its arrays are inconsistent; the message names the file.
        """
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No model outputs file at {path}.")
        try:
            with np.load(path, allow_pickle=False) as data:
                logits, labels = {}, {}
                for split in SPLITS:
                    if f"{split}_logits" in data:
                        logits[split] = data[f"{split}_logits"]
                        labels[split] = data[f"{split}_labels"]
            return cls(logits=logits, labels=labels)
        except Exception as err:  # zipfile, zlib, KeyError and ours: all mean a bad file
            raise ValueError(f"{path} is not a readable ModelOutputs file "
                             f"({type(err).__name__}: {err}).") from err

    def get(self, split: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """``(logits, labels)`` of a split, or None when absent."""
        if split not in self.logits:
            return None
        return self.logits[split], self.labels[split]
