"""Maximum Mean Discrepancy (MMD²) between two samples, in `keras.ops`.

The MMD defense of Li, Li & Ribeiro (CODASPY 2021) compares the softmax
outputs of a training batch with those of a class-matched batch from a
held-out reference set, using the Gaussian RBF kernel

    k(a, b) = exp(-||a - b||² / (2 σ²)),   σ = 1 in the paper,

and the biased (V-statistic) estimator of the squared MMD. With several
bandwidths the kernel is the *sum* of the per-bandwidth kernels, as in the
`mix_rbf_mmd2` routine the paper's code uses. Other characteristic kernels
are in `keras_mi.losses.kernels`.

Everything here is written with `keras.ops`, so it runs on the TensorFlow,
JAX and PyTorch backends. Inputs are cast to float32 before any arithmetic:
float16 / bfloat16 softmax outputs would otherwise lose the small kernel
differences the MMD is made of.
"""

from __future__ import annotations

from keras import ops

from keras_mi.losses.kernels import as_bandwidths, kernel_matrix, pairwise_squared_distances

__all__ = [
    "gaussian_kernel",
    "mmd2",
    "pairwise_squared_distances",
    "softmax_mmd2",
]


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
    return kernel_matrix(a, b, "gaussian", sigma)


def _mean_off_diagonal(k):
    """Mean of a square kernel matrix without its diagonal (needs n >= 2)."""
    n = ops.cast(ops.shape(k)[0], "float32")
    total = ops.sum(k) - ops.sum(ops.diagonal(k))
    return total / (n * (n - 1.0))


def mmd2(a, b, sigma=1.0, unbiased=False, kernel="gaussian"):
    """Squared Maximum Mean Discrepancy between two samples.

    The biased estimator (V-statistic, the paper's choice) is
    ``mean(Kaa) + mean(Kbb) - 2 mean(Kab)``; it is always >= 0 and exactly
    0 for identical sets. The unbiased estimator (U-statistic) drops the
    diagonals of ``Kaa`` and ``Kbb``; it can be slightly negative and needs
    at least two rows in each sample.

    Args:
      a: Tensor ``(n, d)``, e.g. softmax outputs of a training batch.
      b: Tensor ``(m, d)``, e.g. softmax outputs of a reference batch.
      sigma: Kernel bandwidth or sequence of bandwidths.
      unbiased: Use the unbiased estimator instead of the biased one.
      kernel: One of `keras_mi.losses.kernels.KERNELS` (the paper's is
        ``"gaussian"``).

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
    sigmas = as_bandwidths(sigma)
    k_aa = kernel_matrix(a, a, kernel, sigmas)
    k_bb = kernel_matrix(b, b, kernel, sigmas)
    k_ab = kernel_matrix(a, b, kernel, sigmas)
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


def softmax_mmd2(logits_a, logits_b, sigma=1.0, unbiased=False, kernel="gaussian"):
    """MMD² between the softmax outputs of two batches of logits.

    The softmax is taken in float32, which keeps extreme logits (±1e4)
    finite and float16 logits accurate.

    Args:
      logits_a: Logits ``(n, num_classes)``.
      logits_b: Logits ``(m, num_classes)``.
      sigma: Kernel bandwidth(s).
      unbiased: Use the unbiased estimator.
      kernel: One of `keras_mi.losses.kernels.KERNELS`.

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
    return mmd2(p, q, sigma=sigma, unbiased=unbiased, kernel=kernel)
