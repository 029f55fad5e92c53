"""TF-Privacy's membership-inference harness on the same outputs (the baseline).

:func:`run_tf_privacy_baseline` feeds a target's logits and labels, unchanged,
to ``membership_inference_attack.run_attacks`` (entire-dataset slice only)
and returns its rows as ``TFP_*`` :class:`AttackResult`s, so they sit beside
keras-mi's own attacks in one :class:`AttackReport`.

Facts about the harness (tensorflow-empirical-privacy 0.1.0) that matter
when comparing numbers:

* ``THRESHOLD_ATTACK`` thresholds the cross-entropy loss, which it computes
  as ``-log(max(softmax(logits)[y], 1e-8))``; it scores ``-loss``. Our
  ``loss`` attack is the same rule without the clip: AUCs agree unless
  records have ``p_y < 1e-8`` (which the clip turns into ties).
* ``THRESHOLD_ENTROPY_ATTACK`` with labels thresholds Song & Mittal's
  *modified* entropy (clipping probabilities at 1e-30 inside the logs), so
  it matches our ``modified_entropy`` attack, not ``entropy``.
* It treats any row of "logits" summing to 1 within 1e-3 as probabilities.
  Softmax ignores a constant added to a row, so such rows are shifted by
  +1 before the call; the model's predictions are unchanged.
* Its advantage is ``max |TPR - FPR|`` (ours: ``max(TPR - FPR)``); they agree
  whenever the attack is no worse than chance.
* The trained attacks (logistic regression, MLP, random forest, k-NN) run a
  2-fold cross-validated scikit-learn grid search on ``[logits, loss]``
  features and draw their splits from NumPy's global RNG, which is seeded
  here and restored afterwards.

``tpr_at_fpr`` for TF-Privacy's rows is computed by
:func:`keras_mi.attacks.metrics.roc_curve` on the harness's own membership
scores; ``auc`` and ``advantage`` are the harness's own numbers.
"""

from __future__ import annotations

import time
import warnings
from typing import Dict, Iterable, Sequence

import numpy as np

from keras_mi._compat import import_mia
from keras_mi.attacks import metrics as _metrics
from keras_mi.attacks.results import AttackReport, AttackResult, AttackType
from keras_mi.outputs import ModelOutputs

#: Our short names -> (TF-Privacy ``AttackType`` name, our ``AttackType``).
TFP_ATTACKS: Dict[str, tuple] = {
    "threshold": ("THRESHOLD_ATTACK", AttackType.TFP_THRESHOLD),
    "threshold_entropy": ("THRESHOLD_ENTROPY_ATTACK", AttackType.TFP_THRESHOLD_ENTROPY),
    "lr": ("LOGISTIC_REGRESSION", AttackType.TFP_LOGISTIC_REGRESSION),
    "mlp": ("MULTI_LAYERED_PERCEPTRON", AttackType.TFP_MLP),
    "rf": ("RANDOM_FOREST", AttackType.TFP_RANDOM_FOREST),
    "knn": ("K_NEAREST_NEIGHBORS", AttackType.TFP_KNN),
}

#: What each TF-Privacy row computes in keras-mi's terms (for side-by-side tables).
SAME_AS = {"threshold": "loss", "threshold_entropy": "modified_entropy"}

DEFAULT_TFP_ATTACKS = ("threshold", "threshold_entropy", "lr", "mlp")


def _unsum(logits: np.ndarray) -> np.ndarray:
    """Shifts rows that sum to 1 (within 1e-3) so TF-Privacy sees them as logits."""
    logits = np.asarray(logits)
    looks_like_probs = np.abs(logits.sum(axis=1) - 1) <= 1e-3
    if not looks_like_probs.any():
        return logits
    out = logits.copy()
    out[looks_like_probs] += 1.0
    return out


def run_tf_privacy_baseline(outputs: ModelOutputs,
                            attack_types: Sequence[str] = DEFAULT_TFP_ATTACKS,
                            positives: str = "members", negatives: str = "non_members",
                            fpr_targets: Iterable[float] = _metrics.DEFAULT_FPR_TARGETS,
                            seed: int = 0, balance_attacker_training: bool = True,
                            keep_scores: bool = False) -> AttackReport:
    """Runs TF-Privacy's MI harness on ``outputs`` and returns its rows.

    Args:
      outputs: the target's :class:`~keras_mi.outputs.ModelOutputs`.
      attack_types: keys of :data:`TFP_ATTACKS` (``threshold``,
        ``threshold_entropy``, ``lr``, ``mlp``, ``rf``, ``knn``).
      positives, negatives: the splits given to the harness as its
        "train" and "test" sets.
      fpr_targets: FPRs for ``tpr_at_fpr``.
      seed: seeds NumPy's global RNG for the trained attacks (restored after).
      balance_attacker_training: passed to ``run_attacks``.
      keep_scores: keep the harness's membership scores on the results.

    Returns:
      An :class:`AttackReport` with one ``tfp_*`` result per attack type.

    Raises:
      ImportError: TF-Privacy's harness is not installed (with instructions).

    Example:
      >>> rep = run_tf_privacy_baseline(outputs, ["threshold"])  # doctest: +SKIP
      >>> rep.results[0].name  # doctest: +SKIP
      'tfp_threshold'
    """
    unknown = [a for a in attack_types if a not in TFP_ATTACKS]
    if unknown:
        raise ValueError(f"Unknown TF-Privacy attack(s) {unknown}; choose from "
                         f"{list(TFP_ATTACKS)}.")
    for split in (positives, negatives):
        if outputs.get(split) is None:
            raise ValueError(f"The model outputs have no '{split}' split.")
    mia = import_mia("membership_inference_attack")
    ds = import_mia("data_structures")
    (logits_in, labels_in) = outputs.get(positives)
    (logits_out, labels_out) = outputs.get(negatives)
    if len(labels_in) == 0 or len(labels_out) == 0:
        raise ValueError("Both splits need at least one record.")
    attack_input = ds.AttackInputData(
        logits_train=_unsum(logits_in), logits_test=_unsum(logits_out),
        labels_train=np.asarray(labels_in), labels_test=np.asarray(labels_out))
    report = AttackReport(metadata={"baseline": "tensorflow_privacy run_attacks",
                                    "slice": "entire dataset"})
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        for key in attack_types:
            tfp_name, our_type = TFP_ATTACKS[key]
            start = time.perf_counter()
            # Quiet sklearn's convergence chatter and the harness's epsilon-bound
            # divisions by zero (they only affect its epsilon estimate).
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.filterwarnings("ignore", module="sklearn")
                results = mia.run_attacks(
                    attack_input, ds.SlicingSpec(entire_dataset=True),
                    attack_types=(getattr(ds.AttackType, tfp_name),),
                    balance_attacker_training=balance_attacker_training)
            elapsed = time.perf_counter() - start
            single = results.single_attack_results
            if not single:
                raise RuntimeError(f"TF-Privacy returned no result for {tfp_name} (too few "
                                   "records for its cross-validation?).")
            report.results.append(_convert(single[0], key, our_type, positives, negatives,
                                           fpr_targets, elapsed, keep_scores))
    finally:
        np.random.set_state(state)
    return report


def _convert(single, key: str, our_type: AttackType, positives: str, negatives: str,
             fpr_targets, elapsed: float, keep_scores: bool) -> AttackResult:
    pos = np.asarray(single.membership_scores_train, np.float64)
    neg = np.asarray(single.membership_scores_test, np.float64)
    fpr, tpr, _ = _metrics.roc_curve(pos, neg)
    adv = float(single.get_attacker_advantage())
    same = SAME_AS.get(key)
    notes = f"TF-Privacy {single.attack_type.name}" + (f" (same rule as '{same}')" if same else "")
    return AttackResult(
        name=our_type.value, attack_type=our_type,
        auc=float(single.get_auc()), best_accuracy=0.5 + adv / 2.0, advantage=adv,
        tpr_at_fpr=_metrics.tpr_at_fprs(fpr, tpr, fpr_targets),
        n_members=int(single.data_size.ntrain), n_non_members=int(single.data_size.ntest),
        positives=positives, negatives=negatives, wall_time_s=elapsed, notes=notes,
        fpr=np.asarray(single.roc_curve.fpr), tpr=np.asarray(single.roc_curve.tpr),
        member_scores=pos if keep_scores else None,
        non_member_scores=neg if keep_scores else None)
