"""keras_mi.baselines: DP-SGD (TF-Privacy, in a child process; or Keras 3 on JAX,
:func:`train_dpsgd_keras`) and its accounting.

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
from keras_mi.baselines.audit import EmpiricalEpsilon, empirical_epsilon
from keras_mi.baselines.dpsgd import DPSGDResult, train_dpsgd
from keras_mi.baselines.dpsgd_keras import DPSGDKerasResult, train_dpsgd_keras
from keras_mi.baselines.dpsgd_keras_subprocess import train_dpsgd_keras_subprocess

__all__ = [
    "DPSGDKerasResult",
    "DPSGDResult",
    "EmpiricalEpsilon",
    "PrivacyReport",
    "compute_epsilon",
    "default_delta",
    "empirical_epsilon",
    "noise_multiplier_for_epsilon",
    "privacy_report",
    "train_dpsgd",
    "train_dpsgd_keras",
    "train_dpsgd_keras_subprocess",
]
