"""Per-record membership scores from logits (or probabilities) and labels.

Every score follows the package convention: **higher = more likely a
member**. Quantities that are lower on members are negated:

* ``loss``: ``-CE = log p_y``;
* ``confidence``: ``p_y``;
* ``max_confidence``: ``max_i p_i``;
* ``entropy``: ``-H(p) = sum_i p_i log p_i``;
* ``modified_entropy``: ``-Mentr(p, y)`` (Song & Mittal 2021), where
  ``Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``.

(``p = softmax(logits)``, ``y`` the true label.)

Everything is computed from ``log_softmax`` (max-shifted ``logsumexp``), so
large logits neither overflow nor turn into ``log(0)``; ``log(1 - p_i)`` is
formed without cancellation, also for ``p_i`` close to 1. Float32 logits give
float32 scores (fast); float64 stays float64.

This module is also the one home of keras-mi's NumPy softmax: :func:`softmax`,
:func:`log_softmax` and :func:`logsumexp` (every attack module uses these).

Example:
  >>> logits = np.array([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  >>> np.round(loss_score(logits, np.array([0, 1])), 3)
  array([-0.036, -1.099])
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional

import numpy as np

#: Probabilities are clipped below at this value when given as probabilities.
_PROB_FLOOR = 1e-30


def _check_labels(labels, n: int, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must be (n,) = ({n},) integer class indices, got shape "
                         f"{labels.shape}; convert one-hot labels with argmax(axis=1).")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}); got range "
                         f"[{labels.min()}, {labels.max()}].")
    return labels


def softmax(logits) -> np.ndarray:
    """Row-wise softmax in float64 (max-subtracted), over the last axis.

    Args:
      logits: ``(..., num_classes)`` logits.

    Returns:
      float64 probabilities of the same shape.

    Example:
      >>> softmax(np.array([[0.0, 0.0]])).tolist()
      [[0.5, 0.5]]
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def logsumexp(z) -> np.ndarray:
    """``log(sum(exp(z)))`` over the last axis, max-shifted (finite for any finite row).

    Entries may be ``-inf`` (left out of the sum) as long as each row has a
    finite one.

    Example:
      >>> round(float(logsumexp(np.array([1000.0, 1000.0, -np.inf]))) - 1000.0, 4)
      0.6931
    """
    m = np.max(z, axis=-1, keepdims=True)
    return m[..., 0] + np.log(np.sum(np.exp(z - m), axis=-1))


def log_softmax(logits, from_logits: bool = True) -> np.ndarray:
    """Row-wise log-probabilities, stable for any finite logits.

    Args:
      logits: ``(n, num_classes)`` logits, or probabilities with
        ``from_logits=False`` (rows must sum to 1 within 1e-3).

    Example:
      >>> np.round(np.exp(log_softmax(np.array([[1000.0, 1000.0]]))), 3)
      array([[0.5, 0.5]])
    """
    arr = np.asarray(logits)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"expected (n, num_classes >= 2) outputs, got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError("got no records (n = 0); an attack needs at least one record.")
    if not np.isfinite(arr).all():
        raise ValueError("outputs contain NaN or inf; check the model (a diverged model "
                         "gives NaN logits).")
    if from_logits:
        shifted = arr - arr.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError("probabilities must lie in [0, 1]; pass from_logits=True for logits.")
    sums = arr.sum(axis=1)
    if np.abs(sums - 1).max() > 1e-3:
        bad = int(np.argmax(np.abs(sums - 1)))
        raise ValueError(f"probability rows must sum to 1 (row {bad} sums to {sums[bad]:.6f});"
                         " pass from_logits=True if these are logits.")
    return np.log(np.maximum(arr, _PROB_FLOOR))


def _log1m_probs(logp: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``log(1 - p_i)`` for every class, accurate also when ``p_i`` is near 1.

    For classes with ``p_i <= 1/2``, ``log1p(-p_i)`` is accurate. Only the top
    class can exceed 1/2; for it ``1 - p_top`` is summed directly as
    ``sum_{j != top} p_j`` (no cancellation), floored at the smallest normal
    float so a total underflow gives a large finite log instead of ``-inf``.
    """
    with np.errstate(divide="ignore"):  # the top class may give log(0); replaced below
        out = np.log1p(-p)
    rows = np.arange(logp.shape[0])
    top = np.argmax(logp, axis=1)
    p_top = p[rows, top]
    p[rows, top] = 0.0
    rest = p.sum(axis=1)
    p[rows, top] = p_top  # restore (p is the caller's array)
    out[rows, top] = np.log(np.maximum(rest, np.finfo(logp.dtype).tiny))
    return out


def _true(logp: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return logp[np.arange(logp.shape[0]), labels]


def _loss(logp, labels):
    return _true(logp, labels)


def _confidence(logp, labels):
    return np.exp(_true(logp, labels))


def _max_confidence(logp, labels):
    return np.exp(logp.max(axis=1))


def _entropy(logp, labels):
    return (np.exp(logp) * logp).sum(axis=1)


def _modified_entropy(logp, labels):
    p = np.exp(logp)
    log1m = _log1m_probs(logp, p)
    rows = np.arange(logp.shape[0])
    # -Mentr = (1 - p_y) log p_y + sum_{i != y} p_i log(1 - p_i)
    log1m_y = log1m[rows, labels]
    p *= log1m  # in place: p now holds p_i log(1 - p_i)
    p[rows, labels] = 0.0  # drop the true class (zeroed, not subtracted: no cancellation)
    return np.exp(log1m_y) * logp[rows, labels] + p.sum(axis=1)


_FROM_LOGP: Dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "loss": _loss,
    "confidence": _confidence,
    "max_confidence": _max_confidence,
    "entropy": _entropy,
    "modified_entropy": _modified_entropy,
}

#: Names of the score-based threshold attacks, cheapest first.
SCORE_NAMES = tuple(_FROM_LOGP)


def compute_scores(logits, labels, names: Optional[Iterable[str]] = None,
                   from_logits: bool = True) -> Dict[str, np.ndarray]:
    """Several scores at once, sharing one ``log_softmax``.

    Args:
      logits: ``(n, num_classes)`` logits (or probabilities, ``from_logits=False``).
      labels: ``(n,)`` integer true labels.
      names: subset of :data:`SCORE_NAMES` (default: all).

    Returns:
      ``{name: (n,) scores}``, higher = more likely a member.

    Example:
      >>> s = compute_scores(np.array([[2.0, 0.0]]), np.array([0]), ["confidence"])
      >>> round(float(s["confidence"][0]), 4)
      0.8808
    """
    names = SCORE_NAMES if names is None else tuple(names)
    unknown = [n for n in names if n not in _FROM_LOGP]
    if unknown:
        raise ValueError(f"unknown score(s) {unknown}; choose from {SCORE_NAMES}.")
    logp = log_softmax(logits, from_logits=from_logits)
    labels = _check_labels(labels, logp.shape[0], logp.shape[1])
    return {n: _FROM_LOGP[n](logp, labels) for n in names}


def loss_score(logits, labels, from_logits: bool = True) -> np.ndarray:
    """``-cross_entropy = log p_y`` (members have lower loss, so higher score).

    Example:
      >>> round(float(loss_score(np.array([[0.0, 0.0]]), np.array([1]))[0]), 4)
      -0.6931
    """
    return compute_scores(logits, labels, ["loss"], from_logits)["loss"]


def confidence_score(logits, labels, from_logits: bool = True) -> np.ndarray:
    """``p_y``, the predicted probability of the true class.

    Example:
      >>> float(confidence_score(np.array([[0.0, 0.0]]), np.array([1]))[0])
      0.5
    """
    return compute_scores(logits, labels, ["confidence"], from_logits)["confidence"]


def max_confidence_score(logits, labels=None, from_logits: bool = True) -> np.ndarray:
    """``max_i p_i``, the top predicted probability (labels unused).

    Example:
      >>> float(max_confidence_score(np.array([[0.0, 0.0]]))[0])
      0.5
    """
    logp = log_softmax(logits, from_logits=from_logits)
    return _max_confidence(logp, None)


def entropy_score(logits, labels=None, from_logits: bool = True) -> np.ndarray:
    """``-H(p)``: minus the Shannon entropy (nats) of the prediction (labels unused).

    Example:
      >>> round(float(entropy_score(np.array([[0.0, 0.0]]))[0]), 4)
      -0.6931
    """
    logp = log_softmax(logits, from_logits=from_logits)
    return _entropy(logp, None)


def modified_entropy_score(logits, labels, from_logits: bool = True) -> np.ndarray:
    """``-Mentr(p, y)``, Song & Mittal's modified prediction entropy, negated.

    ``Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``: low when
    the model is confidently right, high when confidently wrong.

    Example:
      >>> round(float(modified_entropy_score(np.array([[0.0, 0.0]]), np.array([0]))[0]), 4)
      -0.6931
    """
    return compute_scores(logits, labels, ["modified_entropy"], from_logits)["modified_entropy"]


def correctness(logits, labels) -> np.ndarray:
    """1.0 where ``argmax(logits) == label``, else 0.0 (the gap attack's score).

    Example:
      >>> correctness(np.array([[2.0, 0.0], [2.0, 0.0]]), np.array([0, 1])).tolist()
      [1.0, 0.0]
    """
    arr = np.asarray(logits)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"expected non-empty (n, num_classes) outputs, got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError("outputs contain NaN or inf; check the model.")
    labels = _check_labels(labels, arr.shape[0], arr.shape[1])
    return (np.argmax(arr, axis=1) == labels).astype(np.float64)


#: name -> the function that scores each record, ``fn(logits, labels) -> (n,)``:
#: the score each threshold attack thresholds (``"correct"`` is the gap attack's).
SCORES: Dict[str, Callable[..., np.ndarray]] = {
    "loss": loss_score,
    "confidence": confidence_score,
    "max_confidence": max_confidence_score,
    "entropy": entropy_score,
    "modified_entropy": modified_entropy_score,
    "correct": correctness,
}
