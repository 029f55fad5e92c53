"""LiRA: the likelihood-ratio membership attack of Carlini et al. (2022).

"Membership Inference Attacks From First Principles" (arXiv 2112.03570).
For each example ``j`` of a pool, ``N`` shadow models are trained on random
halves of the pool; about half of them saw ``j`` ("in"), half did not
("out"). The statistic of a model on ``j`` is the logit-scaled confidence

    phi = log(p_y) - log(1 - p_y) = z_y - logsumexp_{k != y}(z_k),

computed from the logits ``z`` directly (no softmax round trip, so it stays
exact for confidences like ``1 - 1e-12``). Gaussians are fitted to the
shadows' ``phi`` on ``j``: ``N(mu_in, s_in^2)`` and ``N(mu_out, s_out^2)``.

* **online**: score = ``log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2)``,
  the log likelihood ratio of "the target saw ``j``" vs "it did not".
* **offline** (no shadow trained on the target's data needed): a one-sided
  test against the out distribution only, ``Lambda = Pr[Z < phi]`` with
  ``Z ~ N(mu_out, s_out^2)``; we return the equivalent and tie-free score
  ``(phi - mu_out) / s_out`` (``Lambda = Phi(score)``, same ranking).
* **per-example variance** (default): ``s_in``, ``s_out`` fitted for each
  example (unbiased, ``ddof=1``); needs >= 2 in and 2 out shadows per example
  and works best with many shadows (Carlini et al. use 64+).
* **fixed variance**: one global ``s_in`` and one global ``s_out`` pooled over
  all examples (squared deviations from each example's own mean), the better
  choice with few shadows. The means stay per example.

Sign convention: higher score = more likely a member, as for every keras-mi
attack. The score is computed for the target model; the attack evaluation
set (members then non-members) *is* the pool, as in the paper.

Example:
  >>> phi = logit_confidence(np.array([[3.0, 0.0, 0.0]]), np.array([0]))
  >>> round(float(phi[0]), 4)  # log(p / (1 - p)) with p = e^3 / (e^3 + 2)
  2.3069
"""

from __future__ import annotations

import os
import time
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from keras_mi.attacks import shadow_jobs
from keras_mi.attacks.metrics import DEFAULT_FPR_TARGETS
from keras_mi.attacks.results import AttackReport, AttackResult, AttackType, evaluate_scores
from keras_mi.attacks.runner import register_attack
from keras_mi.attacks.scores import logsumexp
from keras_mi.outputs import ModelOutputs

#: (attack type, online, fixed_variance) for each LiRA variant.
LIRA_VARIANTS: Tuple[Tuple[AttackType, bool, bool], ...] = (
    (AttackType.LIRA_ONLINE, True, False),
    (AttackType.LIRA_OFFLINE, False, False),
    (AttackType.LIRA_ONLINE_FIXED_VAR, True, True),
    (AttackType.LIRA_OFFLINE_FIXED_VAR, False, True),
)


def logit_confidence(logits, labels) -> np.ndarray:
    """LiRA's statistic ``phi = log p_y - log(1 - p_y)``, stably from logits.

    Args:
      logits: ``(n, classes)`` pre-softmax outputs (``classes >= 2``);
        leading axes (shadows, queries: ``(N, Q, n, classes)``) are kept.
      labels: ``(n,)`` true classes.

    Returns:
      float64 array of shape ``logits.shape[:-1]``.

    Example:
      >>> logit_confidence(np.array([[0.0, 0.0]]), np.array([1]))
      array([0.])
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim < 2 or z.shape[-1] < 2:
        raise ValueError(f"logits must be (..., n, classes>=2); got {z.shape}.")
    if y.ndim != 1 or len(y) != z.shape[-2]:
        raise ValueError(f"labels must be ({z.shape[-2]},); got {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer) or y.min(initial=0) < 0 \
            or y.max(initial=0) >= z.shape[-1]:
        raise ValueError(f"labels must be integers in [0, {z.shape[-1]}).")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits contain NaN or inf; check the model's training.")
    onehot = np.arange(z.shape[-1]) == y[:, None]
    z_y = np.sum(np.where(onehot, z, 0.0), axis=-1)
    return z_y - logsumexp(np.where(onehot, -np.inf, z))


#: How LiRA centres each Gaussian: the mean (the paper) or the median (its
#: authors' code, more robust to a few outlying shadows).
CENTERS = ("mean", "median")


def _gaussian_fit(stats, mask, fixed_variance, what, min_count, center="mean"):
    """Per-example (and per-query) centre and std of ``stats`` over the shadows where ``mask``.

    ``stats`` is ``(N, n, Q)``, ``mask`` ``(N, n)``; returns ``(n, Q)`` arrays.
    """
    count = mask.sum(axis=0)
    short = int(np.sum(count < min_count))
    if short:
        raise ValueError(
            f"{short} examples have fewer than {min_count} '{what}' shadows; train more "
            "shadows (an even number, >= 4) or use fixed_variance=True.")
    m = np.broadcast_to(mask[..., None], stats.shape)
    n_obs = count[:, None].astype(np.float64)
    if center == "median":
        loc = np.nanmedian(np.where(m, stats, np.nan), axis=0)
    else:
        loc = np.sum(np.where(m, stats, 0.0), axis=0) / n_obs
    sq = np.where(m, (stats - loc) ** 2, 0.0)
    if fixed_variance:
        dof = int(m.sum() - loc.size)
        if dof <= 0:
            raise ValueError(f"need at least 2 '{what}' shadows on some example to fit a variance.")
        std = np.full(loc.shape, np.sqrt(sq.sum() / dof))
    else:
        std = np.sqrt(sq.sum(axis=0) / (n_obs - 1))
    return loc, std


def lira_scores(target_stat, shadow_stats, in_mask, online: bool = True,
                fixed_variance: bool = False, min_std: float = 1e-4,
                center: str = "mean") -> np.ndarray:
    """LiRA membership scores from logit-scaled confidences.

    With several queries per example (augmented views, the last axis), one
    Gaussian is fitted per (example, query) and the score is the mean of
    the per-query scores, as in the LiRA authors' code.

    Args:
      target_stat: ``(n,)`` or ``(n, Q)``: the target's ``phi`` on the pool
        (see :func:`logit_confidence`), per query.
      shadow_stats: ``(N, n)`` or ``(N, n, Q)``: each shadow's ``phi``.
      in_mask: ``(N, n)`` bool, True where shadow ``i`` trained on example ``j``.
      online: likelihood ratio of in vs out (True) or the one-sided offline
        test against out only (False; ``in_mask`` then only selects the outs).
      fixed_variance: one global variance per Gaussian instead of one per
        example (squared deviations from each example's own centre, pooled).
      min_std: floor on the fitted standard deviations (keeps the ratio finite
        when shadows agree exactly).
      center: ``"mean"`` or ``"median"`` of the shadows' ``phi`` (see
        :data:`CENTERS`).

    Returns:
      ``(n,)`` float64 scores, higher = more likely a member.

    Example:
      >>> rng = np.random.default_rng(0)
      >>> mask = np.arange(8)[:, None] % 2 == np.arange(5)[None, :] % 2
      >>> shadow = rng.normal(size=(8, 5)) + 3.0 * mask
      >>> lira_scores(np.full(5, 3.0), shadow, mask).shape
      (5,)
    """
    t = np.asarray(target_stat, dtype=np.float64)
    s = np.asarray(shadow_stats, dtype=np.float64)
    m = np.asarray(in_mask)
    if t.ndim == 1 and s.ndim == 2:
        t, s = t[:, None], s[..., None]
    if (t.ndim != 2 or s.ndim != 3 or s.shape[1:] != t.shape or m.shape != s.shape[:2]):
        raise ValueError(f"need target_stat (n[, Q]), shadow_stats (N, n[, Q]) and in_mask "
                         f"(N, n); got {np.shape(target_stat)}, {np.shape(shadow_stats)}, "
                         f"{m.shape}.")
    if m.dtype != np.bool_:
        raise ValueError("in_mask must be boolean (True = the shadow trained on the example).")
    if center not in CENTERS:
        raise ValueError(f"center must be one of {CENTERS}, got {center!r}.")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(s))):
        raise ValueError("statistics contain NaN or inf.")
    need = 1 if fixed_variance else 2
    mu_out, sd_out = _gaussian_fit(s, ~m, fixed_variance, "out", need, center)
    sd_out = np.maximum(sd_out, min_std)
    if not online:
        return np.mean((t - mu_out) / sd_out, axis=1)
    mu_in, sd_in = _gaussian_fit(s, m, fixed_variance, "in", need, center)
    sd_in = np.maximum(sd_in, min_std)
    log_in = -0.5 * ((t - mu_in) / sd_in) ** 2 - np.log(sd_in)
    log_out = -0.5 * ((t - mu_out) / sd_out) ** 2 - np.log(sd_out)
    return np.mean(log_in - log_out, axis=1)


def lira_attack(target_logits, labels, shadow_logits, in_mask, is_member,
                variants: Optional[Iterable[AttackType]] = None,
                fpr_targets: Sequence[float] = DEFAULT_FPR_TARGETS,
                keep_scores: bool = False) -> List[AttackResult]:
    """Runs the LiRA variants on a pool and evaluates members vs non-members.

    Args:
      target_logits: ``(n, classes)`` the target's logits on the pool.
      labels: ``(n,)`` pool labels.
      shadow_logits: ``(N, n, classes)`` shadow logits on the pool.
      in_mask: ``(N, n)`` bool shadow membership.
      is_member: ``(n,)`` bool, True for the target's training members.
      variants: :class:`AttackType` LiRA members to run (default all four).
      fpr_targets: low FPRs to report TPR at.
      keep_scores: keep per-example scores on the results.

    Returns:
      One :class:`AttackResult` per variant.

    Example:
      >>> results = lira_attack(t_logits, y, s_logits, mask, is_member)  # doctest: +SKIP
      >>> results[0].tpr_at_fpr[0.001]  # doctest: +SKIP
    """
    is_member = np.asarray(is_member, dtype=bool)
    if is_member.shape != (len(labels),) or is_member.all() or not is_member.any():
        raise ValueError(f"is_member must be a ({len(labels)},) bool mask holding both "
                         "members and non-members.")
    start = time.perf_counter()
    target_stat = logit_confidence(target_logits, labels)
    shadow_stats = logit_confidence(shadow_logits, labels)
    stat_time = time.perf_counter() - start
    wanted = None if variants is None else {AttackType(v) for v in variants}
    results = []
    for kind, online, fixed in LIRA_VARIANTS:
        if wanted is not None and kind not in wanted:
            continue
        t0 = time.perf_counter()
        scores = lira_scores(target_stat, shadow_stats, in_mask, online=online,
                             fixed_variance=fixed)
        elapsed = stat_time + time.perf_counter() - t0
        results.append(evaluate_scores(
            scores[is_member], scores[~is_member], name=kind.value, attack_type=kind,
            fpr_targets=fpr_targets, keep_scores=keep_scores, wall_time_s=elapsed,
            notes=f"{shadow_stats.shape[0]} shadow models"))
    if wanted is not None and len(results) != len(wanted):
        raise ValueError(f"not LiRA variants: {sorted(map(str, wanted))}; choose from "
                         f"{[k.value for k, _, _ in LIRA_VARIANTS]}.")
    return results


def lira_pool(members: Tuple[np.ndarray, np.ndarray],
              non_members: Tuple[np.ndarray, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """The LiRA pool for a target: ``(x, y)`` of members then non-members.

    This order matches ``ModelOutputs`` (``members`` then ``non_members``),
    which :func:`aggregate_lira` relies on.

    Example:
      >>> x, y = lira_pool((np.ones((2, 3)), np.array([0, 1])),
      ...                  (np.zeros((1, 3)), np.array([2])))
      >>> y.tolist()
      [0, 1, 2]
    """
    x = np.concatenate([np.asarray(members[0]), np.asarray(non_members[0])])
    y = np.concatenate([np.asarray(members[1]), np.asarray(non_members[1])]).astype(np.int64)
    return x, y


def aggregate_lira(out_dir, target: ModelOutputs, num_shadows: Optional[int] = None,
                   variants: Optional[Iterable[AttackType]] = None, pool=None,
                   fpr_targets: Sequence[float] = DEFAULT_FPR_TARGETS,
                   keep_scores: bool = False) -> AttackReport:
    """Loads the finished shadows of ``out_dir`` and attacks ``target`` with LiRA.

    The shadows must have been trained (by :func:`keras_mi.attacks.train_half_shadow`)
    on ``lira_pool(members, non_members)`` of this target; the pool labels
    stored with them are checked against the target's labels. Missing shadow
    indices raise a ``ValueError`` listing them.

    Args:
      out_dir: folder of ``shadow_NNNN.npz`` files (or a loaded
        :class:`~keras_mi.attacks.shadow_jobs.ShadowBank`).
      target: the target's outputs (``members`` and ``non_members`` splits).
      num_shadows: expected number of shadows (checked when given).
      variants: LiRA variants to run (default all four).
      pool: optional ``(x, y)`` to check the stored pool fingerprint against.
      fpr_targets: low FPRs to report TPR at.
      keep_scores: keep per-example scores on the results.

    Returns:
      An :class:`AttackReport` with one result per variant; ``metadata``
      holds ``num_shadows``, ``pool_fingerprint`` and ``seed``.

    Example:
      >>> target = ModelOutputs.load_npz("target.npz")  # doctest: +SKIP
      >>> report = aggregate_lira("runs/lira", target)  # doctest: +SKIP
      >>> print(report.summary())  # doctest: +SKIP
    """
    if isinstance(out_dir, shadow_jobs.ShadowBank):
        bank = out_dir
        if num_shadows is not None and num_shadows != bank.num_shadows:
            raise ValueError(f"asked for {num_shadows} shadows, the bank has {bank.num_shadows}.")
        if pool is not None and shadow_jobs.pool_fingerprint(pool) != bank.fingerprint:
            raise ValueError("the shadows were trained on another pool (fingerprint differs).")
    else:
        bank = shadow_jobs.load_shadows(out_dir, num_shadows=num_shadows, pool=pool)
    logits = np.concatenate([target.logits["members"], target.logits["non_members"]])
    labels = np.concatenate([target.labels["members"], target.labels["non_members"]])
    if labels.shape != bank.labels.shape or not np.array_equal(labels, bank.labels):
        raise ValueError(
            "the target's members + non_members labels differ from the shadows' pool labels; "
            "train the shadows on lira_pool(members, non_members) of this target, in order.")
    if logits.shape[1] != bank.logits.shape[2]:
        raise ValueError(f"target has {logits.shape[1]} classes, shadows {bank.logits.shape[2]}.")
    is_member = np.arange(len(labels)) < len(target.labels["members"])
    results = lira_attack(logits, labels, bank.logits, bank.in_mask, is_member,
                          variants=variants, fpr_targets=fpr_targets, keep_scores=keep_scores)
    return AttackReport(results=results, metadata={
        "num_shadows": bank.num_shadows, "pool_fingerprint": bank.fingerprint,
        "seed": bank.seed})


def run_lira(target: ModelOutputs, pool, train_fn: Callable, num_shadows: int, out_dir,
             seed: int = 0, variants: Optional[Iterable[AttackType]] = None,
             verbose: int = 1) -> AttackReport:
    """Trains all shadows on this machine (resuming finished ones), then aggregates.

    Args:
      target: the target's outputs.
      pool: ``lira_pool(members, non_members)`` of the target's data.
      train_fn: ``train_fn(x, y, seed) -> model`` with the target's recipe
        (see :func:`keras_mi.attacks.make_train_fn`).
      num_shadows: how many shadows (even; >= 4, 16+ recommended).
      out_dir: where shadow files go (reruns skip finished shadows).
      seed: run seed.

    Example:
      >>> pool = lira_pool((x_mem, y_mem), (x_non, y_non))  # doctest: +SKIP
      >>> report = run_lira(outputs, pool, train_fn, 16, "runs/lira")  # doctest: +SKIP
    """
    shadow_jobs.train_half_shadows(num_shadows, pool, train_fn, out_dir, seed=seed, verbose=verbose)
    return aggregate_lira(out_dir, target, num_shadows=num_shadows, variants=variants, pool=pool)


@register_attack("lira", default=False)
def _lira_for_run(outputs: ModelOutputs, shadow_outputs=None, *,
                  fpr_targets: Sequence[float] = DEFAULT_FPR_TARGETS, keep_scores: bool = False,
                  shadow_dir=None, num_shadows: Optional[int] = None,
                  variants: Optional[Iterable[AttackType]] = None) -> List[AttackResult]:
    """``keras_mi.attacks.run(outputs, ["lira"], options={"lira": {"shadow_dir": d}})``.

    LiRA's shadows are trained on the target's own pool (see
    :func:`keras_mi.attacks.train_half_shadow`), unlike the shadow models of the
    other attacks, so they come as ``shadow_dir`` (or a ``ShadowBank`` /
    folder given as ``shadow_outputs``). Not run by default.
    """
    source = shadow_dir
    if source is None and isinstance(shadow_outputs, (str, os.PathLike, shadow_jobs.ShadowBank)):
        source = shadow_outputs
    if source is None:
        raise ValueError("the 'lira' attack needs shadows trained on the target's pool: run "
                         "train_half_shadow for every index, then pass options={'lira': "
                         "{'shadow_dir': out_dir}}.")
    return aggregate_lira(source, outputs, num_shadows=num_shadows, variants=variants,
                          fpr_targets=fpr_targets, keep_scores=keep_scores).results
