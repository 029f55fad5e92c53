"""Membership-inference attacks on a model's outputs (logits + labels).

Convention: a higher score means "more likely a member".
"""

from keras_mi.attacks.metrics import (DEFAULT_FPR_TARGETS, advantage, attack_metrics, auc,
                                      best_accuracy, best_threshold, roc_curve, tpr_at_fpr,
                                      tpr_at_fprs)
from keras_mi.attacks.results import (AttackReport, AttackResult, AttackType, downsample_roc,
                                      evaluate_scores)

__all__ = [
    "AttackReport", "AttackResult", "AttackType", "DEFAULT_FPR_TARGETS", "advantage",
    "attack_metrics", "auc", "best_accuracy", "best_threshold", "downsample_roc",
    "evaluate_scores", "roc_curve", "tpr_at_fpr", "tpr_at_fprs",
]
