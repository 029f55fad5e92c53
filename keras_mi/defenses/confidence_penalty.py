"""The confidence penalty as a Keras loss (Pereyra et al. 2017)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mi")
class ConfidencePenalty(keras.losses.Loss):
    """Cross-entropy minus ``beta`` times the entropy of the softmax output.

    Per example, with ``p = softmax(logits)`` and integer label ``y``::

        loss = -log p[y] - beta * H(p),   H(p) = -sum_k p[k] log p[k]

    Penalizing confident (low-entropy) outputs shrinks the gap between the
    loss on training members and on unseen records that loss- and
    confidence-based membership attacks read.

    Args:
      beta: weight of the entropy bonus (> 0). Default 0.1, the entropy
        weight of DingfanChen/RelaxLoss,
        ``source/nonimage/defense/confidence_penalty.py`` (``--alpha`` 0.1).
      from_logits: must be True: the loss reads logits (the models of
        keras-mi end without a softmax).
      reduction: Keras loss reduction (default ``"sum_over_batch_size"``).
      name: loss name.

    Returns:
      Called as ``loss(y_true, logits)``: the reduced loss; ``y_true`` holds
      class indices, shape ``(batch,)`` or ``(batch, 1)``.

    Example:
      >>> import numpy as np
      >>> loss = ConfidencePenalty(beta=0.5)
      >>> logits = np.array([[2.0, 0.0, 0.0]], "float32")
      >>> round(float(loss(np.array([0]), logits)), 4)
      -0.0932

    References:
      Pereyra, Tucker, Chorowski, Kaiser, Hinton, "Regularizing Neural
      Networks by Penalizing Confident Output Distributions", ICLR workshop
      2017, Eq. (2).

    Warning:
      With a large ``beta`` the entropy term dominates and the model learns
      uniform outputs; ``keras_mi.experiment`` bounds it to (0, 10].
    """

    def __init__(self, beta=0.1, from_logits=True, reduction="sum_over_batch_size",
                 name="confidence_penalty"):
        super().__init__(name=name, reduction=reduction)
        beta = float(beta)
        if not beta > 0 or beta != beta or beta == float("inf"):
            raise ValueError(f"ConfidencePenalty: beta must be a positive finite number; "
                             f"got {beta}.")
        if not from_logits:
            raise ValueError("ConfidencePenalty reads logits: from_logits must be True.")
        self.beta = beta
        self.from_logits = True

    def call(self, y_true, y_pred):
        logits = ops.convert_to_tensor(y_pred)
        labels = ops.cast(ops.convert_to_tensor(y_true), "int32")
        if len(labels.shape) == len(logits.shape):
            labels = ops.squeeze(labels, axis=-1)
        log_p = ops.log_softmax(logits, axis=-1)
        num_classes = logits.shape[-1]
        nll = -ops.sum(ops.one_hot(labels, num_classes, dtype=log_p.dtype) * log_p, axis=-1)
        entropy = -ops.sum(ops.exp(log_p) * log_p, axis=-1)
        return nll - self.beta * entropy

    def get_config(self):
        config = super().get_config()
        config.update({"beta": self.beta, "from_logits": self.from_logits})
        return config
