"""Attack metrics from membership scores: ROC, AUC, accuracy, advantage, TPR@FPR.

Plain NumPy, no scikit-learn, so it is fast on millions of records and works
without TensorFlow.

Sign convention (used by every attack in keras-mi): a **higher score means
"more likely a member"**, and the attack at threshold ``t`` predicts
"member" iff ``score >= t``. Scores that are naturally lower for members are
negated by the score functions (e.g. the loss attack scores ``-loss``).

All metrics come from one ROC curve built by sorting members and
non-members separately and merging the two sorted runs (``O(n log n)``); tied scores are one threshold, so a tie counts half
in the AUC (the Mann-Whitney convention, as in ``sklearn.metrics``).

Example:
  >>> fpr, tpr, thr = roc_curve([0.9, 0.8, 0.3], [0.7, 0.2, 0.1])
  >>> round(auc(fpr, tpr), 4)
  0.8889
"""

from __future__ import annotations

from typing import Dict, Iterable, Tuple

import numpy as np

#: The low false-positive rates reported by default (1% and 0.1%).
DEFAULT_FPR_TARGETS = (0.01, 0.001)


def _as_scores(scores, what: str) -> np.ndarray:
    """Validates one set of scores: 1-D, non-empty, no NaN; keeps float32."""
    arr = np.asarray(scores)
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64)
    elif not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{what} must be numeric scores, got dtype {arr.dtype}.")
    if arr.ndim != 1:
        raise ValueError(
            f"{what} must be a 1-D array of per-record scores, got shape {arr.shape}; "
            "compute one score per record (e.g. with keras_mi.attacks.loss_score).")
    if arr.size == 0:
        raise ValueError(f"{what} is empty; an attack needs at least one record on "
                         "each side (members and non-members).")
    if np.isnan(arr).any():
        raise ValueError(f"{what} contains NaN; check the model outputs (NaN logits "
                         "usually mean a diverged model).")
    return arr


def roc_curve(member_scores, non_member_scores) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of the attack "member iff score >= threshold".

    Sweeps every distinct score as a threshold, from the highest down, in one
    pass over the merged sorted scores. The curve starts at ``(0, 0)`` (threshold
    ``+inf``) and ends at ``(1, 1)``; it equals
    ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``.

    Args:
      member_scores: ``(n_members,)`` scores of the members (positives).
      non_member_scores: ``(n_non_members,)`` scores of the non-members.

    Returns:
      ``(fpr, tpr, thresholds)``: float64 arrays of equal length; point ``i``
      is the attack with threshold ``thresholds[i]``.

    Example:
      >>> fpr, tpr, thr = roc_curve([3.0, 2.0], [1.0, 0.0])
      >>> tpr.tolist(), fpr.tolist()
      ([0.0, 0.5, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.5, 1.0])
    """
    pos = _as_scores(member_scores, "member_scores")
    neg = _as_scores(non_member_scores, "non_member_scores")
    n_pos, n_neg = pos.size, neg.size
    dtype = np.result_type(pos.dtype, neg.dtype)
    # Sort each set by descending score (ascending -score; np.sort is much
    # faster than argsort), then merge the two sorted runs: a stable argsort
    # of two concatenated runs is a linear-time merge (timsort). The merge
    # order tells which records are members (indices < n_pos).
    merged = np.concatenate([np.sort(-pos.astype(dtype, copy=False)),
                             np.sort(-neg.astype(dtype, copy=False))])
    order = np.argsort(merged, kind="stable")
    sorted_neg_scores = merged[order]
    tps = np.cumsum(order < n_pos)
    # Keep the last index of each run of tied scores: one threshold per value.
    last = np.flatnonzero(sorted_neg_scores[1:] != sorted_neg_scores[:-1])  # inf-safe
    last = np.append(last, merged.size - 1)
    tps = tps[last]
    fps = (last + 1) - tps
    tpr = np.concatenate([[0.0], tps / n_pos])
    fpr = np.concatenate([[0.0], fps / n_neg])
    thresholds = np.concatenate([[np.inf], -sorted_neg_scores[last].astype(np.float64)])
    return fpr, tpr, thresholds


def auc(fpr, tpr) -> float:
    """Area under an ROC curve by the trapezoid rule.

    On a full curve from :func:`roc_curve` this is the probability that a
    random member outscores a random non-member, ties counting one half.

    Example:
      >>> auc([0.0, 0.0, 1.0], [0.0, 1.0, 1.0])
      1.0
    """
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)


def advantage(fpr, tpr) -> float:
    """Attacker advantage ``max(TPR - FPR)`` over all thresholds (Yeom et al.).

    Always ``>= 0`` on a full ROC curve (the point ``(0, 0)`` is included).
    TF-Privacy reports ``max |TPR - FPR|`` instead; the two agree whenever the
    attack is at least as good as chance in the direction it claims.

    Example:
      >>> advantage([0.0, 0.25, 1.0], [0.0, 0.75, 1.0])
      0.5
    """
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    return float(np.max(tpr - fpr))


def best_accuracy(fpr, tpr) -> float:
    """Attack accuracy at the best threshold on a balanced evaluation.

    Balanced accuracy ``(TPR + TNR) / 2`` maximised over thresholds, i.e.
    ``0.5 + advantage / 2``. It equals plain accuracy when members and
    non-members are equally many (the paper's setting) and does not reward
    "everyone is a member" when they are not.

    Example:
      >>> best_accuracy([0.0, 0.25, 1.0], [0.0, 0.75, 1.0])
      0.75
    """
    return 0.5 + advantage(fpr, tpr) / 2.0


def tpr_at_fpr(fpr, tpr, target: float) -> float:
    """TPR at a fixed false-positive rate (the low-FPR metric of Carlini et al.).

    Interpolation: the **largest TPR among ROC points with FPR <= target**
    (a step function; no linear interpolation between points, which would
    credit the attacker with randomised thresholds). Carlini et al.'s code
    uses ``FPR < target``; the two differ only when a point lands exactly on
    the target. With ``n`` non-members the FPR resolution is ``1/n``: for
    ``target < 1/n`` only zero-false-positive thresholds count.

    Args:
      fpr, tpr: an ROC curve from :func:`roc_curve` (starts at ``(0, 0)``).
      target: the FPR, in ``[0, 1]``.

    Example:
      >>> tpr_at_fpr([0.0, 0.0, 0.5, 1.0], [0.0, 0.4, 0.9, 1.0], 0.1)
      0.4
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target FPR must lie in [0, 1], got {target}.")
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    ok = fpr <= target
    return float(np.max(tpr[ok])) if ok.any() else 0.0


def tpr_at_fprs(fpr, tpr, targets: Iterable[float] = DEFAULT_FPR_TARGETS) -> Dict[float, float]:
    """:func:`tpr_at_fpr` for several targets, as ``{target: tpr}``.

    Example:
      >>> tpr_at_fprs([0.0, 0.0, 1.0], [0.0, 0.5, 1.0], (0.01,))
      {0.01: 0.5}
    """
    return {float(t): tpr_at_fpr(fpr, tpr, t) for t in targets}


def best_threshold(member_scores, non_member_scores) -> Tuple[float, float]:
    """Threshold with the best balanced accuracy, and that accuracy.

    The attack predicts "member" iff ``score >= threshold``. Ties between
    thresholds go to the highest one (the most conservative attack).

    Example:
      >>> best_threshold([0.9, 0.8], [0.3, 0.1])
      (0.8, 1.0)
    """
    fpr, tpr, thr = roc_curve(member_scores, non_member_scores)
    i = int(np.argmax(tpr - fpr))
    return float(thr[i]), 0.5 + float(tpr[i] - fpr[i]) / 2.0


def attack_metrics(member_scores, non_member_scores,
                   fpr_targets: Iterable[float] = DEFAULT_FPR_TARGETS) -> Dict[str, object]:
    """All metrics of a score-based attack from one ROC computation.

    Returns:
      dict with ``fpr``, ``tpr``, ``thresholds`` (arrays), ``auc``,
      ``advantage``, ``best_accuracy``, ``best_threshold`` (floats) and
      ``tpr_at_fpr`` (``{target: tpr}``).

    Example:
      >>> m = attack_metrics([0.9, 0.8], [0.3, 0.1])
      >>> m["auc"], m["advantage"]
      (1.0, 1.0)
    """
    fpr, tpr, thr = roc_curve(member_scores, non_member_scores)
    gain = tpr - fpr
    i = int(np.argmax(gain))
    adv = float(gain[i])
    return {
        "fpr": fpr, "tpr": tpr, "thresholds": thr,
        "auc": auc(fpr, tpr),
        "advantage": adv,
        "best_accuracy": 0.5 + adv / 2.0,
        "best_threshold": float(thr[i]),
        "tpr_at_fpr": tpr_at_fprs(fpr, tpr, fpr_targets),
    }
