"""keras-mi: membership-inference attacks and defenses for Keras 3.

The Keras-side core (MMD regularizer, mixup layer, architectures) needs only
Keras, so ``import keras_mi`` works on a JAX-only machine. Subpackages that
need TensorFlow (tf.data helpers, TF-Privacy baselines) import it lazily.
"""

__version__ = "0.1.0"
