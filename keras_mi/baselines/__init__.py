"""keras_mi.baselines: DP-SGD (TF-Privacy, in a child process) and its accounting.

Importing this package imports neither Keras nor TensorFlow.

Example:
  >>> from keras_mi.baselines import compute_epsilon
  >>> eps = compute_epsilon(2505, 64, 1.0, 20, delta=1e-4)  # doctest: +SKIP
"""

from keras_mi.baselines.accounting import (
    PrivacyReport,
    compute_epsilon,
    default_delta,
    noise_multiplier_for_epsilon,
    privacy_report,
)
from keras_mi.baselines.dpsgd import DPSGDResult, train_dpsgd

__all__ = [
    "DPSGDResult",
    "PrivacyReport",
    "compute_epsilon",
    "default_delta",
    "noise_multiplier_for_epsilon",
    "privacy_report",
    "train_dpsgd",
]
