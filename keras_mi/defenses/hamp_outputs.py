"""`HAMPOutputs`: HAMP's output modification at inference, as a Keras model.

At inference HAMP answers each query ``x`` with the outputs the model gives
a *random* input, re-ordered so their ranking is the ranking of the model's
outputs on ``x`` (DependableSystemsLab/MIA_defense_HAMP,
``location/attack.py`` and ``cifar10/attack.py``, ``alter_output``): the
j-th smallest logit of ``f(x)`` is replaced by the j-th smallest logit of
``f(r)``, with a fresh random ``r`` per query. The predicted label (and the
whole ranking) is kept, while the confidence values carry nothing of ``x``.

The random inputs follow the authors' generators (``random_flip``):
``"bernoulli"`` draws 0/1 features with probability 1/2 (their Location
code, binary features), ``"uniform"`` draws each feature uniformly on
``[low, high]`` (their CIFAR code: uniform pixel values, then the model's
normalization; ``low``/``high`` may be per-feature arrays for inputs that
are already normalized).

`call` modifies the outputs whenever ``training`` is not True, so
``predict``, ``evaluate`` and ``model(x)`` (what the experiment computes
logits with, hence what the attacks see) all return the defended logits;
``training=True`` passes the wrapped model's logits through.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_mi.training.wrapped_model import WrappedModel

__all__ = ["HAMPOutputs", "rank_replace"]

SAMPLERS = ("uniform", "bernoulli")


def rank_replace(logits, reference):
    """Each row of ``reference`` sorted into the ranking of the same row of ``logits``.

    Args:
      logits: ``(batch, K)`` the outputs whose ranking is kept.
      reference: ``(batch, K)`` the values used.

    Returns:
      ``(batch, K)``: ``out[i, j]`` is the ``rank(logits[i, j])``-th smallest
      value of ``reference[i]``.
    """
    ranks = ops.argsort(ops.argsort(logits, axis=-1), axis=-1)
    return ops.take_along_axis(ops.sort(reference, axis=-1), ranks, axis=-1)


def _as_bound(value, name):
    array = np.asarray(value, dtype="float32")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"HAMPOutputs `{name}` must be finite; received {value!r}.")
    return array


@keras.saving.register_keras_serializable(package="keras_mi")
class HAMPOutputs(WrappedModel):
    """A logits model whose inference outputs get HAMP's output modification.

    Args:
      model: The trained Keras logits model (e.g. trained by `HAMPModel`).
      sampler: ``"uniform"`` or ``"bernoulli"`` (see the module docstring).
      low: Lower bound of ``"uniform"`` inputs (a float, or an array that
        broadcasts to one input's shape).
      high: Upper bound of ``"uniform"`` inputs, > ``low`` everywhere.
      seed: Seed of the random inputs.
      **kwargs: Passed to `keras.Model`.

    Example:

    >>> import numpy as np, keras
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> defended = HAMPOutputs(net, sampler="bernoulli", seed=0)
    >>> x = np.random.rand(5, 4).astype("float32")
    >>> out = defended.predict(x, verbose=0)
    >>> bool((out.argmax(1) == net.predict(x, verbose=0).argmax(1)).all())
    True

    References:
      Chen & Pattabiraman, "Overconfidence is a Dangerous Thing: Mitigating
      Membership Inference Attacks by Enforcing Less Confident Prediction",
      NDSS 2024.

    Warning:
      Each query costs two forward passes, and repeated queries of one
      input get different confidence values (ranking unchanged).
    """

    def __init__(self, model, sampler="uniform", low=0.0, high=1.0, seed=None, **kwargs):
        super().__init__(model, **kwargs)
        if sampler not in SAMPLERS:
            raise ValueError(f"HAMPOutputs `sampler` must be one of {SAMPLERS}; received "
                             f"{sampler!r}.")
        low_a, high_a = _as_bound(low, "low"), _as_bound(high, "high")
        try:
            gap = high_a - low_a
        except ValueError:
            raise ValueError(f"HAMPOutputs `low` {low_a.shape} and `high` {high_a.shape} do not "
                             "broadcast together.") from None
        if sampler == "uniform" and not np.all(gap > 0):
            raise ValueError("HAMPOutputs needs `high` > `low` everywhere for the uniform sampler.")
        self.sampler = sampler
        self.low = low_a.tolist()
        self.high = high_a.tolist()
        self._low, self._gap = low_a, gap
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def random_inputs(self, inputs):
        """Random inputs of the shape and dtype of ``inputs`` (one per query)."""
        u = keras.random.uniform(ops.shape(inputs), seed=self.seed_generator)
        if self.sampler == "bernoulli":
            return ops.cast(ops.less(u, 0.5), inputs.dtype)
        return ops.cast(self._low + self._gap * u, inputs.dtype)

    def call(self, inputs, training=None):
        logits = self.model(inputs, training=training)
        if training:
            return logits
        reference = self.model(self.random_inputs(inputs), training=False)
        return rank_replace(logits, reference)

    def get_config(self):
        config = super().get_config()
        config.update({"sampler": self.sampler, "low": self.low, "high": self.high,
                       "seed": self.seed})
        return config
