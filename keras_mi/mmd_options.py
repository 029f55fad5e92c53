"""The named choices of the MMD defense, without importing Keras.

`keras_mi.training.MMDModel` and the experiment's config validation both
read these, so a name is spelled in one place and a config can be checked
before TensorFlow loads.
"""

__all__ = ["KERNELS", "SCHEDULES", "STATISTICS"]

#: Characteristic kernels of `keras_mi.losses.kernels`.
KERNELS = ("gaussian", "laplacian", "imq")
#: ``"summed"``: λ·MMD² in every step; ``"paper"``: the paper's gap-triggered MMD-only passes.
SCHEDULES = ("summed", "paper")
#: What the MMD² compares: softmax vectors, or the true-class log-odds.
STATISTICS = ("softmax", "log_odds")
