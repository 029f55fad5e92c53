"""keras_mi.layers: Keras layers used by the defenses.

`MixUp` mixes ``(inputs, labels)`` batches (Zhang et al., 2018), the data
half of the paper's "MMD + mixup" defense.
"""

from keras_mi.layers.mix_up import MixUp

__all__ = ["MixUp"]
