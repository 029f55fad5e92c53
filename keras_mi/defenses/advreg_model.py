"""`AdvRegModel`: adversarial regularization (Nasr, Shokri & Houmansadr, CCS 2018).

A min-max game inside `model.fit`: an inference model ``h(f(x), y)`` learns
to tell the training batch (members) from reference batches (non-members),
and the classifier ``f`` minimizes ``CE + λ·gain``, where the gain is
``mean h(f(x), y) − 0.5`` on the training batch, as in the reimplementation
of DingfanChen/RelaxLoss (``source/nonimage/defense/advreg.py``,
``train_privately``) and DependableSystemsLab/MIA_defense_HAMP
(``location/train-advreg.py``). ``h`` sees the sorted softmax vector and the
label as a ±1 one-hot row (``attack_input_transform``) and is trained with
the mean squared error to the membership bit (``nn.MSELoss``).

Design, backend-agnostic (no ``train_step`` override, no weights written by
callbacks mid-epoch, so the JAX trainer's functional state is never
bypassed):

* Both players update in the *same* step, from one loss computed in
  `compute_loss`: ``CE + λ·gain + attack_weight·MSE(h)``. The gain moves
  only ``f``: it is ``mean h(f(x)) − mean h(sg f(x)) + sg(mean h(sg f(x)))
  − 0.5`` (``sg``: `stop_gradient`), whose value is the gain and whose
  gradients with respect to ``h``'s weights cancel; the MSE sees
  `stop_gradient`-ed outputs of ``f``, so it moves only ``h``. (``h``'s
  weights are only read through ordinary layer calls: a second, detached
  read of them (``stateless_call`` on `stop_gradient`-ed values) raced with
  the optimizer's in-place update in TensorFlow's graph and sometimes saw
  the updated kernel or bias.) The run's optimizer updates both
  (simultaneous gradient descent-ascent). The authors alternate instead: ``k`` attack batches with
  their own Adam, then ``2`` classifier batches (RelaxLoss:
  ``num_batches_attack`` 50; HAMP: 52); ``attack_weight`` is the one knob
  for the attacker's pace here (with SGD it scales its learning rate; Adam
  is nearly invariant to it).
* A reference batch of the training batch's size is drawn uniformly (with
  replacement) from the reference set in every step; ``f`` runs on it with
  ``training=False`` (the authors' ``target_model.eval()``).
* The first ``warmup_epochs`` epochs (authors: 1) train ``f`` on plain CE
  while ``h`` already learns; `AdvRegSchedule` (added by `fit`) switches
  the gain on through a non-trainable variable at the start of an epoch.

Logged: ``attack_acc`` (share of members with ``h > 0.5`` and reference
rows with ``h < 0.5``, on the step's batches) and ``gain``.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_mi.training.reference import labels_to_int
from keras_mi.training.wrapped_model import WrappedModel

__all__ = ["AdvRegModel", "AdvRegSchedule", "default_attack_model", "attack_features"]


def default_attack_model(num_classes, seed=None):
    """The inference model of the RelaxLoss reimplementation (``class Attack``).

    Sorted probabilities -> Dense(512, relu) -> Dense(64, relu); the ±1 label
    row -> Dense(64); concatenated -> Dense(64, relu) -> Dense(1, sigmoid).
    Weights ~ N(0, 0.01²), biases 0, as there.

    Args:
      num_classes: K, the width of both inputs.
      seed: Seed of the initializers.

    Returns:
      A functional Keras model ``[probs (K,), labels (K,)] -> (1,)`` in [0, 1].
    """
    k = int(num_classes)

    def dense(units, activation=None, salt=0):
        init = keras.initializers.RandomNormal(stddev=0.01,
                                               seed=None if seed is None else seed + salt)
        return keras.layers.Dense(units, activation=activation, kernel_initializer=init)

    probs = keras.Input((k,), name="sorted_probs")
    labels = keras.Input((k,), name="labels")
    a = dense(64, "relu", 1)(dense(512, "relu", 0)(probs))
    b = dense(64, salt=2)(labels)
    h = dense(64, "relu", 3)(keras.layers.Concatenate()([a, b]))
    return keras.Model([probs, labels], dense(1, "sigmoid", 4)(h), name="advreg_attack")


def attack_features(probs, labels, num_classes):
    """``[sort(probs), ±1 one-hot(labels)]``: what the inference model sees."""
    onehot = ops.one_hot(ops.cast(labels, "int32"), num_classes)
    return [ops.sort(probs, axis=-1), 2.0 * onehot - 1.0]


class AdvRegSchedule(keras.callbacks.Callback):
    """Switches the classifier's gain term on after the warm-up epochs."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.set_epoch(epoch)


@keras.saving.register_keras_serializable(package="keras_mi")
class AdvRegModel(WrappedModel):
    """Wraps a logits model in Nasr et al.'s adversarial regularization.

    Args:
      model: A Keras model mapping inputs to logits ``(batch, K)``.
      reference: ``(x_ref, y_ref)``, the non-members the inference model
        contrasts with the members (not saved; see `set_reference`).
      weight: λ >= 0, the weight of the gain in the classifier's loss.
        Authors' values: DingfanChen/RelaxLoss
        ``source/nonimage/defense/advreg.py`` ``--alpha`` default 1.0 (the
        default here); DependableSystemsLab/MIA_defense_HAMP
        ``location/train-all.sh`` ``--alpha 10``, ``cifar10/train-all.sh``
        ``--alpha 6``.
      attack_weight: > 0, the weight of the inference model's loss.
      warmup_epochs: >= 0 epochs of plain CE first (authors: 1).
      attack_model: The inference model ``[probs, labels] -> (batch, 1)``
        in [0, 1]; None builds `default_attack_model`.
      num_classes: K; None reads the model's output width.
      seed: Seed of the reference sampling and the default attack model.
      **kwargs: Passed to `keras.Model`.

    Example:

    >>> import numpy as np, keras
    >>> x = np.random.rand(64, 5).astype("float32"); y = np.arange(64) % 3
    >>> net = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    >>> model = AdvRegModel(net, reference=(x[32:], y[32:]), weight=1.0, seed=0)
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> _ = model.fit(x[:32], y[:32], epochs=2, batch_size=16, verbose=0)

    References:
      Nasr, Shokri & Houmansadr, "Machine Learning with Membership Privacy
      using Adversarial Regularization", CCS 2018.

    Warning:
      The reference set is not saved in ``.keras`` files (the inference
      model's weights are); call `set_reference` before fitting a loaded
      model. Sample weights weight the CE only.
    """

    _nested_models = ("model", "attack_model")

    def __init__(self, model, reference=None, weight=1.0, attack_weight=1.0, warmup_epochs=1,
                 attack_model=None, num_classes=None, seed=None, **kwargs):
        super().__init__(model, **kwargs)
        weight = float(weight)
        if not (weight >= 0.0 and math.isfinite(weight)):
            raise ValueError(f"AdvReg `weight` (λ) must be a finite number >= 0; received "
                             f"{weight}. The authors use 1 to 10.")
        attack_weight = float(attack_weight)
        if not (attack_weight > 0.0 and math.isfinite(attack_weight)):
            raise ValueError(f"AdvReg `attack_weight` must be a finite number > 0; received "
                             f"{attack_weight}.")
        if isinstance(warmup_epochs, bool) or int(warmup_epochs) != warmup_epochs \
                or warmup_epochs < 0:
            raise ValueError(f"AdvReg `warmup_epochs` must be an int >= 0; received "
                             f"{warmup_epochs!r}.")
        if num_classes is None:
            num_classes = self._model_output_width()
        if num_classes is None or int(num_classes) < 2:
            raise ValueError(f"AdvRegModel needs num_classes >= 2 (or a model with an output "
                             f"shape); received {num_classes}.")
        self.num_classes = int(num_classes)
        self.weight = weight
        self.attack_weight = attack_weight
        self.warmup_epochs = int(warmup_epochs)
        self.seed = seed
        self.attack_model = (default_attack_model(self.num_classes, seed) if attack_model is None
                             else attack_model)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.penalty_on = self.add_variable((), initializer="zeros", trainable=False,
                                            name="penalty_on")
        if self.warmup_epochs == 0:
            self.penalty_on.assign(1.0)
        self.attack_acc_tracker = keras.metrics.Mean(name="attack_acc")
        self.gain_tracker = keras.metrics.Mean(name="gain")
        self._reference = None
        if reference is not None:
            self.set_reference(*reference)

    # ------------------------------------------------------------------ data
    def set_reference(self, x, y):
        """Sets the reference (non-member) set; rebuilds traced train functions."""
        x = ops.convert_to_numpy(x) if not hasattr(x, "shape") else x
        labels = labels_to_int(y, num_classes=self.num_classes, what="Reference labels")
        if len(labels) == 0 or len(labels) != len(x):
            raise ValueError(f"The reference set needs as many inputs as labels, at least one; "
                             f"got {len(x)} inputs and {len(labels)} labels.")
        self._reference = (ops.convert_to_tensor(x), ops.convert_to_tensor(labels.astype("int32")))
        if self.train_function is not None:
            self.make_train_function(force=True)
        return self

    @property
    def reference(self):
        """``(x_ref, y_ref)`` backend tensors, or None."""
        return self._reference

    def set_epoch(self, epoch):
        """Gain on from epoch ``warmup_epochs`` on (done by `AdvRegSchedule`)."""
        self.penalty_on.assign(1.0 if int(epoch) >= self.warmup_epochs else 0.0)

    # ----------------------------------------------------------------- model
    def adversarial_terms(self, y, y_pred):
        """``(gain, attack_mse, attack_acc)`` of one training batch (see module docstring)."""
        if self._reference is None:
            raise RuntimeError("AdvRegModel has no reference set; pass reference=(x_ref, y_ref) "
                               "or call set_reference (it is not saved in .keras files).")
        x_ref, y_ref = self._reference
        n = ops.shape(y_pred)[0]
        u = keras.random.uniform((n,), seed=self.seed_generator)
        count = ops.shape(y_ref)[0]
        idx = ops.minimum(ops.cast(ops.floor(u * ops.cast(count, "float32")), "int32"),
                          count - 1)
        ref_probs = ops.stop_gradient(ops.softmax(ops.cast(
            self.model(ops.take(x_ref, idx, axis=0), training=False), "float32"), axis=-1))
        probs = ops.softmax(ops.cast(y_pred, "float32"), axis=-1)
        labels = self._labels_of(y)
        member = attack_features(probs, labels, self.num_classes)
        non_member = attack_features(ref_probs, ops.take(y_ref, idx), self.num_classes)
        h_in = ops.reshape(self.attack_model([ops.stop_gradient(t) for t in member]), (-1,))
        # The same h on live features: f's gradient of the gain; its h-gradient is
        # cancelled by h_in's (same weights, same feature values).
        h_live = ops.reshape(self.attack_model(member), (-1,))
        gain = ops.mean(h_live) - ops.mean(h_in) + ops.stop_gradient(ops.mean(h_in)) - 0.5
        h_out = ops.reshape(self.attack_model(non_member), (-1,))
        mse = (ops.sum(ops.square(h_in - 1.0)) + ops.sum(ops.square(h_out))) / (
            2.0 * ops.cast(n, "float32"))
        acc = (ops.mean(ops.cast(h_in > 0.5, "float32"))
               + ops.mean(ops.cast(h_out < 0.5, "float32"))) / 2.0
        return gain, mse, acc

    def attack_accuracy(self, members, non_members, batch_size=256):
        """The inference model's accuracy on ``members`` vs ``non_members``.

        Args:
          members: ``(x, y)`` records labelled members (1).
          non_members: ``(x, y)`` records labelled non-members (0).
          batch_size: Batch size of the forward passes.

        Returns:
          The balanced accuracy of ``h > 0.5``, a float in [0, 1].
        """
        accs = []
        for (x, y), is_member in ((members, True), (non_members, False)):
            probs = ops.softmax(ops.convert_to_tensor(
                self.model.predict(x, batch_size=batch_size, verbose=0)), axis=-1)
            labels = labels_to_int(y, num_classes=self.num_classes)
            h = ops.convert_to_numpy(self.attack_model(
                attack_features(probs, ops.convert_to_tensor(labels), self.num_classes)))
            accs.append(float(((h > 0.5) == is_member).mean()))
        return sum(accs) / 2.0

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        base = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if not training:
            return base
        gain, mse, acc = self.adversarial_terms(y, y_pred)
        self.gain_tracker.update_state(gain)
        self.attack_acc_tracker.update_state(acc)
        return (ops.cast(base, "float32") + self.weight * self.penalty_on * gain
                + self.attack_weight * mse)

    def fit(self, x=None, y=None, **kwargs):
        """`keras.Model.fit` with `AdvRegSchedule` added (checks the reference set)."""
        if self._reference is None:
            raise ValueError("AdvRegModel.fit needs a reference set: pass reference=(x_ref, "
                             "y_ref) or call set_reference first.")
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if not any(isinstance(c, AdvRegSchedule) for c in callbacks):
            callbacks.insert(0, AdvRegSchedule())
        return super().fit(x, y, callbacks=callbacks, **kwargs)

    # -------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update({
            "weight": self.weight, "attack_weight": self.attack_weight,
            "warmup_epochs": self.warmup_epochs, "num_classes": self.num_classes,
            "seed": self.seed,
        })
        return config
