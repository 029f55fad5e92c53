"""The true-class log-odds of a batch of logits, in `keras.ops`."""

from __future__ import annotations

from keras import ops

__all__ = ["true_class_log_odds"]


def true_class_log_odds(logits, labels):
    """``log p_y - log(1 - p_y)`` of ``p = softmax(logits)``, stably.

    Computed as ``z_y - logsumexp(z_j, j != y)``, so it stays finite where
    ``p_y`` rounds to 1 in float32. This is the statistic LiRA models
    (Carlini et al. 2022, the "logit scaling" of the true-class confidence).

    Args:
      logits: Tensor ``(n, num_classes)`` of logits (``log`` of
        probabilities works too: the statistic is shift-invariant per row).
      labels: Int tensor ``(n,)`` of true classes.

    Returns:
      float32 tensor ``(n, 1)`` (a one-feature sample for the MMD²).

    Example:
      >>> import numpy as np
      >>> z = np.log(np.array([[0.8, 0.1, 0.1]], dtype="float32"))
      >>> round(float(true_class_log_odds(z, np.array([0]))[0, 0]), 4)  # log(0.8 / 0.2)
      1.3863

    References:
      Carlini et al., "Membership Inference Attacks From First Principles",
      IEEE S&P 2022, §IV-B.
    """
    z = ops.cast(logits, "float32")
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    onehot = ops.one_hot(labels, ops.shape(z)[-1], dtype="float32")
    true = ops.sum(z * onehot, axis=-1)
    # A large finite negative instead of -inf keeps the gradient NaN-free.
    others = ops.logsumexp(z - onehot * 1e9, axis=-1)
    return ops.reshape(true - others, (-1, 1))
