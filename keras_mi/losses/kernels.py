"""Characteristic kernels for the MMD², in `keras.ops`.

Three kernels, each of a squared distance ``d = ||a - b||²`` and a
bandwidth ``σ``:

* ``"gaussian"``: ``exp(-d / (2 σ²))``, the paper's kernel. Its pull on a
  row falls off like ``exp(-d)``: rows far from every row of the other
  sample feel almost none.
* ``"laplacian"``: ``exp(-sqrt(d) / σ)``, falls off like ``exp(-||a - b||)``.
* ``"imq"`` (inverse multiquadric): ``(1 + d / σ²)^(-1/2)``, falls off like
  ``1 / ||a - b||``: the heavy tail keeps a pull on outlying rows.

All three are characteristic (the MMD² is zero only for equal
distributions). With several bandwidths the kernel is the sum of the
per-bandwidth kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras import ops

from keras_mi.mmd_options import KERNELS

__all__ = ["KERNELS", "as_bandwidths", "kernel_matrix", "pairwise_squared_distances"]

def as_bandwidths(sigma) -> tuple[float, ...]:
    """Normalizes ``sigma`` to a non-empty tuple of positive Python floats.

    Args:
      sigma: A bandwidth > 0 or a non-empty sequence of them.

    Returns:
      A tuple of floats.

    Example:
      >>> as_bandwidths([0.1, 1])
      (0.1, 1.0)
    """
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

    Computed in float32 as ``||a||² + ||b||² - 2 a·bᵀ`` and clamped at 0
    (the expansion can round to a tiny negative number).

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


def _one_kernel(d, kernel: str, s: float):
    if kernel == "gaussian":
        return ops.exp(d * (-1.0 / (2.0 * s * s)))
    if kernel == "laplacian":
        # sqrt has an infinite derivative at 0: the floor keeps the gradient
        # finite on identical rows (the diagonal), where the kernel is 1.
        return ops.exp(-ops.sqrt(ops.maximum(d, 1e-12)) / s)
    return ops.power(1.0 + d / (s * s), -0.5)


def kernel_matrix(a, b, kernel: str = "gaussian", sigma=1.0):
    """The kernel matrix ``k(a_i, b_j)``, summed over the bandwidths.

    Args:
      a: Tensor of shape ``(n, d)``.
      b: Tensor of shape ``(m, d)``.
      kernel: One of `KERNELS`.
      sigma: Bandwidth, or a sequence of bandwidths whose kernels are summed
        (so k bandwidths give k on the diagonal).

    Returns:
      float32 tensor of shape ``(n, m)``.

    Example:
      >>> import numpy as np
      >>> k = kernel_matrix(np.zeros((1, 1)), np.full((1, 1), 3.0), "imq", sigma=4.0)
      >>> round(float(np.asarray(k)[0, 0]), 4)  # (1 + 9/16)^(-1/2)
      0.8
    """
    if kernel not in KERNELS:
        raise ValueError(f"`kernel` must be one of {KERNELS}; received {kernel!r}.")
    sigmas = as_bandwidths(sigma)
    d = pairwise_squared_distances(a, b)
    k = None
    for s in sigmas:
        term = _one_kernel(d, kernel, s)
        k = term if k is None else k + term
    return k
