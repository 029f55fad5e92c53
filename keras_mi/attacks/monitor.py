"""A Keras callback that attacks the model while it trains (the attack monitor).

:class:`AttackMonitor` runs cheap threshold attacks on a fixed held-out sample
of members and non-members every few epochs and writes their metrics into
the epoch ``logs`` (``mia_loss_auc``, ``mia_loss_advantage``, ...), so
``History``, ``CSVLogger``, ``TensorBoard`` and ``EarlyStopping`` see them
like any other metric. It never prints. (Training-side callbacks, such as
the accuracy-gap stopper, live in :mod:`keras_mi.training.callbacks`.)
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Sequence, Tuple

import keras
import numpy as np

from keras_mi.attacks import metrics as _metrics
from keras_mi.attacks.runner import ATTACKS, run
from keras_mi.outputs import ModelOutputs, predict_logits

_METRICS = ("auc", "advantage", "best_accuracy")


def _sample(xy, size: Optional[int], rng: np.random.Generator, what: str):
    if not isinstance(xy, (tuple, list)) or len(xy) != 2:
        raise ValueError(f"{what} must be a tuple (x, y) of inputs and integer labels.")
    x, y = xy
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{what} labels must be integer class indices of shape (n,), got "
                         f"{y.shape}; convert one-hot labels with argmax(axis=1).")
    if len(y) == 0 or len(x) != len(y):
        raise ValueError(f"{what} needs a non-empty x and y of equal length, got "
                         f"{len(x)} and {len(y)}.")
    if size is None or size >= len(y):
        return x, y
    idx = np.sort(rng.choice(len(y), size=size, replace=False))
    return (x[idx] if not isinstance(x, (list, tuple)) else [xi[idx] for xi in x]), y[idx]


class AttackMonitor(keras.callbacks.Callback):
    """Writes membership-attack metrics into the training logs.

    On epochs ``0, every, 2*every, ...`` it predicts logits on a fixed sample
    of ``members`` and ``non_members`` (and ``reference``, if given), runs the
    chosen attacks and sets ``logs[f"{prefix}{attack}_{metric}"]``; reference
    rows use ``f"{prefix}ref_{attack}_{metric}"``. On the epochs in between
    it repeats the last values, so every epoch has the same keys (as
    ``CSVLogger`` requires). Put it **before** ``CSVLogger``,
    ``EarlyStopping`` or ``TensorBoard`` in the callbacks list so they see the
    keys. ``self.history`` keeps ``{epoch: {key: value}}`` of the epochs
    actually evaluated.

    Args:
      members: ``(x, y)`` training records to test (a held-out *sample* of
        the training set, not data the model has not seen).
      non_members: ``(x, y)`` records the model never trains on.
      attacks: names of global attacks, e.g. ``("loss", "entropy")``.
      every: evaluate every ``every`` epochs.
      sample: at most this many records per side, fixed by ``seed``.
      metrics: which of ``"auc"``, ``"advantage"``, ``"best_accuracy"``.
      fpr_targets: also log ``{prefix}{attack}_tpr_at_{fpr:g}``.
      reference: optional ``(x, y)`` MMD reference records.
      batch_size: for ``model.predict``.
      prefix: log-key prefix.
      seed: seed of the sample.

    Example:
      >>> monitor = AttackMonitor((x_tr[:500], y_tr[:500]), (x_te[:500], y_te[:500]),
      ...                         attacks=("loss",), every=2)  # doctest: +SKIP
      >>> history = model.fit(x_tr, y_tr, epochs=10, callbacks=[monitor])  # doctest: +SKIP
      >>> history.history["mia_loss_auc"]  # doctest: +SKIP
    """

    def __init__(self, members: Tuple, non_members: Tuple,
                 attacks: Sequence[str] = ("loss", "entropy"), every: int = 1,
                 sample: Optional[int] = 1000, metrics: Sequence[str] = ("auc", "advantage"),
                 fpr_targets: Iterable[float] = (), reference: Optional[Tuple] = None,
                 batch_size: int = 1024, prefix: str = "mia_", seed: int = 0):
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"every must be >= 1 (epochs), got {every}.")
        if sample is not None and int(sample) < 1:
            raise ValueError(f"sample must be None or >= 1, got {sample}.")
        bad = [m for m in metrics if m not in _METRICS]
        if bad:
            raise ValueError(f"Unknown metric(s) {bad}; choose from {_METRICS}.")
        attacks = (attacks,) if isinstance(attacks, str) else tuple(attacks)
        bad = [a for a in attacks if a not in ATTACKS or ATTACKS[a].needs_shadow]
        if bad:
            raise ValueError(f"AttackMonitor runs attacks without shadow models; got {bad}. "
                             "Use e.g. 'loss', 'confidence', 'entropy', 'modified_entropy', 'gap'.")
        self.attacks = attacks
        self.every = int(every)
        self.sample = None if sample is None else int(sample)
        self.metrics = tuple(metrics)
        self.fpr_targets = tuple(float(t) for t in fpr_targets)
        self.batch_size = int(batch_size)
        self.prefix = prefix
        self.seed = seed
        rng = np.random.default_rng(seed)
        self._members = _sample(members, self.sample, rng, "members")
        self._non_members = _sample(non_members, self.sample, rng, "non_members")
        self._reference = (None if reference is None
                           else _sample(reference, self.sample, rng, "reference"))
        self._last: Dict[str, float] = {}
        self.history: Dict[int, Dict[str, float]] = {}

    def _logits(self, xy):
        return predict_logits(self.model, xy[0], self.batch_size)

    def evaluate(self) -> Dict[str, float]:
        """Runs the attacks on the current model; returns the log entries."""
        splits = {"members": (self._logits(self._members), self._members[1]),
                  "non_members": (self._logits(self._non_members), self._non_members[1])}
        if self._reference is not None:
            splits["reference"] = (self._logits(self._reference), self._reference[1])
        targets = self.fpr_targets or _metrics.DEFAULT_FPR_TARGETS
        report = run(ModelOutputs.from_arrays(**splits), self.attacks, fpr_targets=targets,
                     check_reference=self._reference is not None)
        values = {}
        for r in report:
            stem = self.prefix + ("" if r.is_membership else "ref_") + r.name
            for m in self.metrics:
                values[f"{stem}_{m}"] = float(getattr(r, m))
            for t in self.fpr_targets:
                values[f"{stem}_tpr_at_{t:g}"] = float(r.tpr_at_fpr[t])
        return values

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.every == 0 or not self._last:
            self._last = self.evaluate()
            self.history[int(epoch)] = dict(self._last)
        if logs is not None:
            logs.update(self._last)
