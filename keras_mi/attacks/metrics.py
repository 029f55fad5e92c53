"""Attack metrics from membership scores: ROC, AUC, accuracy, advantage, TPR@FPR.

Plain NumPy, no scikit-learn, so it is fast on millions of records and works
without TensorFlow.

Sign convention (used by every attack in keras-mi): a **higher score means
"more likely a member"**, and the attack at threshold ``t`` predicts
"member" iff ``score >= t``. Scores that are naturally lower for members are
negated by the score functions (e.g. the loss attack scores ``-loss``).

All metrics come from one ROC curve built by sorting members and
non-members separately and merging the two sorted runs (``O(n log n)``);
tied scores are one threshold, so a tie counts half in the AUC (the
Mann-Whitney convention, as in ``sklearn.metrics``).

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


def tpr_at_fpr(fpr, tpr, target: float, strict: bool = False) -> float:
    """TPR at a fixed false-positive rate (the low-FPR metric of Carlini et al.).

    Interpolation: the **largest TPR among ROC points with FPR <= target**
    (a step function; no linear interpolation between points, which would
    credit the attacker with randomised thresholds). This is keras-mi's one
    rule because it reads "the attack's FPR does not exceed the target";
    Carlini et al.'s code uses ``FPR < target`` (``strict=True``). The two
    differ only when a point lands exactly on the target, i.e. by one false
    positive, which is why :func:`low_fpr_point` also reports the strict
    value and calls a figure resolved only when ``target`` allows at least
    :data:`MIN_FALSE_POSITIVES` false positives. With ``n`` non-members the
    FPR resolution is ``1/n``.

    Args:
      fpr, tpr: an ROC curve from :func:`roc_curve` (starts at ``(0, 0)``).
      target: the FPR, in ``[0, 1]``.
      strict: use ``FPR < target`` instead of ``FPR <= target``.

    Example:
      >>> tpr_at_fpr([0.0, 0.0, 0.5, 1.0], [0.0, 0.4, 0.9, 1.0], 0.5)
      0.9
      >>> tpr_at_fpr([0.0, 0.0, 0.5, 1.0], [0.0, 0.4, 0.9, 1.0], 0.5, strict=True)
      0.4
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target FPR must lie in [0, 1], got {target}.")
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    ok = fpr < target if strict else fpr <= target
    return float(np.max(tpr[ok])) if ok.any() else 0.0


#: A TPR@FPR figure is "resolved" when the FPR target allows at least this
#: many false positives (``n_negatives * target >= MIN_FALSE_POSITIVES``);
#: below it, one false positive more or less moves the figure a lot and the
#: two boundary rules disagree, so reports show ``n/a`` instead.
MIN_FALSE_POSITIVES = 10


def clopper_pearson(successes: int, trials: int,
                    confidence: float = 0.95) -> Tuple[float, float]:
    """Exact (Clopper-Pearson) binomial confidence interval for ``k / n``.

    Args:
      successes: ``k``, the number of successes (``0 <= k <= n``).
      trials: ``n >= 1``.
      confidence: the interval's coverage, in ``(0, 1)``.

    Returns:
      ``(low, high)`` with ``low = 0`` when ``k = 0`` and ``high = 1`` when
      ``k = n``.

    Example:
      >>> lo, hi = clopper_pearson(0, 10)
      >>> lo, round(hi, 4)  # 1 - 0.025 ** (1 / 10)
      (0.0, 0.3085)
    """
    from scipy import stats

    k, n = int(successes), int(trials)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1; got {k}, {n}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}.")
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def low_fpr_point(fpr, tpr, n_positives: int, n_negatives: int, target: float,
                  confidence: float = 0.95) -> Dict[str, object]:
    """TPR at one low FPR with everything needed to read it honestly.

    Args:
      fpr, tpr: an ROC curve from :func:`roc_curve`.
      n_positives, n_negatives: how many members and non-members it was
        built from.
      target: the FPR.
      confidence: coverage of the interval.

    Returns:
      dict with ``tpr`` (rule ``FPR <= target``), ``tpr_strict`` (rule
      ``FPR < target``), ``n_negatives``, ``resolved`` (``n_negatives *
      target >= MIN_FALSE_POSITIVES``), ``negatives_needed`` (the smallest
      count that resolves ``target``) and ``ci``: a Clopper-Pearson interval
      on the true positives at that threshold.

    Warning:
      The interval treats the threshold as fixed: it covers the sampling
      noise of the members, not that of the non-members that chose the
      threshold, so it is a lower bound on the real uncertainty.

    Example:
      >>> p = low_fpr_point([0.0, 0.0, 1.0], [0.0, 0.5, 1.0], 10, 100, 0.01)
      >>> p["tpr"], p["resolved"], p["negatives_needed"]
      (0.5, False, 1000)
    """
    value = tpr_at_fpr(fpr, tpr, target)
    needed = int(np.ceil(MIN_FALSE_POSITIVES / target - 1e-9)) if target > 0 else None
    k = int(round(value * n_positives))
    return {
        "tpr": value, "tpr_strict": tpr_at_fpr(fpr, tpr, target, strict=True),
        "n_negatives": int(n_negatives),
        "resolved": bool(target > 0 and n_negatives * target >= MIN_FALSE_POSITIVES - 1e-9),
        "negatives_needed": needed,
        "ci": list(clopper_pearson(k, n_positives, confidence)),
    }


def members_above_all(member_scores, non_member_scores) -> int:
    """How many members score strictly above every non-member.

    These members are identified with no false positive at all: for the
    loss attack, members whose loss is lower than every non-member's. AUC
    and TPR at a coarse FPR can both hide them.

    Example:
      >>> members_above_all([0.9, 0.5, 0.1], [0.6, 0.2])
      1
    """
    pos = _as_scores(member_scores, "member_scores")
    neg = _as_scores(non_member_scores, "non_member_scores")
    return int(np.sum(pos > np.max(neg)))


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
      ``advantage``, ``best_accuracy``, ``best_threshold`` (floats),
      ``tpr_at_fpr`` (``{target: tpr}``), ``low_fpr`` (``{target:
      low_fpr_point(...)}``) and ``members_above_all`` (int).

    Example:
      >>> m = attack_metrics([0.9, 0.8], [0.3, 0.1])
      >>> m["auc"], m["advantage"]
      (1.0, 1.0)
    """
    fpr, tpr, thr = roc_curve(member_scores, non_member_scores)
    gain = tpr - fpr
    i = int(np.argmax(gain))
    adv = float(gain[i])
    n_pos, n_neg = int(np.size(member_scores)), int(np.size(non_member_scores))
    return {
        "fpr": fpr, "tpr": tpr, "thresholds": thr,
        "auc": auc(fpr, tpr),
        "advantage": adv,
        "best_accuracy": 0.5 + adv / 2.0,
        "best_threshold": float(thr[i]),
        "tpr_at_fpr": tpr_at_fprs(fpr, tpr, fpr_targets),
        "low_fpr": {float(t): low_fpr_point(fpr, tpr, n_pos, n_neg, t) for t in fpr_targets},
        "members_above_all": members_above_all(member_scores, non_member_scores),
    }
