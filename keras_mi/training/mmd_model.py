"""`MMDModel`: the MMD set regularizer of Li, Li & Ribeiro inside `model.fit`.

Design:

* The wrapped model outputs logits. Its forward pass on the training batch
  is the ordinary one `Model.train_step` makes; the MMD term lives in
  `compute_loss`, so the same code runs on the TensorFlow and JAX trainers,
  under `tf.distribute`, and composes with other train steps.
* For each training example with class c (the argmax of one-hot or soft
  labels; mixup's soft labels pair on their dominant class, whereas the
  paper's code pairs on the un-mixed labels) one reference example of class
  c is drawn, giving a reference batch with identical per-class counts.
  Draws are without replacement inside a batch (a random affine walk
  through each class block, see `_reference_indices`); only when a batch
  holds more examples of a class than the reference set has do they wrap
  around and repeat. `replace=True` draws i.i.d. instead (also used for
  classes of more than 46,340 reference rows, where the walk would overflow
  int32).
* The reference batch goes through the wrapped model in a *separate* call
  whose softmax is `stop_gradient`-ed. Autodiff then never runs the backward
  pass of that call, so the step costs one extra forward pass (~1.33x a
  plain step). One concatenated forward pass of train+reference batch would
  not be cheaper: the backward matmuls would run over the doubled batch
  (~2x), and BatchNorm would normalize the training batch with statistics
  mixed from the reference batch, which the paper's code does not do.
* ``schedule="summed"``: loss = compiled loss + weight * MMD² every step.
  ``schedule="paper"``: the compiled loss alone; at the end of each epoch
  (but the last) whose train-minus-validation accuracy gap is at least
  ``gap_threshold``, `PaperSchedule` runs one extra pass over the training
  data with MMD-only steps (see `keras_mi.training.paper_schedule`).
* The ``mmd`` log entry is the mean MMD² of the training batches (in the
  ``"paper"`` schedule's ordinary passes it is only monitored, not in the
  loss); ``val_mmd`` compares validation batches with the reference set.
  Sample weights weight the compiled loss only, not the MMD term.
* Under `tf.distribute` each replica computes the MMD² of its own share of
  the batch (the gradient is the mean of the per-replica MMD² gradients),
  like the per-replica cross-entropy.
* The reference set is not a Keras variable and is not saved (see
  `keras_mi.training.reference`). The traced train and test functions hold
  it as a constant (on JAX compiled in, which is fine for tabular reference
  sets but slows compilation for very large image sets), so `set_reference`
  rebuilds them: the next `fit`/`evaluate` retraces with the new set.
* The wrapped model may be Sequential, Functional or subclassed (its output
  width is then measured on reference rows at `fit`); it must output logits
  unless ``from_logits=False``: `fit` refuses outputs that are non-negative
  and sum to 1 per row.

Warning: the reference outputs come from the model being trained, so the
MMD target moves with it. With ``schedule="summed"`` a large λ can run away:
pulling training outputs towards the (partly wrong) reference outputs also
degrades the reference outputs, down to chance accuracy. Choose λ on
held-out data (`bench/mmd_tune.py`); measured λ curves are in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# Module imports, not names: `import keras` inside `keras_mi.losses` can run
# keras_mi's class registration, which imports this module while the losses
# are still initializing.
from keras_mi.losses import class_mmd as _class_mmd
from keras_mi.losses import kernels as _kernels
from keras_mi.losses import log_odds as _log_odds
from keras_mi.losses import mmd as _mmd
from keras_mi.mmd_options import SCHEDULES, STATISTICS
from keras_mi.training.reference import ReferenceSet
from keras_mi.training.wrapped_model import WrappedModel

__all__ = ["MMDModel"]


@keras.saving.register_keras_serializable(package="keras_mi")
class MMDModel(WrappedModel):
    """Wraps a logits model and adds ``weight * MMD²`` to its training loss.

    Args:
      model: A Keras model mapping inputs to logits ``(batch, classes)``.
      reference: ``(x_ref, y_ref)``, the held-out reference set (the
        paper's validation set). Labels are ints or one-hot rows. May be
        ``None`` and given later with `set_reference` (e.g. after load).
      weight: λ >= 0, the MMD² loss weight (3.0 in the paper's CIFAR code).
      sigma: Kernel bandwidth > 0, or a list of them (summed).
      schedule: ``"summed"`` or ``"paper"`` (see the module docstring).
      unbiased: Use the unbiased MMD² estimator (the paper uses biased).
      per_class: Compare outputs within each class (default): the MMD² is
        ``Σ_c (n_c/n) MMD²(train[c], ref[c])`` over the batch's classes
        (`keras_mi.losses.class_conditional_mmd2`). The paper's code gets
        this by running its MMD passes over the training set *sorted by
        class*, so each batch holds one class; the per-class form gives
        the same comparison on shuffled batches. ``False`` pools the
        whole batch (cross-class pairs dilute the member/non-member
        signal).
      kernel: ``"gaussian"`` (the paper's), ``"laplacian"`` or ``"imq"``
        (inverse multiquadric, heavy-tailed); see `keras_mi.losses.kernels`.
      statistic: What the MMD² compares: ``"softmax"`` (the paper's: the
        softmax vectors) or ``"log_odds"`` (one feature per row, the
        true-class log-odds ``log p_y - log(1 - p_y)``, the statistic
        LiRA reads; `keras_mi.losses.true_class_log_odds`). Bandwidths
        are then in log-odds units.
      reference_multiple: Reference rows drawn per training row (int >= 1;
        the paper's is 1). More rows lower the noise of each class's MMD²
        at the cost of a larger reference forward pass (no backward pass).
      gap_threshold: For ``"paper"``: accuracy gap (fraction, 0.03 = 3
        points) that triggers an MMD pass.
      replace: Draw reference examples i.i.d. instead of without
        replacement within a batch.
      from_logits: ``False`` if the wrapped model already ends in softmax.
      reference_training: The ``training`` flag for the reference forward
        pass (``True`` mirrors the paper's code: dropout on, BatchNorm
        in train mode).
      seed: Seed of the reference sampling.
      **kwargs: Passed to `keras.Model` (``name``, ``dtype``...).

    Example:
      >>> import numpy as np, keras
      >>> x = np.random.rand(64, 5).astype("float32"); y = np.arange(64) % 2
      >>> net = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
      >>> model = MMDModel(net, reference=(x[:32], y[:32]), weight=3.0, seed=0)
      >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
      >>> _ = model.fit(x[32:], y[32:], epochs=1, batch_size=16, verbose=0)
    """

    def __init__(
        self,
        model,
        reference=None,
        weight=3.0,
        sigma=1.0,
        schedule="summed",
        unbiased=False,
        per_class=True,
        kernel="gaussian",
        statistic="softmax",
        reference_multiple=1,
        gap_threshold=0.03,
        replace=False,
        from_logits=True,
        reference_training=True,
        seed=None,
        **kwargs,
    ):
        super().__init__(model, **kwargs)
        weight = float(weight)
        if not weight >= 0.0:
            raise ValueError(
                f"`weight` (λ) must be >= 0; received {weight}. The paper uses 0.025 to 16."
            )
        sigmas = list(sigma) if isinstance(sigma, (list, tuple)) else [sigma]
        if not sigmas or not all(float(s) > 0.0 for s in sigmas):
            raise ValueError(
                f"`sigma` must be > 0 (or a non-empty list of values > 0); received {sigma!r}."
            )
        if kernel not in _kernels.KERNELS:
            raise ValueError(f"`kernel` must be one of {_kernels.KERNELS}; received {kernel!r}.")
        if (isinstance(reference_multiple, bool) or not isinstance(reference_multiple, int)
                or not 1 <= reference_multiple <= 64):
            raise ValueError("`reference_multiple` must be an int in [1, 64]; received "
                             f"{reference_multiple!r}.")
        if reference_multiple > 1 and unbiased:
            raise ValueError("`reference_multiple` > 1 needs the biased estimator "
                             "(unbiased=False).")
        if statistic not in STATISTICS:
            raise ValueError(f"`statistic` must be one of {STATISTICS}; received {statistic!r}.")
        if schedule not in SCHEDULES:
            raise ValueError(f"`schedule` must be one of {SCHEDULES}; received {schedule!r}.")
        if not -1.0 <= float(gap_threshold) <= 1.0:
            raise ValueError(
                f"`gap_threshold` is an accuracy difference in [-1, 1]; received {gap_threshold} "
                "(3 points is 0.03)."
            )
        self.weight = weight
        self.sigma = sigma if not isinstance(sigma, tuple) else list(sigma)
        self.schedule = schedule
        self.unbiased = bool(unbiased)
        self.per_class = bool(per_class)
        self.kernel = kernel
        self.statistic = statistic
        self.reference_multiple = int(reference_multiple)
        self.gap_threshold = float(gap_threshold)
        self.replace = bool(replace)
        self.from_logits = bool(from_logits)
        self.reference_training = bool(reference_training)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.mmd_tracker = keras.metrics.Mean(name="mmd")
        # Python flag read when a train function is traced: True only inside
        # `mmd_only_pass`, which traces (and caches) a train function of its own.
        self._mmd_only = False
        self._mmd_only_function = None
        self._mmd_only_version = None
        self._reference = None
        # Bumped by every new reference set; `mmd_only_pass` drops its cached
        # train function when it changes.
        self._reference_version = 0
        # Output width of a wrapped model without `output_shape` (subclassed
        # models), measured by `checks.check_before_fit`.
        self._output_width = None
        if reference is not None:
            self.set_reference(*reference)

    # ------------------------------------------------------------------ data
    @property
    def num_classes(self):
        """Width of the wrapped model's output, or ``None`` if not built."""
        try:
            shape = self.model.output_shape
        except (AttributeError, ValueError):
            # Subclassed models have no static output shape.
            return self._output_width
        return None if shape is None or shape[-1] is None else int(shape[-1])

    @property
    def reference(self):
        """The `ReferenceSet` in use, or ``None``."""
        return self._reference

    def set_reference(self, x, y):
        """Sets (or replaces) the reference set ``(x, y)``; validates it.

        Takes effect at the next train or test step, also after `fit` or
        `evaluate` have already run (their traced functions are rebuilt)
        and on a model loaded from ``.keras`` (which has no reference set).

        Args:
          x: Reference inputs (array or structure of arrays), preprocessed
            like the training inputs.
          y: Int labels or one-hot rows.

        Returns:
          ``self``.

        Example:
          >>> model.set_reference(x_val, y_val)  # doctest: +SKIP
        """
        # Wrap in a plain attribute holder: Keras does not track it, so it
        # is neither a weight nor saved.
        reference = ReferenceSet.create(x, y, num_classes=self.num_classes, seed=self.seed)
        if self.num_classes is not None:
            try:
                shape = self.model.input_shape
            except (AttributeError, ValueError):  # subclassed models have none
                shape = None
            if isinstance(shape, tuple) and len(reference.feature_shapes) == 1:
                want = tuple(shape[1:])
                got = reference.feature_shapes[0]
                if len(want) != len(got) or any(
                    w is not None and w != g for w, g in zip(want, got)
                ):
                    raise ValueError(
                        f"Reference inputs have per-example shape {got} "
                        f"but the model expects {want}."
                    )
        self._use_reference(reference)
        return self

    def _use_reference(self, reference):
        """Makes ``reference`` the set that the next train/test step reads.

        A train or test function traced earlier holds the old reference
        tensors as constants (TensorFlow graph, JAX jit), so both are
        rebuilt; they retrace on their next call.
        """
        self._reference = reference
        self._reference_version += 1
        if self.train_function is not None:
            self.make_train_function(force=True)
        if self.test_function is not None:
            self.make_test_function(force=True)

    # ----------------------------------------------------------------- model
    def _reference_indices(self, labels):
        """Class-matched reference rows for a batch of int class ids."""
        ref = self._reference
        starts = ops.take(ref.offsets, labels)
        # fit() refuses classes without reference rows; the floor of 1 only
        # keeps evaluate() on such labels from dividing by zero.
        counts = ops.maximum(ops.take(ref.counts, labels), 1)
        if self.replace or int(ref.class_counts.max()) > 46340:
            u = keras.random.uniform(ops.shape(labels), seed=self.seed_generator)
            pos = ops.cast(ops.floor(u * ops.cast(counts, "float32")), "int32")
            return starts + ops.minimum(pos, counts - 1)
        # Rank of each example among the earlier batch examples of its class.
        k = ref.num_classes
        onehot = ops.one_hot(labels, k, dtype="int32")
        rank = ops.sum((ops.cumsum(onehot, axis=0) - 1) * onehot, axis=1)
        # Per class, a random affine walk (offset + rank * stride) mod count
        # through the (pre-shuffled) class block: a stride that is a prime
        # larger than the count is coprime with it, so the first `count`
        # ranks hit distinct rows, and the random offset makes every row
        # equally likely. O(batch + classes), no sort of the reference set.
        offset = keras.random.uniform((k,), seed=self.seed_generator)
        pick = keras.random.randint((k,), 0, ops.shape(ref.strides)[0], seed=self.seed_generator)
        stride_c = ops.mod(ops.take(ref.strides, pick), ops.maximum(ref.counts, 1))
        offset_c = ops.cast(ops.floor(offset * ops.cast(ref.counts, "float32")), "int32")
        offset_i = ops.minimum(ops.take(offset_c, labels), counts - 1)
        stride_i = ops.take(stride_c, labels)
        return starts + ops.mod(offset_i + ops.mod(rank, counts) * stride_i, counts)

    def _probs(self, outputs):
        outputs = ops.cast(outputs, "float32")
        return ops.softmax(outputs, axis=-1) if self.from_logits else outputs

    def _logits(self, outputs):
        outputs = ops.cast(outputs, "float32")
        # log p is a logit vector (up to a per-row constant the log-odds ignore).
        return outputs if self.from_logits else ops.log(ops.maximum(outputs, 1e-30))

    def reference_mmd2(self, y, y_pred, training=True):
        """MMD² between the batch's outputs and a class-matched reference batch.

        The outputs compared are ``softmax(y_pred)`` (``statistic="softmax"``)
        or the true-class log-odds (``"log_odds"``); the reference side is
        wrapped in `ops.stop_gradient`.
        """
        if self._reference is None:
            raise RuntimeError(
                "MMDModel has no reference set; pass reference=(x_ref, y_ref) or call "
                "set_reference(x_ref, y_ref) (it is not saved in .keras files)."
            )
        labels = self._labels_of(y, y_pred)
        multiple = self.reference_multiple
        # Several class-matched reference rows per training row: the
        # reference side of each class's MMD² gets `multiple` times the rows.
        ref_labels = labels if multiple == 1 else ops.tile(labels, [multiple])
        idx = self._reference_indices(ref_labels)
        x_ref = keras.tree.map_structure(lambda t: ops.take(t, idx, axis=0), self._reference.x)
        ref_out = self.model(x_ref, training=self.reference_training and training)
        if self.statistic == "log_odds":
            a = _log_odds.true_class_log_odds(self._logits(y_pred), labels)
            b = ops.stop_gradient(_log_odds.true_class_log_odds(self._logits(ref_out),
                                                                ref_labels))
        else:
            a = self._probs(y_pred)
            b = ops.stop_gradient(self._probs(ref_out))
        if self.per_class:
            return _class_mmd.class_conditional_mmd2(
                a, b, labels, sigma=self.sigma, unbiased=self.unbiased, kernel=self.kernel,
                labels_b=None if multiple == 1 else ref_labels)
        return _mmd.mmd2(a, b, sigma=self.sigma, unbiased=self.unbiased, kernel=self.kernel)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not training:
            # Evaluation: the compiled loss; MMD² to the reference only as
            # a metric (``val_mmd``).
            if self._reference is not None and y is not None:
                self.mmd_tracker.update_state(self.reference_mmd2(y, y_pred, training=False))
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        mmd = self.reference_mmd2(y, y_pred)
        self.mmd_tracker.update_state(mmd)
        if self._mmd_only:
            extra = [ops.cast(loss, "float32") for loss in self.losses]
            return self.weight * mmd + (ops.sum(extra) if extra else 0.0)
        base = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if self.schedule == "paper":
            return base
        return ops.cast(base, "float32") + self.weight * mmd

    # ------------------------------------------------------------ training
    def mmd_only_pass(self, batches):
        """One pass of MMD-only train steps (``weight * MMD²`` and the model's own losses).

        This is the second pass of the paper's schedule (`PaperSchedule` calls
        it after an epoch whose accuracy gap is large). It runs through
        `train_on_batch` with a train function traced for it and cached for
        later passes, so the train function of the surrounding `fit` is
        never retraced; a new reference set drops the cache.

        Args:
          batches: An iterable of ``(x, y)`` batches (NumPy), e.g.
            `keras_mi.training.paper_schedule.iterate_batches`.

        Returns:
          The mean MMD² over the pass (NaN for no batches).

        Example:
          >>> model.mmd_only_pass(iterate_batches(x, y, batch_size=128, seed=0))  # doctest: +SKIP
        """
        fit_function = self.train_function
        if self._mmd_only_version != self._reference_version:
            # Traced with an older reference set (held as constants).
            self._mmd_only_function = None
        self.train_function = self._mmd_only_function
        self._mmd_only = True
        values = []
        try:
            for xb, yb in batches:
                out = self.train_on_batch(xb, yb, return_dict=True)
                values.append(float(out["mmd"]))
            self._mmd_only_function = self.train_function
            self._mmd_only_version = self._reference_version
        finally:
            self._mmd_only = False
            self.train_function = fit_function
        return float(np.mean(values)) if values else float("nan")

    def fit(self, x=None, y=None, **kwargs):
        """`keras.Model.fit` after checking the reference set against the data.

        Adds `AccuracyGap` (and, for ``schedule="paper"``, `PaperSchedule`)
        to the callbacks. See `keras_mi.training.checks` for what is checked.
        """
        from keras_mi.training import checks
        from keras_mi.training.callbacks import AccuracyGap
        from keras_mi.training.paper_schedule import PaperSchedule

        checks.check_before_fit(self, x, y, kwargs)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        acc_key = checks.accuracy_metric_name(self)
        if self.schedule == "paper":
            if acc_key is None:
                raise ValueError(
                    'schedule="paper" decides each MMD pass from the train accuracy; '
                    "compile(..., metrics=['accuracy'])."
                )
            callbacks.insert(0, PaperSchedule(x, y, kwargs, accuracy=acc_key))
        elif acc_key is not None and not any(isinstance(c, AccuracyGap) for c in callbacks):
            callbacks.insert(0, AccuracyGap(accuracy=acc_key))
        return super().fit(x, y, callbacks=callbacks, **kwargs)

    # -------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "weight": self.weight,
                "sigma": self.sigma,
                "schedule": self.schedule,
                "unbiased": self.unbiased,
                "per_class": self.per_class,
                "kernel": self.kernel,
                "statistic": self.statistic,
                "reference_multiple": self.reference_multiple,
                "gap_threshold": self.gap_threshold,
                "replace": self.replace,
                "from_logits": self.from_logits,
                "reference_training": self.reference_training,
                "seed": self.seed,
            }
        )
        return config
