"""Mixup for any input rank and integer or soft labels (Zhang et al., 2018).

Why not `keras.layers.MixUp`? Keras 3.15 ships one, but it cannot serve the
membership-inference defense of Li, Li & Ribeiro (CODASPY 2021):

* it reshapes the mixing weight to ``[-1, 1, 1, 1]``, so it only accepts
  rank-4 image batches; Location's 446 binary features (rank 2) fail;
* it wants one-hot labels, while training code here keeps integer labels;
* it draws one weight per *example*; the paper's code (and the reference mixup
  code it builds on) draws ``lam = np.random.beta(alpha, alpha)`` once per
  *batch*.

Reusing it by composition would still leave all three, so this module writes
the same two-step design (``get_random_transformation`` samples, the
``transform_*`` methods apply) with `keras.ops` for any backend. The layer
runs in three places:

* eagerly or under ``jit`` on the native backend: `keras.ops` and a
  `keras.random.SeedGenerator`;
* inside a TensorFlow graph, e.g. ``tf.data.Dataset.map(layer)``: the same
  math with TensorFlow stateless ops and a counter seeded with the layer's
  seed, so the pipeline works and is reproducible under every Keras backend
  (TensorFlow is imported only then, never at module import).

The two streams are each reproducible for a given seed but are not the same
numbers; use one place per experiment.
"""

import numbers
import random as _py_random
import sys

import keras
import numpy as np
from keras import ops


def _in_tf_graph(sample):
    """True inside a TF graph (tf.data map, tf.function), never for JAX/NumPy."""
    if "tensorflow" not in sys.modules or isinstance(sample, keras.KerasTensor):
        return False
    tf = sys.modules["tensorflow"]
    return (not tf.executing_eagerly()) and isinstance(sample, tf.Tensor)


#: Dict keys of the inputs: Keras's augmentation layers use "images".
_INPUT_KEYS = ("images", "inputs")


def _unpack(data):
    """``(x, y, repack)`` of a mixup input; ``repack(x2, y2)`` rebuilds its structure.

    ``data`` is ``(x, y)``, ``[x, y]`` or a dict with ``"labels"`` and one of
    ``"images"`` (`keras.layers.MixUp`'s form) or ``"inputs"``; the same
    works for nested shapes (``compute_output_shape``).
    """
    if isinstance(data, dict):
        keys = [k for k in _INPUT_KEYS if k in data]
        extra = sorted(set(data) - set(_INPUT_KEYS) - {"labels"})
        if len(keys) != 1 or "labels" not in data or extra:
            raise ValueError(
                "MixUp takes a dict with 'labels' and one of 'images' or 'inputs' (nothing else: "
                f"other entries would not be mixed); got keys {sorted(data)}."
            )
        key = keys[0]

        def repack(x, y):
            return {key: x, "labels": y}

        return data[key], data["labels"], repack
    if isinstance(data, (tuple, list)) and len(data) == 2:
        kind = list if isinstance(data, list) else tuple
        return data[0], data[1], lambda x, y: kind((x, y))
    raise ValueError(
        "MixUp needs labels: call it as `layer((x, y))`, `layer(x, y)` or "
        "`layer({'images': x, 'labels': y})`."
    )


@keras.saving.register_keras_serializable(package="keras_mi")
class MixUp(keras.layers.Layer):
    """Mixup on a batch of ``(inputs, labels)``; identity when not training.

    For a batch ``(x, y)`` it draws ``lam ~ Beta(alpha, alpha)`` and a random
    permutation ``perm`` of the batch, and returns
    ``(lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm])``, where
    ``y`` is one-hot encoded first when it holds integer class indices. The
    returned labels are soft (each row sums to 1), ready for
    `CategoricalCrossentropy` or `keras_mi.training.MMDModel`.

    The batch is given as ``(x, y)``, ``[x, y]``, ``layer(x, y)`` or, as for
    Keras's augmentation layers, ``{"images": x, "labels": y}`` (or the key
    ``"inputs"``); the result has the same structure (a dict in, the same
    keys out; ``layer(x, y)`` returns a tuple). It works in a Functional
    model: ``MixUp(num_classes=k)((x_input, y_input))``.

    By default one ``lam`` is drawn per batch, as in the paper's code;
    ``per_example=True`` draws one per example (as `keras.layers.MixUp` does).

    With `keras_mi.training.MMDModel` (MMD + mixup), the class-matched
    reference batch is drawn on the argmax of the mixed labels. With one
    ``lam`` per batch that argmax is every row's own class (``lam > 1/2``)
    or every row's partner's class (``lam < 1/2``); ``perm`` being a
    bijection, the batch's class counts, and so the reference batch, are the
    same as when pairing on the un-mixed labels (MMD² between two sets does
    not depend on row order). With ``per_example=True`` the counts can differ.

    Args:
      alpha: Beta concentration, > 0. The paper uses 1.0 (uniform ``lam``).
      num_classes: number of classes; required for integer labels, and
        checked against the width of one-hot/soft labels when given.
      seed: integer seed (``None`` = random), for a reproducible stream.
      per_example: draw one ``lam`` per example instead of per batch.
      **kwargs: base `keras.layers.Layer` arguments (``name``, ``dtype``).

    Example:
      >>> import numpy as np
      >>> layer = MixUp(alpha=1.0, num_classes=3, seed=0)
      >>> x = np.eye(4, dtype="float32")
      >>> y = np.array([0, 1, 2, 0])
      >>> x_mix, y_mix = layer((x, y))
      >>> np.allclose(np.asarray(y_mix).sum(axis=1), 1.0)
      True

    In a pipeline: ``dataset.batch(64).map(MixUp(num_classes=10, seed=0))``.
    Inside a TensorFlow graph (tf.data, `tf.function`) ``training`` defaults
    to True unless passed; elsewhere Keras resolves it as for any layer.
    """

    def __init__(self, alpha=1.0, num_classes=None, seed=None, per_example=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool) or not alpha > 0:
            raise ValueError(
                f"MixUp `alpha` must be a number > 0 (the Beta(alpha, alpha) "
                f"concentration; the paper uses 1.0). Received: alpha={alpha!r}"
            )
        if num_classes is not None and (int(num_classes) != num_classes or num_classes < 2):
            raise ValueError(
                f"`num_classes` must be an integer >= 2 or None. Received: {num_classes!r}"
            )
        self.alpha = float(alpha)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.seed = seed
        self.per_example = bool(per_example)
        # One integer feeds both streams (native SeedGenerator, TF-graph counter).
        self._resolved_seed = int(seed) if seed is not None else _py_random.randint(1, 2**30)
        self.generator = keras.random.SeedGenerator(self._resolved_seed)
        self._tf_seed_state = None
        self.built = True

    # ------------------------------------------------------------------ call
    def __call__(self, data, labels=None, training=None, **kwargs):
        # `layer(x, y)` (tf.data's map of (x, y) elements) is `layer((x, y))`.
        if labels is not None:
            data = (data, labels)
        x, y, repack = _unpack(data)
        self._check_static(x, y)
        if _in_tf_graph(x):
            # tf.data / tf.function: TF ops whatever the Keras backend is.
            if training is None:
                training = True
            return repack(*self._tf_call(x, y, training))
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            check_values(np.asarray(x), np.asarray(y), self.num_classes)
        if training is not None:  # else Keras resolves it (outer call, then True)
            kwargs["training"] = training
        return super().__call__(data, **kwargs)

    def call(self, data, training=True):
        """Mixes ``data`` (see `_unpack`); returns the structure it was given."""
        inputs, labels, repack = _unpack(data)
        x = ops.cast(inputs, self.compute_dtype)
        y = self._labels_to_soft(labels, ops, self.compute_dtype)
        if not training:
            return repack(x, y)
        transformation = self.get_random_transformation(x, training=True)
        return repack(
            self.transform_inputs(x, transformation),
            self.transform_labels(y, transformation),
        )

    # ------------------------------------------------------------ sampling
    def get_random_transformation(self, data, training=True, seed=None):
        """Draws ``{"mix_weight": lam, "permutation_order": perm}`` for a batch.

        ``lam`` is a scalar (or shape ``(batch,)`` with ``per_example=True``);
        ``perm`` is an int permutation of ``range(batch)``. Returns ``None``
        when ``training`` is False. ``data`` is the input batch, an
        ``(x, y)`` pair or a dict as for ``call``; ``seed`` overrides the
        layer's generator.
        """
        if not training:
            return None
        x = _unpack(data)[0] if isinstance(data, (tuple, list, dict)) else data
        if _in_tf_graph(x):
            return self._tf_random_transformation(x)
        batch = ops.shape(x)[0]
        seed = self.generator if seed is None else seed
        lam_shape = (batch,) if self.per_example else ()
        mix_weight = _beta_symmetric(
            keras.random, ops, lam_shape, self.alpha, seed, self.compute_dtype
        )
        permutation_order = keras.random.shuffle(ops.arange(batch, dtype="int32"), seed=seed)
        return {"mix_weight": mix_weight, "permutation_order": permutation_order}

    # ------------------------------------------------------------- applying
    def transform_inputs(self, inputs, transformation, training=True):
        """``lam * x + (1 - lam) * x[perm]`` (``x`` cast to the compute dtype)."""
        return self._mix(inputs, transformation, training, ops)

    def transform_images(self, images, transformation, training=True):
        """`transform_inputs` under `keras.layers.MixUp`'s name."""
        return self.transform_inputs(images, transformation, training=training)

    def transform_labels(self, labels, transformation, training=True):
        """Soft labels mixed like the inputs; integer labels are one-hot first."""
        return self._mix(
            self._labels_to_soft(labels, ops, self.compute_dtype), transformation, training, ops
        )

    def _mix(self, values, transformation, training, xp):
        values = xp.cast(values, self.compute_dtype)
        if not training or transformation is None:
            return values
        lam = xp.cast(transformation["mix_weight"], self.compute_dtype)
        if len(lam.shape) == 1:  # per example: broadcast over feature axes
            lam = xp.reshape(lam, [-1] + [1] * (len(values.shape) - 1))
        partner = xp.take(values, transformation["permutation_order"], axis=0)
        return lam * values + (1.0 - lam) * partner

    def _labels_to_soft(self, labels, xp, dtype):
        # (batch,) and (batch, 1) hold class indices; (batch, classes) soft labels.
        is_index = len(labels.shape) == 1 or labels.shape[-1] == 1
        if is_index:
            if self.num_classes is None:
                raise ValueError(
                    "MixUp got integer class labels but `num_classes` is None; "
                    "pass `num_classes=` so the labels can be one-hot encoded."
                )
            labels = xp.reshape(labels, [-1])
            return xp.cast(xp.one_hot(xp.cast(labels, "int32"), self.num_classes), dtype)
        return xp.cast(labels, dtype)

    # ----------------------------------------------------- TensorFlow graph
    def _tf_call(self, x, y, training):
        tf = sys.modules["tensorflow"]
        ops_tf = _TFOps(tf)
        batch = tf.shape(x)[0]
        checks = [
            tf.debugging.assert_equal(
                batch,
                tf.shape(y)[0],
                message="MixUp: inputs and labels have different batch sizes; "
                "pass one label per example.",
            ),
        ]
        if training:
            checks.append(tf.debugging.assert_greater_equal(
                batch, 2,
                message="MixUp needs at least 2 examples per batch; use a larger batch size or "
                        "drop_remainder=True so the last batch is not a single example."))
        if len(y.shape) == 1 and self.num_classes is not None:
            yi = tf.cast(y, tf.int64)
            checks.append(
                tf.debugging.assert_non_negative(yi, message="MixUp: negative class label.")
            )
            checks.append(tf.debugging.assert_less(
                yi, tf.cast(self.num_classes, tf.int64),
                message=f"MixUp: class label >= num_classes={self.num_classes}."))
        with tf.control_dependencies(checks):
            x = tf.cast(tf.identity(x), self.compute_dtype)
        y = self._labels_to_soft(y, ops_tf, self.compute_dtype)
        if not training:
            return x, y
        t = self._tf_random_transformation(x)
        return self._mix(x, t, True, ops_tf), self._mix(y, t, True, ops_tf)

    def _tf_random_transformation(self, x):
        tf = sys.modules["tensorflow"]
        if self._tf_seed_state is None:
            with tf.init_scope():
                self._tf_seed_state = tf.Variable(
                    [self._resolved_seed, 0],
                    dtype=tf.int64,
                    trainable=False,
                    name="mixup_seed_state",
                )
        state = self._tf_seed_state.assign_add(tf.constant([0, 1], tf.int64))
        seeds = tf.random.experimental.stateless_split(state, num=2)
        batch = tf.shape(x)[0]
        shape = [batch] if self.per_example else []
        rand = _TFStatelessRandom(tf, seeds[0])
        lam = _beta_symmetric(rand, _TFOps(tf), shape, self.alpha, None, self.compute_dtype)
        perm = tf.random.experimental.stateless_shuffle(tf.range(batch), seeds[1])
        return {"mix_weight": lam, "permutation_order": perm}

    # ---------------------------------------------------------- validation
    def _check_static(self, x, y):
        xs, ys = tuple(x.shape), tuple(y.shape)
        if not xs or not ys:
            raise ValueError(f"MixUp needs batched inputs and labels; got shapes {xs} and {ys}.")
        if xs[0] is not None and ys[0] is not None and xs[0] != ys[0]:
            raise ValueError(
                f"MixUp: {xs[0]} inputs but {ys[0]} labels; pass exactly one label per example.")
        if xs[0] is not None and xs[0] < 2:
            raise ValueError(
                f"MixUp needs at least 2 examples per batch to mix (got {xs[0]}); "
                "use a larger batch size or drop_remainder=True so no batch has a single example."
            )
        if len(ys) > 2:
            raise ValueError(
                f"MixUp labels must be (batch,), (batch, 1) or (batch, classes); got {ys}."
            )
        width = ys[-1] if len(ys) == 2 else None
        if width not in (None, 1) and self.num_classes is not None and width != self.num_classes:
            raise ValueError(
                f"MixUp: labels have {width} columns but num_classes={self.num_classes}.")

    # -------------------------------------------------------------- config
    def compute_output_shape(self, input_shape):
        """The input's structure; integer labels become ``(batch, num_classes)``."""
        x_shape, y_shape, repack = _unpack(input_shape)
        y_shape = tuple(y_shape)
        if len(y_shape) == 1 or y_shape[-1] == 1:
            if self.num_classes is None:
                raise ValueError(
                    "MixUp got integer class labels but `num_classes` is None; "
                    "pass `num_classes=` so the labels can be one-hot encoded."
                )
            y_shape = (y_shape[0], self.num_classes)
        return repack(tuple(x_shape), y_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"alpha": self.alpha, "num_classes": self.num_classes, "seed": self.seed,
             "per_example": self.per_example})
        return config


def _beta_symmetric(rand, xp, shape, alpha, seed, dtype):
    """``Beta(alpha, alpha)`` samples that stay exact for small ``alpha``.

    ``lam = G1 / (G1 + G2)`` with ``Gi ~ Gamma(alpha)`` underflows to 0/0 in
    float32 once ``alpha`` is below ~0.05 (`keras.random.beta` then returns
    0.5, the worst value: mixup at small alpha should be close to 0 or 1).
    So use ``Gamma(a) = Gamma(a + 1) * U ** (1 / a)`` in logs:
    ``lam = sigmoid(log G1 - log G2)``, ``log Gi = log Gamma_i(a + 1) + log(U_i) / a``.
    ``rand`` is `keras.random` or `_TFStatelessRandom`; ``xp`` the matching ops.
    """
    shape = list(shape)
    log_g = []
    for _ in range(2):
        g = rand.gamma(shape, alpha + 1.0, dtype="float32", seed=seed)
        u = rand.uniform(shape, minval=0.0, maxval=1.0, dtype="float32", seed=seed)
        log_g.append(xp.log(g) + xp.log(xp.maximum(u, 1e-37)) / alpha)
    return xp.cast(xp.sigmoid(log_g[0] - log_g[1]), dtype)


class _TFStatelessRandom:
    """`keras.random`-like ``gamma`` / ``uniform`` on TF stateless ops, one fresh seed per call."""

    def __init__(self, tf, seed):
        self._tf = tf
        self._seeds = tf.random.experimental.stateless_split(seed, num=8)
        self._used = 0

    def _next(self):
        seed = self._seeds[self._used]
        self._used += 1
        return seed

    def gamma(self, shape, alpha, dtype, seed=None):
        return self._tf.random.stateless_gamma(shape, self._next(), alpha=alpha, dtype=dtype)

    def uniform(self, shape, minval, maxval, dtype, seed=None):
        return self._tf.random.stateless_uniform(
            shape, self._next(), minval=minval, maxval=maxval, dtype=dtype
        )


class _TFOps:
    """The few `keras.ops` calls this module needs, as TensorFlow ops."""

    def __init__(self, tf):
        self._tf = tf

    def cast(self, x, dtype):
        return self._tf.cast(x, dtype)

    def reshape(self, x, shape):
        return self._tf.reshape(x, shape)

    def take(self, x, indices, axis=0):
        return self._tf.gather(x, indices, axis=axis)

    def one_hot(self, x, num_classes):
        return self._tf.one_hot(x, num_classes)

    def log(self, x):
        return self._tf.math.log(x)

    def maximum(self, x, y):
        return self._tf.maximum(x, y)

    def sigmoid(self, x):
        return self._tf.sigmoid(x)


def check_values(x, y, num_classes=None):
    """Checks NumPy inputs and labels before they are mixed.

    `MixUp` runs it on NumPy batches; `keras_mi.data.mixup_dataset` runs it
    once on the whole arrays before building its pipeline (inside the
    tf.data graph the values are not checked).

    Args:
      x: NumPy inputs, first axis = examples.
      y: NumPy labels: class indices ``(n,)`` / ``(n, 1)`` or one-hot/soft
        rows ``(n, classes)``.
      num_classes: number of classes, or ``None`` to skip the range check.

    Raises:
      ValueError: float inputs with NaN or inf, class indices that are not
        integers or lie outside ``[0, num_classes)``, or soft rows that are
        negative or do not sum to 1.

    Example:
      >>> check_values(np.zeros((2, 3)), np.array([0, 2]), num_classes=3)
      >>> check_values(np.zeros((2, 3)), np.array([0, 3]), num_classes=3)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: MixUp: class labels must lie in [0, 3); got range [0, 3]. ...
    """
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise ValueError("MixUp inputs contain NaN or inf; clean the data before mixing.")
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        flat = y.reshape(-1)
        if np.any(flat != np.round(flat)):
            raise ValueError("MixUp: 1-D labels must be integer class indices.")
        if num_classes is not None and (flat.min() < 0 or flat.max() >= num_classes):
            raise ValueError(
                f"MixUp: class labels must lie in [0, {num_classes}); got range "
                f"[{flat.min()}, {flat.max()}]. Shift 1-based labels down by one.")
    elif y.ndim == 2:
        if np.any(y < 0) or not np.allclose(y.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError(
                "MixUp: one-hot/soft labels must be non-negative and sum to 1 per row "
                "(they look like logits or scores; apply softmax or pass class indices).")
