"""keras_mi.losses: kernel two-sample statistics used by the MMD defense.

Example:
  >>> import numpy as np
  >>> from keras_mi.losses import mmd2
  >>> float(mmd2(np.zeros((4, 3)), np.zeros((4, 3))))
  0.0
"""

from keras_mi.losses.class_mmd import class_conditional_mmd2
from keras_mi.losses.kernels import KERNELS, kernel_matrix
from keras_mi.losses.log_odds import true_class_log_odds
from keras_mi.losses.mmd import gaussian_kernel, mmd2, pairwise_squared_distances, softmax_mmd2

__all__ = [
    "KERNELS",
    "class_conditional_mmd2",
    "gaussian_kernel",
    "kernel_matrix",
    "mmd2",
    "pairwise_squared_distances",
    "softmax_mmd2",
    "true_class_log_odds",
]
