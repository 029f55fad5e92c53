"""`WrappedModel`: the base of keras-mi's models that wrap another Keras model.

`MMDModel`, `RelaxLossModel`, `AdvRegModel`, `HAMPModel` and `HAMPOutputs`
train or serve a wrapped model through their own `compute_loss` (or `call`).
What they share lives here: the wrapped ``model``, `build` and `call`
delegating to it, `get_config`/`from_config` (de)serializing it, the wrapper
counting as built once the wrapped model is, and the class ids of a batch of
labels.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["WrappedModel"]


class WrappedModel(keras.Model):
    """A `keras.Model` whose forward pass is that of a wrapped Keras model.

    Subclasses add their arguments after ``model`` and chain `get_config` to
    this one; the attributes named in ``_nested_models`` (``("model",)``
    here) are serialized with `keras.saving.serialize_keras_object` and
    deserialized by `from_config`.

    Args:
      model: The wrapped Keras model (any `keras.layers.Layer`).
      **kwargs: Passed to `keras.Model` (``name``, ``dtype``...).

    Example:

    >>> import keras
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> wrapper = WrappedModel(net)
    >>> wrapper.built, tuple(wrapper(keras.ops.ones((2, 4))).shape)
    (True, (2, 3))

    Warning:
      The wrapper adds no weights to the forward pass: it counts as built
      as soon as the wrapped model is (`keras.callbacks.BackupAndRestore`
      and `load_weights` check ``built``).
    """

    _nested_models = ("model",)

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.layers.Layer):
            raise TypeError(f"`model` must be a Keras model; received {type(model).__name__}.")
        self.model = model
        if model.built:
            self.built = True

    def build(self, input_shape):
        if not self.model.built:
            self.model.build(input_shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def _model_output_width(self):
        """The wrapped model's output width K, or ``None`` if it has no static one."""
        try:
            shape = self.model.output_shape
        except (AttributeError, ValueError):  # subclassed or unbuilt models
            return None
        return None if shape is None or shape[-1] is None else int(shape[-1])

    @staticmethod
    def _labels_of(y, y_pred=None):
        """Int32 class ids of a batch of int labels or one-hot (or soft) label rows.

        Args:
          y: Labels: ints, or rows of class scores (their argmax is taken).
          y_pred: The batch's outputs; ``y`` holds rows when it has their
            rank (rank 2 when ``y_pred`` is None) and more than one column.

        Returns:
          ``(batch,)`` int32 class ids.
        """
        rank = 2 if y_pred is None else len(y_pred.shape)
        if len(y.shape) == rank and y.shape[-1] is not None and y.shape[-1] > 1:
            return ops.cast(ops.argmax(y, axis=-1), "int32")
        return ops.cast(ops.reshape(y, (-1,)), "int32")

    def get_config(self):
        config = super().get_config()
        config.update({name: keras.saving.serialize_keras_object(getattr(self, name))
                       for name in self._nested_models})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in cls._nested_models:
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)
