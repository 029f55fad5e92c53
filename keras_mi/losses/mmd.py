"""Gaussian-kernel Maximum Mean Discrepancy (MMD²) in `keras.ops`.

The MMD defense of Li, Li & Ribeiro (CODASPY 2021) compares the softmax
outputs of a training batch with those of a class-matched batch from a
held-out reference set, using the Gaussian RBF kernel

    k(a, b) = exp(-||a - b||² / (2 σ²)),   σ = 1 in the paper,

and the biased (V-statistic) estimator of the squared MMD. With several
bandwidths the kernel is the *sum* of the per-bandwidth kernels, as in the
`mix_rbf_mmd2` routine the paper's code uses.

Everything here is written with `keras.ops`, so it runs on the TensorFlow,
JAX and PyTorch backends. Inputs are cast to float32 before any arithmetic:
float16 / bfloat16 softmax outputs would otherwise lose the small kernel
differences the MMD is made of. Squared distances are clamped at 0 because
the expansion ||a||² + ||b||² - 2 a·b can round to a tiny negative number.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras import ops

__all__ = [
    "gaussian_kernel",
    "mmd2",
    "pairwise_squared_distances",
    "softmax_mmd2",
]


def _bandwidths(sigma) -> tuple[float, ...]:
    """Normalizes ``sigma`` to a non-empty tuple of positive Python floats."""
    if isinstance(sigma, Sequence) and not isinstance(sigma, str):
        sigmas = tuple(float(s) for s in sigma)
    else:
        sigmas = (float(sigma),)
    if not sigmas:
        raise ValueError("`sigma` must hold at least one bandwidth; received an empty sequence.")
    for s in sigmas:
        if not s > 0.0:  # also rejects NaN
            raise ValueError(
                f"Every kernel bandwidth `sigma` must be > 0; received sigma={sigma!r}. "
                "The paper uses sigma=1.0."
            )
    return sigmas


def pairwise_squared_distances(a, b):
    """Squared Euclidean distances between the rows of ``a`` and ``b``.

    Computed in float32 as ``||a||² + ||b||² - 2 a·bᵀ`` and clamped at 0.

    Args:
        a: Tensor of shape ``(n, d)``.
        b: Tensor of shape ``(m, d)``.

    Returns:
        float32 tensor of shape ``(n, m)``.

    Example:

    >>> import numpy as np
    >>> d = pairwise_squared_distances(np.eye(2), np.zeros((1, 2)))
    >>> np.asarray(d).ravel().tolist()
    [1.0, 1.0]
    """
    a = ops.cast(a, "float32")
    b = ops.cast(b, "float32")
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise ValueError(
            "`a` and `b` must be 2-D (batch, features); received shapes "
            f"{tuple(a.shape)} and {tuple(b.shape)}. Flatten the outputs first."
        )
    if a.shape[-1] is not None and b.shape[-1] is not None and a.shape[-1] != b.shape[-1]:
        raise ValueError(
            "`a` and `b` must have the same number of features; received "
            f"{a.shape[-1]} and {b.shape[-1]}."
        )
    a_sq = ops.sum(ops.square(a), axis=1, keepdims=True)
    b_sq = ops.sum(ops.square(b), axis=1, keepdims=True)
    d = a_sq + ops.transpose(b_sq) - 2.0 * ops.matmul(a, ops.transpose(b))
    return ops.maximum(d, 0.0)


def gaussian_kernel(a, b, sigma=1.0):
    """Gaussian RBF kernel matrix ``exp(-||a_i - b_j||² / (2 σ²))``.

    Args:
        a: Tensor of shape ``(n, d)``.
        b: Tensor of shape ``(m, d)``.
        sigma: Bandwidth, or a sequence of bandwidths whose kernels are
            summed (so a list of k bandwidths gives k on the diagonal).

    Returns:
        float32 tensor of shape ``(n, m)``.

    Example:

    >>> import numpy as np
    >>> k = gaussian_kernel(np.zeros((1, 2)), np.ones((1, 2)), sigma=1.0)
    >>> round(float(np.asarray(k)[0, 0]), 4)  # exp(-2 / 2)
    0.3679
    """
    sigmas = _bandwidths(sigma)
    d = pairwise_squared_distances(a, b)
    k = None
    for s in sigmas:
        term = ops.exp(d * (-1.0 / (2.0 * s * s)))
        k = term if k is None else k + term
    return k


def _mean_off_diagonal(k):
    """Mean of a square kernel matrix without its diagonal (needs n >= 2)."""
    n = ops.cast(ops.shape(k)[0], "float32")
    total = ops.sum(k) - ops.sum(ops.diagonal(k))
    return total / (n * (n - 1.0))


def mmd2(a, b, sigma=1.0, unbiased=False):
    """Squared Maximum Mean Discrepancy between two samples.

    The biased estimator (V-statistic, the paper's choice) is
    ``mean(Kaa) + mean(Kbb) - 2 mean(Kab)``; it is always >= 0 and exactly
    0 for identical sets. The unbiased estimator (U-statistic) drops the
    diagonals of ``Kaa`` and ``Kbb``; it can be slightly negative and needs
    at least two rows in each sample.

    Args:
        a: Tensor ``(n, d)``, e.g. softmax outputs of a training batch.
        b: Tensor ``(m, d)``, e.g. softmax outputs of a reference batch.
        sigma: Kernel bandwidth or sequence of bandwidths (see
            `gaussian_kernel`).
        unbiased: Use the unbiased estimator instead of the biased one.

    Returns:
        float32 scalar tensor.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    >>> float(mmd2(x, x))
    0.0
    >>> float(mmd2(x, x + 1.0)) > 0.1
    True
    """
    sigmas = _bandwidths(sigma)
    k_aa = gaussian_kernel(a, a, sigmas)
    k_bb = gaussian_kernel(b, b, sigmas)
    k_ab = gaussian_kernel(a, b, sigmas)
    if unbiased:
        for name, t in (("a", a), ("b", b)):
            if t.shape[0] is not None and t.shape[0] < 2:
                raise ValueError(
                    f"The unbiased MMD² needs at least 2 rows in `{name}`; received "
                    f"{t.shape[0]}. Use unbiased=False or a larger batch."
                )
        return _mean_off_diagonal(k_aa) + _mean_off_diagonal(k_bb) - 2.0 * ops.mean(k_ab)
    value = ops.mean(k_aa) + ops.mean(k_bb) - 2.0 * ops.mean(k_ab)
    # The V-statistic is a squared RKHS norm; rounding can only make it
    # a hair negative.
    return ops.maximum(value, 0.0)


def softmax_mmd2(logits_a, logits_b, sigma=1.0, unbiased=False):
    """MMD² between the softmax outputs of two batches of logits.

    The softmax is taken in float32, which keeps extreme logits (±1e4)
    finite and float16 logits accurate.

    Args:
        logits_a: Logits ``(n, num_classes)``.
        logits_b: Logits ``(m, num_classes)``.
        sigma: Kernel bandwidth(s).
        unbiased: Use the unbiased estimator.

    Returns:
        float32 scalar tensor.

    Example:

    >>> import numpy as np
    >>> z = np.array([[1e4, 0.0], [0.0, 1e4]], dtype="float16")
    >>> round(float(softmax_mmd2(z, z[::-1])), 6)
    0.0
    """
    p = ops.softmax(ops.cast(logits_a, "float32"), axis=-1)
    q = ops.softmax(ops.cast(logits_b, "float32"), axis=-1)
    return mmd2(p, q, sigma=sigma, unbiased=unbiased)
