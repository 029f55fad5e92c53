"""`HAMPModel`: HAMP's training (Chen & Pattabiraman, NDSS 2024) inside `model.fit`.

HAMP trains on *high-entropy soft labels* and adds an entropy regularizer, so
the model learns to be unconfident on its members; at inference its outputs
are replaced (`keras_mi.defenses.hamp_outputs.HAMPOutputs`). The training
part, as in the authors' code (DependableSystemsLab/MIA_defense_HAMP,
``location/train-hamp.py``, ``train_pub``, ``get_top1``, ``get_soft_labels``):

* the soft label of class ``y`` puts ``top1`` on ``y`` and ``(1 − top1)/(K−1)``
  on every other class, with ``top1`` lowered from 1 in steps of
  ``increment`` (0.01) until the label's entropy reaches ``γ·log K``
  (`hamp_soft_label`);
* loss ``= F.kl_div(log_softmax(z), soft)`` with PyTorch's default
  ``reduction="mean"``, i.e. the KL divergence summed over classes and
  averaged over batch *and* classes, ``Σ_ik t_ik (log t_ik − log p_ik)/(B·K)``,
  minus ``α·mean_i H(p_i)``. The 1/K of that reduction is kept, so the
  authors' α means the same here.

The compiled loss is not used; compile with ``metrics=["accuracy"]``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_mi.training.wrapped_model import WrappedModel

__all__ = ["HAMPModel", "hamp_soft_label", "hamp_loss"]


def _check(gamma, alpha, increment):
    gamma = float(gamma)
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"HAMP `gamma` (the entropy percentile) must lie in (0, 1); received "
                         f"{gamma}. The authors use 0.5 (Location) to 0.95 (CIFAR-10).")
    alpha = float(alpha)
    if not (alpha >= 0.0 and math.isfinite(alpha)):
        raise ValueError(f"HAMP `alpha` (the entropy-regularizer weight) must be a finite number "
                         f">= 0; received {alpha}. The authors use 0.001.")
    increment = float(increment)
    if not 0.0 < increment <= 0.1:
        raise ValueError(f"HAMP `increment` must lie in (0, 0.1]; received {increment}.")
    return gamma, alpha, increment


def hamp_soft_label(num_classes, gamma, increment=0.01):
    """``(top1, rest)`` of HAMP's soft labels for ``K`` classes and percentile ``γ``.

    The authors' ``get_top1``: starting from a one-hot label, move
    ``increment`` of the top class's probability onto the others (evenly)
    until the entropy reaches ``γ·log K``. Done here as ``top1 = 1 − n·inc``
    with the smallest such integer ``n`` (no accumulated rounding).

    Args:
      num_classes: K >= 2.
      gamma: the entropy percentile γ in (0, 1).
      increment: the step of ``top1``, in (0, 0.1].

    Returns:
      ``(top1, rest)``: floats, ``top1 + (K − 1)·rest = 1``.

    Example:
      >>> top1, rest = hamp_soft_label(30, 0.5)
      >>> round(top1, 2), round(top1 + 29 * rest, 6)
      (0.68, 1.0)
    """
    k = int(num_classes)
    if k < 2:
        raise ValueError(f"HAMP needs >= 2 classes; received {num_classes}.")
    gamma, _, increment = _check(gamma, 0.0, increment)
    target = gamma * math.log(k)
    n = 0
    while True:
        n += 1
        top1 = 1.0 - n * increment
        rest = (1.0 - top1) / (k - 1)
        probs = np.array([top1] + [rest] * (k - 1))
        probs = probs[probs > 0]
        if -(probs * np.log(probs)).sum() >= target or top1 <= 1.0 / k:
            return float(top1), float(rest)


def hamp_loss(logits, soft_targets, alpha):
    """The authors' HAMP loss of one batch (see the module docstring).

    Args:
      logits: ``(batch, K)`` logits.
      soft_targets: ``(batch, K)`` soft labels (no zeros).
      alpha: weight of the entropy bonus.

    Returns:
      The scalar loss.
    """
    logp = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    t = ops.cast(soft_targets, "float32")
    kl = ops.mean(t * (ops.log(t) - logp))
    entropy = ops.mean(-ops.sum(ops.exp(logp) * logp, axis=-1))
    return kl - alpha * entropy


@keras.saving.register_keras_serializable(package="keras_mi")
class HAMPModel(WrappedModel):
    """Wraps a logits model and trains it with HAMP's soft labels and entropy bonus.

    Args:
      model: A Keras model mapping inputs to logits ``(batch, K)``.
      gamma: γ in (0, 1), the soft labels' entropy as a fraction of
        ``log K``. Authors' defaults: ``location/train-all.sh``
        ``--entropy_percentile 0.5`` (the default here),
        ``cifar10/train-all.sh`` 0.95.
      alpha: α >= 0, the entropy-regularizer weight; both scripts pass
        ``--alpha 0.001`` (the default).
      num_classes: K; ``None`` reads the model's output width.
      increment: the step of the soft label's search (authors: 0.01).
      **kwargs: Passed to `keras.Model`.

    Example:

    >>> import numpy as np, keras
    >>> x = np.random.rand(64, 5).astype("float32"); y = np.arange(64) % 3
    >>> net = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    >>> model = HAMPModel(net, gamma=0.5, alpha=0.001)
    >>> model.compile("sgd", metrics=["accuracy"])
    >>> _ = model.fit(x, y, epochs=1, batch_size=16, verbose=0)

    References:
      Chen & Pattabiraman, "Overconfidence is a Dangerous Thing: Mitigating
      Membership Inference Attacks by Enforcing Less Confident Prediction",
      NDSS 2024; code: github.com/DependableSystemsLab/MIA_defense_HAMP.

    Warning:
      The authors train HAMP with SGD at learning rate 0.5, momentum 0.99
      (``--distill_lr 0.5``, ``train-hamp.py``); that is the run's recipe, not
      part of this wrapper. Sample weights are refused.
    """

    def __init__(self, model, gamma=0.5, alpha=0.001, num_classes=None, increment=0.01,
                 **kwargs):
        super().__init__(model, **kwargs)
        self.gamma, self.alpha, self.increment = _check(gamma, alpha, increment)
        if num_classes is None:
            num_classes = self._model_output_width()
        if num_classes is None:
            raise ValueError("HAMPModel needs `num_classes` for a model without an output shape.")
        self.num_classes = int(num_classes)
        self.top1, self.rest = hamp_soft_label(self.num_classes, self.gamma, self.increment)

    def soft_targets(self, y):
        """HAMP's soft labels of int (or one-hot) labels ``y``."""
        onehot = ops.one_hot(self._labels_of(y), self.num_classes)
        return onehot * self.top1 + (1.0 - onehot) * self.rest

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if sample_weight is not None:
            raise ValueError("HAMPModel does not support sample weights.")
        loss = hamp_loss(y_pred, self.soft_targets(y), self.alpha)
        extra = [ops.cast(term, "float32") for term in self.losses]
        return loss + ops.sum(extra) if extra else loss

    def get_config(self):
        config = super().get_config()
        config.update({"gamma": self.gamma, "alpha": self.alpha,
                       "num_classes": self.num_classes, "increment": self.increment})
        return config
