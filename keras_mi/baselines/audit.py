"""Empirical lower bounds on ε from membership scores (DP auditing).

If a training algorithm is (ε, δ)-DP, then for *any* membership test (any
score and threshold) on neighbouring datasets ``D`` (record out) and ``D'``
(record in), the true and false positive rates satisfy
``TPR <= e^ε FPR + δ`` and ``1 - FPR <= e^ε (1 - TPR) + δ``. Measured rates
turn this around into a lower bound on ε (Kairouz et al., 2015; Jagielski
et al., 2020; Nasr et al., 2021):

``ε_lb = max( log((TPR_lo - δ) / FPR_hi), log((1 - FPR_hi - δ) / (1 - TPR_lo)) )``

where ``TPR_lo`` is a one-sided Clopper–Pearson lower bound on TPR and
``FPR_hi`` an upper bound on FPR at the threshold. Both forms need a lower
bound on their numerator and an upper bound on their denominator, so both
use ``TPR_lo`` and ``FPR_hi`` (the second form written with ``FPR_lo`` and
``TPR_hi`` would bound nothing: ``1 - FPR_lo`` is an *upper* bound on TNR). ``member_scores`` are
the scores of runs/pairs where the record was in, ``non_member_scores``
where it was out; higher means "member" (pass ``-loss`` for a loss).

How the confidence is spent: the bound uses two one-sided bounds,
``TPR_lo`` and ``FPR_hi``, each at level ``1 - (1 - confidence) / 2``, so by
a union bound both hold at once with probability at least ``confidence``
(members and non-members are independent samples, but the union bound does
not need that), and ``ε_lb`` is then at most the true ε. That needs the
threshold to be fixed before the rates are counted. With ``split=True``
(the default) they are: the scores of each group are split into two halves
(seeded), the threshold and expression maximising ``ε_lb`` are chosen on the
first half, and only that one is evaluated on the second. ``split=False``
chooses and evaluates on all the scores (more data, but the maximum over
thresholds makes it optimistic: the bounds no longer hold simultaneously, as
in the "best threshold" reports of the papers). Negative values are
reported as 0 (ε >= 0 needs no evidence).

A threshold ``t`` predicts "member" for scores ``>= t``; the candidates are
the distinct scores of the selection half (and ``+inf``, predicting nobody).

This module imports NumPy and SciPy only.

Warnings:
  A lower bound, not an estimate: a small ``ε_lb`` says the attack and the
  sample size found no more, never that the model is private. The bound is
  about the pairs ``(D, D')`` the scores came from (e.g. one canary; in the
  bank protocol, records pooled over models, whose pairs are not the
  worst-case neighbours and are not independent across records of one
  model). ``ε_lb`` cannot exceed about ``log(n / log(2 / (1 - confidence)))``
  for ``n`` evaluated scores per group, however leaky the model.

References:
  Kairouz, Oh, Viswanath, "The Composition Theorem for Differential
  Privacy", ICML 2015, https://arxiv.org/abs/1311.0776.
  Jagielski, Ullman, Oprea, "Auditing Differentially Private Machine
  Learning: How Private is Private SGD?", NeurIPS 2020,
  https://arxiv.org/abs/2006.07709.
  Nasr, Song, Thakurta, Papernot, Carlini, "Adversary Instantiation: Lower
  Bounds for Differentially Private Machine Learning", IEEE S&P 2021,
  https://arxiv.org/abs/2101.04535.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np

#: The two forms of the bound: via (TPR, FPR) or via (TNR, FNR).
DIRECTIONS = ("tpr/fpr", "tnr/fnr")


@dataclasses.dataclass(frozen=True)
class EmpiricalEpsilon:
    """An empirical lower bound on ε and the test it came from.

    Attributes:
      epsilon: the lower bound (0 when the evidence gives none).
      threshold: scores ``>= threshold`` are called members.
      direction: ``"tpr/fpr"`` (``log((TPR_lo - δ) / FPR_hi)``) or
        ``"tnr/fnr"`` (``log((1 - FPR_hi - δ) / (1 - TPR_lo))``).
      tpr, fpr: the rates on the evaluated scores.
      tpr_low, fpr_high: the one-sided Clopper–Pearson lower bound on TPR
        and upper bound on FPR, each at level ``1 - (1 - confidence) / 2``.
      num_members, num_non_members: how many scores were evaluated.
      delta, confidence, split: the settings.
    """

    epsilon: float
    threshold: float
    direction: str
    tpr: float
    fpr: float
    tpr_low: float
    fpr_high: float
    num_members: int
    num_non_members: int
    delta: float
    confidence: float
    split: bool


def _one_sided_cp(k, n, alpha):
    """One-sided Clopper–Pearson bounds at level ``1 - alpha`` (vectorized)."""
    from scipy import stats  # pylint: disable=import-outside-toplevel

    k = np.asarray(k, dtype=float)
    with np.errstate(all="ignore"):
        low = np.where(k == 0, 0.0, stats.beta.ppf(alpha, np.maximum(k, 1), n - k + 1))
        high = np.where(k == n, 1.0, stats.beta.ppf(1 - alpha, k + 1, np.maximum(n - k, 1)))
    return low, high


def _log_ratio(num, den):
    with np.errstate(all="ignore"):
        return np.where((num > 0) & (den > 0), np.log(np.maximum(num, 1e-300) /
                                                       np.maximum(den, 1e-300)), -np.inf)


def _rates(members, non_members, thresholds):
    """Counts of scores ``>= t`` for each threshold."""
    m, nm = np.sort(members), np.sort(non_members)
    tp = len(m) - np.searchsorted(m, thresholds, side="left")
    fp = len(nm) - np.searchsorted(nm, thresholds, side="left")
    return tp, fp


def _bounds(members, non_members, thresholds, delta, alpha):
    """Both forms of ε_lb for every threshold, and the CP bounds behind them."""
    tp, fp = _rates(members, non_members, thresholds)
    tpr_lo, _ = _one_sided_cp(tp, len(members), alpha)
    _, fpr_hi = _one_sided_cp(fp, len(non_members), alpha)
    eps = np.stack([_log_ratio(tpr_lo - delta, fpr_hi),
                    _log_ratio(1.0 - fpr_hi - delta, 1.0 - tpr_lo)])
    return eps, (tp, fp, tpr_lo, fpr_hi)


def _check_scores(name, scores) -> np.ndarray:
    scores = np.asarray(scores, dtype=float).ravel()
    if len(scores) < 2:
        raise ValueError(f"'{name}' needs at least 2 scores, got {len(scores)}.")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"'{name}' contains NaN or inf.")
    return scores


def split_halves(num: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """The selection and evaluation halves :func:`empirical_epsilon` uses.

    Args:
      num: number of scores in one group.
      rng: the generator (one permutation is drawn).

    Returns:
      ``(select, evaluate)`` index arrays: the first ``num // 2`` entries of
      ``rng.permutation(num)`` and the rest.

    Example:
      >>> s, e = split_halves(5, np.random.default_rng(0))
      >>> len(s), len(e)
      (2, 3)
    """
    perm = rng.permutation(num)
    return perm[:num // 2], perm[num // 2:]


def empirical_epsilon(member_scores, non_member_scores, delta: float = 0.0,
                      confidence: float = 0.95, split: bool = True,
                      seed: Optional[int] = 0) -> EmpiricalEpsilon:
    """A Clopper–Pearson lower bound on ε from in/out membership scores.

    Args:
      member_scores: scores of the runs (or model/record pairs) where the
        record was a member; higher means "member".
      non_member_scores: the same score where it was not.
      delta: the δ of the (ε, δ) claim being audited, in ``[0, 1)``.
      confidence: probability (over the scores) that the bound holds, in
        ``(0, 1)``; split over two one-sided bounds (module docstring).
      split: True chooses the threshold and form on one half of each group
        and evaluates them on the other (a valid bound); False uses all
        scores for both (optimistic).
      seed: seeds the halves (``numpy.random.default_rng(seed)``, members'
        permutation drawn first, see :func:`split_halves`).

    Returns:
      An :class:`EmpiricalEpsilon`.

    Raises:
      ValueError: fewer than 2 scores in a group (4 with ``split``), NaN or
        inf, or ``delta``/``confidence`` out of range.

    Example:
      >>> rng = np.random.default_rng(0)
      >>> r = empirical_epsilon(rng.normal(3, 1, 2000), rng.normal(0, 1, 2000),
      ...                       delta=1e-5)
      >>> r.epsilon > 1.0
      True
    """
    members = _check_scores("member_scores", member_scores)
    non_members = _check_scores("non_member_scores", non_member_scores)
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must lie in [0, 1), got {delta}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}.")
    alpha = (1.0 - confidence) / 2.0  # two one-sided bounds per form (union bound)
    if split:
        if min(len(members), len(non_members)) < 4:
            raise ValueError("split=True needs at least 4 scores per group.")
        rng = np.random.default_rng(seed)
        m_sel, m_eval = split_halves(len(members), rng)
        n_sel, n_eval = split_halves(len(non_members), rng)
        select = (members[m_sel], non_members[n_sel])
        evaluate = (members[m_eval], non_members[n_eval])
    else:
        select = evaluate = (members, non_members)
    candidates = np.append(np.unique(np.concatenate(select)), np.inf)
    eps, _ = _bounds(*select, candidates, delta, alpha)
    form, best = np.unravel_index(int(np.argmax(eps)), eps.shape)
    threshold = float(candidates[best])
    eps, (tp, fp, tpr_lo, fpr_hi) = _bounds(
        *evaluate, np.array([threshold]), delta, alpha)
    value = float(eps[form, 0])
    n_m, n_n = len(evaluate[0]), len(evaluate[1])
    return EmpiricalEpsilon(
        epsilon=max(value, 0.0),
        threshold=threshold, direction=DIRECTIONS[form], tpr=float(tp[0]) / n_m,
        fpr=float(fp[0]) / n_n, tpr_low=float(tpr_lo[0]), fpr_high=float(fpr_hi[0]),
        num_members=n_m,
        num_non_members=n_n, delta=float(delta), confidence=float(confidence),
        split=bool(split))


def empirical_epsilon_of_attacks(scores, delta: float = 0.0, confidence: float = 0.95,
                                 split: bool = True, seed: Optional[int] = 0) -> dict:
    """The largest :func:`empirical_epsilon` over several attacks, still a valid bound.

    Taking the best of ``k`` attacks is one more choice made on the data, so
    each attack's bound is computed at confidence ``1 - (1 - confidence) / k``
    (Bonferroni); the maximum then holds with probability ``confidence``.

    Args:
      scores: attack name -> ``(member_scores, non_member_scores)``.
      delta, confidence, split, seed: as for :func:`empirical_epsilon`.

    Returns:
      JSON-ready ``{"epsilon", "attack", "delta", "confidence", "split",
      "per_attack": {name: {"epsilon", "threshold", "tpr", "fpr", "tpr_low",
      "fpr_high", "num_members", "num_non_members"}}}``; ``attack`` is None
      when no attack gives a positive bound, ``threshold`` None for ``+inf``.

    Example:
      >>> rng = np.random.default_rng(0)
      >>> out = empirical_epsilon_of_attacks(
      ...     {"a": (rng.normal(2, 1, 500), rng.normal(0, 1, 500)),
      ...      "b": (rng.normal(0, 1, 500), rng.normal(0, 1, 500))})
      >>> out["attack"]
      'a'
    """
    if not scores:
        raise ValueError("Need the scores of at least one attack.")
    per_attack_confidence = 1.0 - (1.0 - confidence) / len(scores)
    per_attack, best, best_name = {}, 0.0, None
    for name, (members, non_members) in scores.items():
        r = empirical_epsilon(members, non_members, delta=delta,
                              confidence=per_attack_confidence, split=split, seed=seed)
        per_attack[name] = {k: getattr(r, k) for k in (
            "epsilon", "tpr", "fpr", "tpr_low", "fpr_high", "num_members", "num_non_members")}
        # +inf (call nobody a member) is not valid strict JSON.
        per_attack[name]["threshold"] = r.threshold if np.isfinite(r.threshold) else None
        if r.epsilon > best:
            best, best_name = r.epsilon, name
    return {"epsilon": best, "attack": best_name, "delta": float(delta),
            "confidence": float(confidence), "split": bool(split), "per_attack": per_attack}
