"""`RelaxLossModel`: RelaxLoss (Chen, Yu & Fritz, ICLR 2022) inside `model.fit`.

RelaxLoss keeps the mean training loss near a target level ``α`` instead of
driving it to zero, so members' losses stay mixed with non-members'. Per
batch, with ``CE`` the batch's mean cross-entropy (the authors' code,
DingfanChen/RelaxLoss, ``source/nonimage/defense/relaxloss.py`` and
``source/cifar/defense/relaxloss.py``, ``Trainer.train``):

* even epochs (0, 2, ...): loss ``|CE − α|``; gradient descent while
  ``CE > α``, gradient *ascent* on ``CE`` once it fell below ``α``;
* odd epochs: ``CE`` while ``CE > α``; otherwise "posterior flattening":
  cross-entropy towards soft targets whose true-class confidence is the
  model's own ``p_y`` clamped at ``upper`` and whose other classes share
  ``1 − min(p_y, upper)`` uniformly. ``variant="tabular"`` (the non-image
  code) averages that soft cross-entropy over the batch;
  ``variant="image"`` (the CIFAR code) applies it to misclassified
  examples only and subtracts each example's ``CE``:
  ``mean((1 − correct)·CE_soft − CE)``.

As in the authors' code the soft targets are *not* detached: the gradient
also flows through ``min(p_y, upper)``.

The epoch parity is a non-trainable variable (``epoch``) set by
`RelaxLossEpochs` at the start of every epoch; `fit` adds that callback.
Variables assigned in ``on_epoch_begin`` reach the JAX trainer (it reloads
its state at the first step of each epoch), so the same code runs on the
TensorFlow and JAX backends. The compiled loss is not used (RelaxLoss is the
loss); compile with ``loss=None`` or any loss, and ``metrics=["accuracy"]``
as usual.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_mi.training.wrapped_model import WrappedModel

__all__ = ["RelaxLossModel", "RelaxLossEpochs", "relaxloss_terms"]

VARIANTS = ("tabular", "image")


def _check(alpha, upper, variant):
    alpha = float(alpha)
    if not (alpha > 0.0 and math.isfinite(alpha)):
        raise ValueError(f"RelaxLoss `alpha` (the target loss level) must be a finite number > 0; "
                         f"received {alpha}. The authors use 0.4 to 3.")
    upper = float(upper)
    if not 0.0 < upper <= 1.0:
        raise ValueError(f"RelaxLoss `upper` (the true-class confidence cap) must lie in (0, 1]; "
                         f"received {upper}.")
    if variant not in VARIANTS:
        raise ValueError(f"RelaxLoss `variant` must be one of {VARIANTS}; received {variant!r}.")
    return alpha, upper


def relaxloss_terms(logits, onehot, alpha, upper, variant="tabular"):
    """The three candidate losses of one batch and its mean cross-entropy.

    Args:
      logits: ``(batch, K)`` logits.
      onehot: ``(batch, K)`` one-hot labels (float).
      alpha: the target loss level.
      upper: the cap on the true-class confidence of the soft targets.
      variant: ``"tabular"`` or ``"image"`` (see the module docstring).

    Returns:
      ``(ce, relaxed, flattened)``: the mean cross-entropy, ``|ce − α|`` and
      the posterior-flattening loss, scalars.
    """
    logits = ops.cast(logits, "float32")
    onehot = ops.cast(onehot, "float32")
    k = ops.shape(logits)[-1]
    logp = ops.log_softmax(logits, axis=-1)
    ce_each = -ops.sum(onehot * logp, axis=-1)
    ce = ops.mean(ce_each)
    p_true = ops.sum(onehot * ops.exp(logp), axis=-1)
    conf = ops.minimum(p_true, upper)
    other = (1.0 - conf) / (ops.cast(k, "float32") - 1.0)
    soft = onehot * conf[:, None] + (1.0 - onehot) * other[:, None]
    soft_ce = -ops.sum(soft * logp, axis=-1)
    if variant == "image":
        correct = ops.cast(ops.equal(ops.argmax(logits, axis=-1), ops.argmax(onehot, axis=-1)),
                           "float32")
        flattened = ops.mean((1.0 - correct) * soft_ce - ce_each)
    else:
        flattened = ops.mean(soft_ce)
    return ce, ops.abs(ce - alpha), flattened


class RelaxLossEpochs(keras.callbacks.Callback):
    """Tells a `RelaxLossModel` which epoch starts (its loss alternates by parity).

    `RelaxLossModel.fit` adds it; a custom loop calls ``model.set_epoch(e)``.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.model.set_epoch(epoch)


@keras.saving.register_keras_serializable(package="keras_mi")
class RelaxLossModel(WrappedModel):
    """Wraps a logits model and trains it with the RelaxLoss objective.

    Args:
      model: A Keras model mapping inputs to logits ``(batch, K)``, K >= 2.
      alpha: α > 0, the target mean training loss. Authors' defaults
        (DingfanChen/RelaxLoss): ``source/nonimage/defense/configs/Purchase.yml``
        ``alpha: 0.8`` (the default here), ``Texas.yml`` 2.5;
        ``source/cifar/defense/configs/CIFAR10_resnet20.yml`` 1,
        ``CIFAR10_vgg11_bn.yml`` 0.4, ``CIFAR100_resnet20.yml`` 3. Their code
        has no Location config.
      upper: the cap on the soft targets' true-class confidence, in (0, 1]
        and above ``1/K``. ``Purchase.yml`` ``upper: 0.3`` (the default),
        ``Texas.yml`` 0.1, every CIFAR config 1.
      variant: ``"tabular"`` (the authors' non-image flattening loss) or
        ``"image"`` (their CIFAR one); see the module docstring.
      **kwargs: Passed to `keras.Model` (``name``...).

    Example:

    >>> import numpy as np, keras
    >>> x = np.random.rand(64, 5).astype("float32"); y = np.arange(64) % 3
    >>> net = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    >>> model = RelaxLossModel(net, alpha=0.8, upper=0.5)
    >>> model.compile("adam", metrics=["accuracy"])
    >>> _ = model.fit(x, y, epochs=2, batch_size=16, verbose=0)

    References:
      Chen, Yu & Fritz, "RelaxLoss: Defending Membership Inference Attacks
      without Losing Utility", ICLR 2022; code: github.com/DingfanChen/RelaxLoss.

    Warning:
      Sample weights are not supported (the authors' loss has none); `fit`
      refuses them.
    """

    def __init__(self, model, alpha=0.8, upper=0.3, variant="tabular", **kwargs):
        super().__init__(model, **kwargs)
        self.alpha, self.upper = _check(alpha, upper, variant)
        self.variant = variant
        self._check_classes(self._model_output_width())
        self.epoch = self.add_variable((), initializer="zeros", dtype="int32", trainable=False,
                                       name="epoch")
        self.ce_tracker = keras.metrics.Mean(name="ce")

    def _check_classes(self, k):
        if k is None:
            return
        if k < 2:
            raise ValueError(f"RelaxLoss needs a model with >= 2 outputs; this one has {k}.")
        if self.upper <= 1.0 / k:
            raise ValueError(f"RelaxLoss `upper` = {self.upper} must exceed 1/K = {1.0 / k:.4g} "
                             f"for K = {k} classes, or the flattened targets would rank the "
                             "true class below the others.")

    def set_epoch(self, epoch):
        """Sets the epoch whose parity picks the loss (done by `RelaxLossEpochs`)."""
        self.epoch.assign(int(epoch))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if sample_weight is not None:
            raise ValueError("RelaxLossModel does not support sample weights.")
        ce, relaxed, flattened = relaxloss_terms(
            y_pred, ops.one_hot(self._labels_of(y, y_pred), ops.shape(y_pred)[-1]), self.alpha,
            self.upper, self.variant)
        self.ce_tracker.update_state(ce)
        if not training:
            loss = ce
        else:
            even = ops.equal(ops.mod(self.epoch, 2), 0)
            above = ops.greater(ce, self.alpha)
            loss = ops.where(even, relaxed, ops.where(above, ce, flattened))
        extra = [ops.cast(term, "float32") for term in self.losses]
        return loss + ops.sum(extra) if extra else loss

    def fit(self, x=None, y=None, **kwargs):
        """`keras.Model.fit` with `RelaxLossEpochs` added to the callbacks."""
        if kwargs.get("sample_weight") is not None or kwargs.get("class_weight") is not None:
            raise ValueError("RelaxLossModel does not support sample or class weights.")
        self._check_classes(self._model_output_width())
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if not any(isinstance(c, RelaxLossEpochs) for c in callbacks):
            callbacks.insert(0, RelaxLossEpochs())
        return super().fit(x, y, callbacks=callbacks, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update({"alpha": self.alpha, "upper": self.upper, "variant": self.variant})
        return config
