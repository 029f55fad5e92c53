"""Threshold attacks: the gap attack, global and class-dependent thresholds.

* **Gap attack** (Yeom et al. 2018): "member iff correctly classified". Its
  ROC has a single inner point ``(acc_non_members, acc_members)``, so on
  balanced sets its accuracy is ``0.5 + gap / 2`` and its AUC equals that too.
* **Global threshold** on a score (``loss``, ``confidence``,
  ``max_confidence``, ``entropy``, ``modified_entropy``, see
  :mod:`keras_mi.attacks.scores`): the ROC over the target's own scores *is*
  the threshold sweep, so AUC, TPR@FPR and the best accuracy/advantage are
  those of an attacker who picks the best threshold (an upper bound for a
  real attacker, the standard way to report these attacks).
* **Class-dependent thresholds** (Song & Mittal 2021): one threshold per true
  class, each maximising balanced accuracy on *shadow* models' members vs
  non-members (classes missing on either side fall back to the shadow's
  global threshold), then applied unchanged to the target. ``best_accuracy``
  and ``advantage`` are those of that fixed rule (the advantage can be
  negative when the thresholds transfer badly). ``auc`` and ``tpr_at_fpr``
  sweep one common offset over the calibrated score ``s - t_y`` on the
  target, so ``auc`` measures how well the per-class calibration ranks
  records; offset 0 is the learned rule.

Every attack can also compare the MMD ``reference`` (validation) records
against non-members (``positives="reference"``): the paper's check that the
regularizer, which sees the reference set, does not leak it.
"""

from __future__ import annotations

import time
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np

from keras_mi.attacks import metrics as _metrics
from keras_mi.attacks import scores as _scores
from keras_mi.attacks.results import AttackResult, AttackType, evaluate_scores
from keras_mi.outputs import ModelOutputs

ShadowOutputs = Union[ModelOutputs, Sequence[ModelOutputs]]


def _split(outputs: ModelOutputs, split: str) -> Tuple[np.ndarray, np.ndarray]:
    got = outputs.get(split)
    if got is None:
        raise ValueError(f"The model outputs have no '{split}' split (have "
                         f"{sorted(outputs.logits)}); pass it to ModelOutputs.from_arrays.")
    if got[0].shape[0] == 0:
        raise ValueError(f"The '{split}' split is empty; an attack needs records on both sides.")
    return got


class ScoreCache:
    """Computes each split's score once (with :data:`keras_mi.attacks.scores.SCORES`).

    Example:
      >>> out = ModelOutputs.from_arrays(members=(np.eye(2), np.array([0, 1])),
      ...                                non_members=(np.eye(2), np.array([1, 0])))
      >>> ScoreCache(out).get("members", "confidence").round(3).tolist()
      [0.731, 0.731]
    """

    def __init__(self, outputs: ModelOutputs):
        self.outputs = outputs
        self._scores: Dict[Tuple[str, str], np.ndarray] = {}

    def get(self, split: str, score: str) -> np.ndarray:
        """The ``(n,)`` scores of ``split`` under ``score`` (a key of ``SCORES``)."""
        key = (split, score)
        if key not in self._scores:
            if score not in _scores.SCORES:
                raise ValueError(f"unknown score '{score}'; choose from "
                                 f"{_scores.SCORE_NAMES}.")
            logits, labels = _split(self.outputs, split)
            self._scores[key] = _scores.SCORES[score](logits, labels)
        return self._scores[key]


def gap_attack(outputs: ModelOutputs, positives: str = "members",
               negatives: str = "non_members",
               fpr_targets: Iterable[float] = _metrics.DEFAULT_FPR_TARGETS,
               cache: Optional[ScoreCache] = None, keep_scores: bool = False) -> AttackResult:
    """Member iff correctly classified; accuracy ``0.5 + gap / 2``.

    Example:
      >>> out = ModelOutputs.from_arrays(
      ...     members=(np.array([[2.0, 0.0], [0.0, 2.0]]), np.array([0, 1])),
      ...     non_members=(np.array([[2.0, 0.0], [2.0, 0.0]]), np.array([0, 1])))
      >>> gap_attack(out).best_accuracy  # train acc 1.0, test acc 0.5
      0.75
    """
    start = time.perf_counter()
    cache = cache or ScoreCache(outputs)
    pos, neg = cache.get(positives, "correct"), cache.get(negatives, "correct")
    gap = float(pos.mean() - neg.mean())
    return evaluate_scores(
        pos, neg, name="gap", attack_type=AttackType.GAP, fpr_targets=fpr_targets,
        keep_scores=keep_scores, positives=positives, negatives=negatives,
        notes=f"single ROC point: member iff correctly classified; accuracy gap "
              f"{gap:+.4f} (train {pos.mean():.4f}, held-out {neg.mean():.4f})",
        wall_time_s=time.perf_counter() - start)


def threshold_attack(outputs: ModelOutputs, score: str, positives: str = "members",
                     negatives: str = "non_members",
                     fpr_targets: Iterable[float] = _metrics.DEFAULT_FPR_TARGETS,
                     cache: Optional[ScoreCache] = None,
                     keep_scores: bool = False) -> AttackResult:
    """Global threshold on one score, swept over the target's records.

    Args:
      outputs: the target's :class:`~keras_mi.outputs.ModelOutputs`.
      score: one of :data:`keras_mi.attacks.scores.SCORE_NAMES`.
      positives, negatives: the splits to separate (members vs non-members,
        or reference vs non-members).

    Example:
      >>> out = ModelOutputs.from_arrays(
      ...     members=(np.array([[3.0, 0.0], [0.0, 3.0]]), np.array([0, 1])),
      ...     non_members=(np.array([[1.0, 0.0], [0.0, 0.5]]), np.array([0, 1])))
      >>> threshold_attack(out, "loss").auc
      1.0
    """
    start = time.perf_counter()
    cache = cache or ScoreCache(outputs)
    pos, neg = cache.get(positives, score), cache.get(negatives, score)
    return evaluate_scores(
        pos, neg, name=score, attack_type=AttackType(score), fpr_targets=fpr_targets,
        keep_scores=keep_scores, positives=positives, negatives=negatives,
        wall_time_s=time.perf_counter() - start)


def _as_shadow_list(shadow_outputs: ShadowOutputs,
                    num_classes: Optional[int]) -> Sequence[ModelOutputs]:
    if shadow_outputs is None:
        raise ValueError("Class-dependent thresholds need shadow_outputs: ModelOutputs "
                         "(members/non_members) of one or more shadow models.")
    shadows = [shadow_outputs] if isinstance(shadow_outputs, ModelOutputs) else list(shadow_outputs)
    if not shadows:
        raise ValueError("shadow_outputs is empty; give at least one shadow model's outputs.")
    for i, s in enumerate(shadows):
        if not isinstance(s, ModelOutputs):
            raise TypeError(f"shadow_outputs[{i}] is {type(s).__name__}, expected ModelOutputs.")
        if num_classes is not None and s.num_classes != num_classes:
            raise ValueError(f"shadow_outputs[{i}] has {s.num_classes} classes, the target "
                             f"{num_classes}; shadows must share the target's label space.")
    return shadows


def learn_class_thresholds(shadow_outputs: ShadowOutputs, score: str,
                           num_classes: Optional[int] = None) -> np.ndarray:
    """Per-class thresholds maximising balanced accuracy on shadow models.

    Pools the members and non-members of every shadow model; classes without
    records on both sides get the threshold learned on all classes.

    Returns:
      ``(num_classes,)`` thresholds (score units; "member" iff
      ``score >= thresholds[y]``; ``+inf`` = never "member").

    Example:
      >>> sh = ModelOutputs.from_arrays(
      ...     members=(np.array([[3.0, 0.0], [0.0, 1.0]]), np.array([0, 1])),
      ...     non_members=(np.array([[1.0, 0.0], [0.0, 0.2]]), np.array([0, 1])))
      >>> learn_class_thresholds(sh, "confidence").round(3).tolist()
      [0.953, 0.731]
    """
    if num_classes is None:
        first = _as_shadow_list(shadow_outputs, None)[0]
        num_classes = first.num_classes
    shadows = _as_shadow_list(shadow_outputs, num_classes)
    pos_s, pos_y, neg_s, neg_y = [], [], [], []
    for s in shadows:
        cache = ScoreCache(s)
        pos_s.append(cache.get("members", score))
        pos_y.append(_split(s, "members")[1])
        neg_s.append(cache.get("non_members", score))
        neg_y.append(_split(s, "non_members")[1])
    pos_s, pos_y = np.concatenate(pos_s), np.concatenate(pos_y)
    neg_s, neg_y = np.concatenate(neg_s), np.concatenate(neg_y)
    fallback, _ = _metrics.best_threshold(pos_s, neg_s)
    thresholds = np.full(num_classes, fallback, dtype=np.float64)
    for c in range(num_classes):
        p, n = pos_s[pos_y == c], neg_s[neg_y == c]
        if p.size and n.size:
            thresholds[c], _ = _metrics.best_threshold(p, n)
    return thresholds


def class_threshold_attack(outputs: ModelOutputs, score: str, shadow_outputs: ShadowOutputs,
                           positives: str = "members", negatives: str = "non_members",
                           fpr_targets: Iterable[float] = _metrics.DEFAULT_FPR_TARGETS,
                           cache: Optional[ScoreCache] = None,
                           keep_scores: bool = False) -> AttackResult:
    """Class-dependent thresholds learned on shadows, applied to the target.

    See the module docstring for what each reported number means.

    Example:
      >>> tgt = ModelOutputs.from_arrays(
      ...     members=(np.array([[3.0, 0.0], [0.0, 2.0]]), np.array([0, 1])),
      ...     non_members=(np.array([[1.0, 0.0], [0.0, 0.1]]), np.array([0, 1])))
      >>> class_threshold_attack(tgt, "confidence", shadow_outputs=tgt).best_accuracy
      1.0
    """
    start = time.perf_counter()
    cache = cache or ScoreCache(outputs)
    thresholds = learn_class_thresholds(shadow_outputs, score, outputs.num_classes)
    pos_y, neg_y = _split(outputs, positives)[1], _split(outputs, negatives)[1]
    with np.errstate(invalid="ignore"):
        pos = cache.get(positives, score) - thresholds[pos_y]
        neg = cache.get(negatives, score) - thresholds[neg_y]
    tpr, fpr = float(np.mean(pos >= 0)), float(np.mean(neg >= 0))
    n_shadows = len(_as_shadow_list(shadow_outputs, outputs.num_classes))
    result = evaluate_scores(
        pos, neg, name=f"{score}_class", attack_type=AttackType(f"{score}_class"),
        fpr_targets=fpr_targets, keep_scores=keep_scores, positives=positives,
        negatives=negatives,
        notes=f"per-class thresholds from {n_shadows} shadow model(s); at the learned "
              f"thresholds TPR={tpr:.4f}, FPR={fpr:.4f}; "
              "auc/tpr_at_fpr sweep an offset on score - threshold[y]")
    result.advantage = tpr - fpr
    result.best_accuracy = 0.5 + (tpr - fpr) / 2.0
    result.threshold = 0.0
    result.wall_time_s = time.perf_counter() - start
    return result
