"""Membership-inference attacks on a model's outputs (logits + labels).

Convention: a higher score means "more likely a member". :func:`run` looks an
attack's name up in the registry (:data:`ATTACKS`, one
:class:`AttackSpec` each; what it needs comes from its :class:`AttackType`)
and calls it; each attack's score is one named function:

====================================  ========================================  ===============
attack (``run`` name)                 function that scores each record          file
====================================  ========================================  ===============
``gap``                               ``scores.correctness``                    scores.py
``loss``                              ``scores.loss_score``                     scores.py
``confidence``                        ``scores.confidence_score``               scores.py
``max_confidence``                    ``scores.max_confidence_score``           scores.py
``entropy``                           ``scores.entropy_score``                  scores.py
``modified_entropy``                  ``scores.modified_entropy_score``         scores.py
``<score>_class`` (per class)         the score above, minus                    threshold.py
                                      ``threshold.learn_class_thresholds``
``shadow_nn``                         ``shadow.shadow_attack_nn``               shadow.py
``shadow_top3``                       ``shadow.shadow_attack_top3``             shadow.py
``lira`` (4 variants)                 ``lira.lira_scores`` of                   lira.py
                                      ``lira.logit_confidence``
``rmia_*`` (bank protocol)            ``rmia.rmia_scores``                      rmia.py
bank protocol (every bank attack)     ``bank.attack_bank``                      bank.py
``tfp_*`` (``baseline=True``)         ``tfp_baseline.run_tf_privacy_baseline``  tfp_baseline.py
====================================  ========================================  ===============

The threshold attacks themselves (global, per class, gap) are in
``threshold.py``; the metrics (AUC, TPR at low FPR with its interval) in
``metrics.py``; results and reports in ``results.py``; the training-time
monitor in ``monitor.py``; shadow and bank training in ``shadow.py``
(disjoint shadows) and ``shadow_jobs.py`` (random-half shadows, one job each).

Example:
  >>> from keras_mi import attacks
  >>> out = attacks.ModelOutputs.from_arrays(
  ...     members=(np.array([[3.0, 0.0], [0.0, 3.0]]), np.array([0, 1])),
  ...     non_members=(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1, 1])))
  >>> attacks.run(out, ["loss"]).strongest().name
  'loss'
"""

from keras_mi.attacks.metrics import (
    DEFAULT_FPR_TARGETS,
    MIN_FALSE_POSITIVES,
    advantage,
    attack_metrics,
    auc,
    best_accuracy,
    best_threshold,
    clopper_pearson,
    low_fpr_point,
    members_above_all,
    roc_curve,
    tpr_at_fpr,
    tpr_at_fprs,
)
from keras_mi.attacks.results import (
    AttackReport,
    AttackResult,
    AttackType,
    downsample_roc,
    evaluate_scores,
    format_low_fpr,
)
from keras_mi.attacks.runner import (
    ATTACKS,
    AttackSpec,
    available_attacks,
    register_attack,
    run,
    run_on_model,
)
from keras_mi.attacks.scores import (
    SCORE_NAMES,
    SCORES,
    compute_scores,
    confidence_score,
    correctness,
    entropy_score,
    log_softmax,
    logsumexp,
    loss_score,
    max_confidence_score,
    modified_entropy_score,
    softmax,
)
from keras_mi.attacks.tfp_baseline import run_tf_privacy_baseline
from keras_mi.attacks.threshold import (
    class_threshold_attack,
    gap_attack,
    learn_class_thresholds,
    threshold_attack,
)
from keras_mi.outputs import ModelOutputs, predict_logits

# Keras (for the monitor) and matplotlib (for plots) load on first use, so
# ``import keras_mi.attacks`` stays NumPy-only.
_LAZY = {
    "AttackMonitor": "keras_mi.attacks.monitor",
    # Shadow models and LiRA (NumPy/sklearn; Keras only inside train functions).
    "shadow_attack_nn": "keras_mi.attacks.shadow",
    "shadow_attack_top3": "keras_mi.attacks.shadow",
    "train_disjoint_shadows": "keras_mi.attacks.shadow",
    "top3_features": "keras_mi.attacks.shadow",
    "train_half_shadow": "keras_mi.attacks.shadow_jobs",
    "train_half_shadows": "keras_mi.attacks.shadow_jobs",
    "load_shadows": "keras_mi.attacks.shadow_jobs",
    "ShadowBank": "keras_mi.attacks.shadow_jobs",
    "make_train_fn": "keras_mi.attacks.shadow_jobs",
    "shadow_membership": "keras_mi.attacks.shadow_jobs",
    "pool_fingerprint": "keras_mi.attacks.shadow_jobs",
    "aggregate_lira": "keras_mi.attacks.lira",
    "lira_scores": "keras_mi.attacks.lira",
    "lira_attack": "keras_mi.attacks.lira",
    "lira_pool": "keras_mi.attacks.lira",
    "logit_confidence": "keras_mi.attacks.lira",
    "run_lira": "keras_mi.attacks.lira",
    # The bank protocol and RMIA (NumPy; Keras only inside train functions).
    "BANK_ATTACKS": "keras_mi.attacks.bank",
    "attack_bank": "keras_mi.attacks.bank",
    "flip_shift_queries": "keras_mi.attacks.bank",
    "load_bank": "keras_mi.attacks.bank",
    "model_accuracies": "keras_mi.attacks.bank",
    "train_bank": "keras_mi.attacks.bank",
    "rmia_scores": "keras_mi.attacks.rmia",
    "tune_offline_a": "keras_mi.attacks.rmia",
    "plot_roc": "keras_mi.attacks.plots",
    "plot_score_histograms": "keras_mi.attacks.plots",
    # Old names, kept for one release (each warns when called).
    "train_shadow": "keras_mi.attacks.shadow_jobs",
    "train_shadows": "keras_mi.attacks.shadow_jobs",
    "train_shadow_models": "keras_mi.attacks.shadow",
    "summarize": "keras_mi.attacks.runner",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_mi.attacks' has no attribute '{name}'")


__all__ = [
    "ATTACKS", "BANK_ATTACKS", "DEFAULT_FPR_TARGETS", "MIN_FALSE_POSITIVES", "SCORES",
    "SCORE_NAMES", "AttackMonitor", "AttackReport", "AttackResult", "AttackSpec", "AttackType",
    "ModelOutputs", "ShadowBank", "advantage", "aggregate_lira", "attack_bank", "attack_metrics",
    "auc", "available_attacks", "best_accuracy", "best_threshold", "class_threshold_attack",
    "clopper_pearson", "compute_scores", "confidence_score", "correctness", "downsample_roc",
    "entropy_score", "evaluate_scores", "flip_shift_queries", "format_low_fpr", "gap_attack",
    "learn_class_thresholds", "lira_attack", "lira_pool", "lira_scores", "load_bank",
    "load_shadows", "log_softmax", "logit_confidence", "logsumexp", "loss_score",
    "low_fpr_point", "make_train_fn", "max_confidence_score", "members_above_all",
    "model_accuracies", "modified_entropy_score", "plot_roc", "plot_score_histograms",
    "pool_fingerprint", "predict_logits", "register_attack", "rmia_scores", "roc_curve", "run",
    "run_lira", "run_on_model", "run_tf_privacy_baseline", "shadow_attack_nn",
    "shadow_attack_top3", "shadow_membership", "softmax", "threshold_attack", "top3_features",
    "tpr_at_fpr", "tpr_at_fprs", "train_bank", "train_disjoint_shadows", "train_half_shadow",
    "train_half_shadows", "tune_offline_a",
]
