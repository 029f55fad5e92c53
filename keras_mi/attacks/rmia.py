"""RMIA: the relative membership inference attack of Zarifzadeh et al. (ICML 2024).

"Low-Cost High-Power Membership Inference Attacks" (arXiv 2312.03262). The
signal of a model ``θ`` on a record ``x = (input, y)`` is ``Pr(x|θ)``, the
softmax probability of the true class (averaged over query views when there
are several). Reference models ``θ'`` trained on random halves of the same
pool give the record's typical probability ``Pr(x)``:

* **online**: ``Pr(x) = (Pr_in(x) + Pr_out(x)) / 2``, the mean over the
  reference models that trained on ``x`` and over those that did not;
* **offline** (only "out" models): ``Pr(x) = (1 + a) / 2 · Pr_out(x) + (1 - a) / 2``,
  which assumes ``Pr_in ≈ a · Pr_out + (1 - a)``; ``a`` is chosen by
  attacking a paired reference model (:func:`tune_offline_a`).

For a population record ``z`` that no model trained on, ``Pr(z)`` is the
mean over every reference model (offline: the same affine map). With the
likelihood ratios ``r(x) = Pr(x|θ) / Pr(x)`` and ``r(z) = Pr(z|θ) / Pr(z)``,
the score of ``x`` is

    score(x) = mean over z in Z of [ r(x) / r(z) > γ ],

the fraction of the population that ``x`` dominates by a factor ``γ``.

Sign convention: higher score = more likely a member (scores lie in [0, 1]).

Where keras-mi follows the authors' code (``privacytrustlab/ml_privacy_meter``)
rather than the paper's text: the comparison is strict (``> γ``; the paper
writes ``≥``), and ``a`` is tuned on a grid 0, 0.1, ..., 1 by AUC on the
paired model. Unlike that code, the paired model is attacked with the other
reference models only, never with the target itself.

Example:
  >>> target_x = np.array([0.9, 0.2]); ref_x = np.array([[0.5, 0.4], [0.6, 0.3]])
  >>> ref_in = np.array([[False, False], [False, False]])
  >>> rmia_scores(target_x, ref_x, ref_in, np.array([0.5, 0.4]),
  ...             np.array([[0.5, 0.5], [0.5, 0.3]]), online=False, offline_a=1.0).tolist()
  [1.0, 0.0]
"""

from __future__ import annotations

import numpy as np

from keras_mi.attacks import metrics as _metrics
from keras_mi.attacks.scores import log_softmax

#: The grid of offline ``a`` values :func:`tune_offline_a` tries.
OFFLINE_A_GRID = tuple(round(0.1 * i, 1) for i in range(11))


def true_class_probability(logits, labels) -> np.ndarray:
    """RMIA's signal ``Pr(x|θ)``: softmax probability of the true class.

    Args:
      logits: ``(..., n, classes)``; with a query axis (``(..., Q, n,
        classes)``) average the result over it yourself.
      labels: ``(n,)`` integer classes.

    Returns:
      float64 array of shape ``logits.shape[:-1]``.

    Example:
      >>> true_class_probability(np.array([[0.0, 0.0]]), np.array([1]))
      array([0.5])
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim < 2 or y.ndim != 1 or z.shape[-2] != len(y):
        raise ValueError(f"need logits (..., n, classes) and labels (n,); got {z.shape}, "
                         f"{y.shape}.")
    if not np.issubdtype(y.dtype, np.integer) or y.min(initial=0) < 0 \
            or y.max(initial=0) >= z.shape[-1]:
        raise ValueError(f"labels must be integers in [0, {z.shape[-1]}).")
    logp = log_softmax(z.reshape(-1, z.shape[-1])).reshape(z.shape)
    index = np.broadcast_to(y[:, None], z.shape[:-1] + (1,))
    return np.exp(np.take_along_axis(logp, index, axis=-1)[..., 0])


def _check(name, arr, ndim):
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)) or arr.min(initial=0.0) < 0.0:
        raise ValueError(f"{name} must hold finite, non-negative probabilities.")
    return arr


def rmia_scores(target_x, ref_x, ref_in, target_z, ref_z, online: bool = True,
                offline_a: float = 0.3, gamma: float = 1.0, chunk: int = 512) -> np.ndarray:
    """RMIA scores of the records ``x`` against the population ``z``.

    Args:
      target_x: ``(n,)`` the target's ``Pr(x|θ)`` on the records.
      ref_x: ``(K, n)`` each reference model's ``Pr(x|θ')``.
      ref_in: ``(K, n)`` bool, True where reference model ``k`` trained on
        record ``j``.
      target_z: ``(m,)`` the target's ``Pr(z|θ)`` on the population.
      ref_z: ``(K, m)`` each reference model's ``Pr(z|θ')``.
      online: use "in" and "out" reference models (True), or "out" models
        and ``offline_a`` (False).
      offline_a: ``a`` of the offline approximation, in ``[0, 1]``.
      gamma: the ratio threshold ``γ > 0``.
      chunk: records per block of the ``n × m`` comparison (memory only).

    Returns:
      ``(n,)`` float64 scores in ``[0, 1]``, higher = more likely a member.

    Raises:
      ValueError: on mismatched shapes, a record with no "out" (offline) or
        no "in"/"out" (online) reference model, or ``a``/``γ`` out of range.

    Example:
      >>> ref_in = np.array([[True], [False]])
      >>> rmia_scores(np.array([0.8]), np.array([[0.9], [0.3]]), ref_in,
      ...             np.array([0.2, 0.6]), np.array([[0.4, 0.5], [0.4, 0.5]])).tolist()
      [1.0]
    """
    tx, tz = _check("target_x", target_x, 1), _check("target_z", target_z, 1)
    rx, rz = _check("ref_x", ref_x, 2), _check("ref_z", ref_z, 2)
    mask = np.asarray(ref_in)
    if mask.dtype != np.bool_ or mask.shape != rx.shape or rx.shape[1] != tx.size \
            or rz.shape != (rx.shape[0], tz.size):
        raise ValueError(f"need ref_x and ref_in (K, n), ref_z (K, m); got {rx.shape}, "
                         f"{mask.shape}, {rz.shape} for n={tx.size}, m={tz.size}.")
    if not 0.0 <= offline_a <= 1.0:
        raise ValueError(f"offline_a must lie in [0, 1], got {offline_a}.")
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}.")
    n_out, n_in = (~mask).sum(axis=0), mask.sum(axis=0)
    if np.any(n_out == 0) or (online and np.any(n_in == 0)):
        raise ValueError("every record needs at least one 'out' reference model (and one "
                         "'in' model for online RMIA); use more reference models.")
    mean_out = np.where(mask, 0.0, rx).sum(axis=0) / n_out
    if online:
        mean_in = np.where(mask, rx, 0.0).sum(axis=0) / np.maximum(n_in, 1)
        p_x = (mean_in + mean_out) / 2.0
        p_z = rz.mean(axis=0)
    else:
        p_x = (1.0 + offline_a) / 2.0 * mean_out + (1.0 - offline_a) / 2.0
        p_z = (1.0 + offline_a) / 2.0 * rz.mean(axis=0) + (1.0 - offline_a) / 2.0
    tiny = np.finfo(np.float64).tiny
    ratio_x = tx / np.maximum(p_x, tiny)
    ratio_z = tz / np.maximum(p_z, tiny)
    scores = np.empty(tx.size)
    for start in range(0, tx.size, chunk):
        block = ratio_x[start:start + chunk, None] / np.maximum(ratio_z[None, :], tiny)
        scores[start:start + chunk] = np.mean(block > gamma, axis=1)
    return scores


def tune_offline_a(paired_x, ref_x, ref_in, paired_in, paired_z, ref_z, gamma: float = 1.0,
                   grid=OFFLINE_A_GRID) -> float:
    """Chooses offline ``a`` by attacking a paired reference model.

    The attacker knows the membership of its own reference models: it
    treats one of them (``paired``, in keras-mi the model trained on the
    complement of the target's half) as a target, runs offline RMIA on it
    with the other reference models for each ``a`` of ``grid``, and keeps
    the ``a`` with the largest AUC (the first on ties).

    Args:
      paired_x: ``(n,)`` the paired model's ``Pr(x|θ_p)``.
      ref_x, ref_in: ``(K, n)`` the other reference models (not the target).
      paired_in: ``(n,)`` bool, the paired model's membership.
      paired_z: ``(m,)``; ref_z: ``(K, m)``: the same on the population.
      gamma: RMIA's ``γ``.
      grid: candidate values in ``[0, 1]``.

    Returns:
      The chosen ``a``.

    Example:
      >>> a = tune_offline_a(sig[1], sig[2:], in_mask[2:], in_mask[1],
      ...                    sig_z[1], sig_z[2:])  # doctest: +SKIP
    """
    paired_in = np.asarray(paired_in, dtype=bool)
    if paired_in.all() or not paired_in.any():
        raise ValueError("the paired model's membership must hold members and non-members.")
    best_a, best_auc = None, -1.0
    for a in grid:
        s = rmia_scores(paired_x, ref_x, ref_in, paired_z, ref_z, online=False,
                        offline_a=float(a), gamma=gamma)
        fpr, tpr, _ = _metrics.roc_curve(s[paired_in], s[~paired_in])
        value = _metrics.auc(fpr, tpr)
        if value > best_auc:
            best_a, best_auc = float(a), value
    return best_a


def paired_index(index: int) -> int:
    """The model trained on the complement of model ``index``'s half (``index ^ 1``).

    Example:
      >>> paired_index(4), paired_index(5)
      (5, 4)
    """
    return int(index) ^ 1


def rmia_signal(query_logits, labels) -> np.ndarray:
    """``Pr(x|θ)`` averaged over the query views: ``(..., Q, n, C)`` -> ``(..., n)``.

    Example:
      >>> rmia_signal(np.zeros((2, 1, 3)), np.array([0])).tolist()  # 2 views, 1 record
      [0.3333333333333333]
    """
    return true_class_probability(query_logits, labels).mean(axis=-2)

