"""Membership-inference attacks on a model's outputs (logits + labels).

Convention: a higher score means "more likely a member".

Example:
  >>> from keras_mi import attacks  # doctest: +SKIP
  >>> report = attacks.run(outputs)  # outputs: keras_mi.ModelOutputs  # doctest: +SKIP
  >>> print(report.summary())  # doctest: +SKIP
"""

from keras_mi.attacks.metrics import (DEFAULT_FPR_TARGETS, MIN_FALSE_POSITIVES, advantage,
                                      attack_metrics, auc, best_accuracy, best_threshold,
                                      clopper_pearson, low_fpr_point, members_above_all,
                                      roc_curve, tpr_at_fpr, tpr_at_fprs)
from keras_mi.attacks.results import (AttackReport, AttackResult, AttackType, downsample_roc,
                                      evaluate_scores, format_low_fpr)
from keras_mi.attacks.runner import (ATTACKS, AttackSpec, available_attacks, register_attack,
                                     run, run_on_model, summarize)
from keras_mi.attacks.scores import (SCORE_NAMES, compute_scores, confidence_score,
                                     correctness, entropy_score, log_softmax, loss_score,
                                     max_confidence_score, modified_entropy_score)
from keras_mi.attacks.tfp_baseline import run_tf_privacy_baseline
from keras_mi.attacks.threshold import (class_threshold_attack, gap_attack,
                                        learn_class_thresholds, threshold_attack)

# Keras (for the callback) and matplotlib (for plots) load on first use, so
# ``import keras_mi.attacks`` stays NumPy-only.
_LAZY = {
    "AttackMonitor": "keras_mi.attacks.callback",
    # Shadow models and LiRA (NumPy/sklearn; Keras only inside train functions).
    "shadow_attack_nn": "keras_mi.attacks.shadow",
    "shadow_attack_top3": "keras_mi.attacks.shadow",
    "train_shadow_models": "keras_mi.attacks.shadow",
    "top3_features": "keras_mi.attacks.shadow",
    "train_shadow": "keras_mi.attacks.shadow_jobs",
    "train_shadows": "keras_mi.attacks.shadow_jobs",
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
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_mi.attacks' has no attribute '{name}'")


__all__ = [
    "ATTACKS", "BANK_ATTACKS", "MIN_FALSE_POSITIVES", "attack_bank", "clopper_pearson",
    "flip_shift_queries", "format_low_fpr", "load_bank", "low_fpr_point", "members_above_all",
    "model_accuracies", "rmia_scores", "train_bank", "tune_offline_a", "AttackMonitor", "AttackReport", "AttackResult", "AttackSpec", "AttackType",
    "DEFAULT_FPR_TARGETS", "SCORE_NAMES", "advantage", "attack_metrics", "auc",
    "available_attacks", "best_accuracy", "best_threshold", "class_threshold_attack",
    "compute_scores", "confidence_score", "correctness", "downsample_roc", "entropy_score",
    "evaluate_scores", "gap_attack", "learn_class_thresholds", "log_softmax", "loss_score",
    "max_confidence_score", "modified_entropy_score", "plot_roc", "plot_score_histograms", "register_attack", "roc_curve", "run",
    "run_on_model", "run_tf_privacy_baseline", "summarize", "threshold_attack", "tpr_at_fpr", "tpr_at_fprs",
    "ShadowBank", "aggregate_lira", "lira_attack", "lira_pool", "lira_scores", "load_shadows",
    "logit_confidence", "make_train_fn", "pool_fingerprint", "run_lira", "shadow_attack_nn",
    "shadow_attack_top3", "shadow_membership", "top3_features", "train_shadow",
    "train_shadow_models", "train_shadows",
]
