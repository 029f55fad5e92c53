"""Trains one model per defense with the experiment's shared recipe.

Each Keras defense builds a fresh architecture (``keras_mi.models``), hands
it to its registry entry (:mod:`keras_mi.defenses`), which wraps it as the
defense asks (mixup data, ``MMDModel``, a loss, a callback), and fits the
result with the optimizer and learning-rate schedule of
:class:`TrainingRecipe`. The model returned is always the plain logits
model (never the MMD wrapper), so its ``.keras`` file loads without
keras-mi's training code. Entries that train in a child process (DP-SGD)
return outputs instead.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Any, Dict, Optional, Tuple

import numpy as np

from keras_mi.experiment.config import ExperimentConfig, TrainingRecipe


@dataclasses.dataclass
class TrainedModel:
    """What training one defense yields.

    Attributes:
      model: the Keras logits model, or None when training happened in
        another process (DP-SGD), in which case ``outputs`` is set.
      outputs: a :class:`keras_mi.outputs.ModelOutputs` when already computed.
      extras: JSON-ready facts about the training (ε, δ, noise multiplier).
    """

    model: Any = None
    outputs: Any = None
    extras: Dict[str, Any] = dataclasses.field(default_factory=dict)


def model_seed(base_seed: int, tag: str) -> int:
    """A per-model seed that depends only on the run seed and the model's tag.

    Seeding each model on its own (not from a shared stream) is what makes
    a resumed run train the remaining models exactly as an uninterrupted run.

    Example:
      >>> model_seed(0, "none") == model_seed(0, "none") != model_seed(0, "mixup")
      True
    """
    return (int(base_seed) * 1_000_003 + zlib.crc32(tag.encode())) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    """``keras.utils.set_random_seed`` plus op determinism on TensorFlow."""
    import keras  # no TensorFlow at import

    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def make_optimizer(recipe: TrainingRecipe, steps_per_epoch: int,
                   learning_rate: Optional[float] = None):
    """The recipe's optimizer, with the step schedule converted to batches.

    Example:
      >>> opt = make_optimizer(TrainingRecipe(optimizer="sgd", momentum=0.9), 10)
    """
    import keras

    lr: Any = float(learning_rate if learning_rate is not None else recipe.learning_rate)
    if recipe.lr_schedule == "step" and recipe.lr_boundaries:
        bounds = [int(b) * steps_per_epoch for b in sorted(recipe.lr_boundaries)]
        values = [lr * recipe.lr_factor**i for i in range(len(bounds) + 1)]
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(bounds, values)
    wd = recipe.weight_decay or None
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=recipe.momentum, weight_decay=wd)
    return keras.optimizers.Adam(lr, weight_decay=wd)


def _with_augmentation(model, input_shape, seed: int):
    """Random crop (4-pixel zero padding) + horizontal flip in front of ``model``."""
    import keras

    if len(input_shape) != 3:
        raise ValueError("augmentation 'crop_flip' needs images (H, W, C), got input shape "
                         f"{input_shape}; set training.augmentation to 'none'.")
    height, width = int(input_shape[0]), int(input_shape[1])
    inputs = keras.Input(tuple(input_shape))
    h = keras.layers.ZeroPadding2D(4)(inputs)
    h = keras.layers.RandomCrop(height, width, seed=seed)(h)
    # RandomCrop passes its input through at inference (the padded image):
    # the centre crop undoes the padding there and is the identity in training.
    h = keras.layers.CenterCrop(height, width)(h)
    h = keras.layers.RandomFlip("horizontal", seed=seed + 1)(h)
    return keras.Model(inputs, model(h))


def train_keras_defense(defense: str, config: ExperimentConfig,
                        data: Dict[str, Tuple[np.ndarray, np.ndarray]], input_shape,
                        num_classes: int, architecture: str, seed: int,
                        verbose: int = 0, heartbeat=None) -> TrainedModel:
    """Trains any Keras defense of the registry on ``data["train"]``.

    Builds the architecture (behind the crop/flip augmentation when the
    recipe asks), hands it to the entry's builder
    (:class:`keras_mi.defenses.FitPlan`), compiles the plan's model with the
    recipe's optimizer and the plan's loss, and fits it.

    Args:
      defense: the defense name (``keras_mi.defenses.defense_names()``).
      config: the experiment config (recipe, the defense's settings).
      data: ``{"train": (x, y), "reference": (x, y)}``; the reference set is
        only read by the defenses that need it (MMD, early stopping).
      input_shape, num_classes, architecture: what to build.
      seed: this model's seed (see :func:`model_seed`).
      verbose: Keras ``fit`` verbosity.
      heartbeat: ``(every_s, write)`` for a quiet fit: a line through
        ``write`` at most every ``every_s`` seconds
        (:class:`keras_mi.experiment.epoch_heartbeat.EpochHeartbeat`); None: none.

    Returns:
      A :class:`TrainedModel` with the plain logits model (never a training
      wrapper), or the plan's ``inference_model`` when it gives one.
    """
    from keras_mi import models
    from keras_mi.defenses import resolve_defense

    entry, argument = resolve_defense(defense)
    if entry.trains_in_subprocess:
        raise ValueError(f"Defense '{defense}' trains in a child process; use "
                         "train_dpsgd_defense (train_defense picks the right one).")
    config = config.for_defense(defense)
    recipe = config.training
    x, _ = data["train"]
    seed_everything(seed)
    model = models.build_model(architecture, tuple(input_shape), num_classes, seed=seed)
    trainable = model
    if recipe.augmentation == "crop_flip":
        trainable = _with_augmentation(model, input_shape, seed)
    plan = entry.build(trainable, config, {"train": data["train"],
                                           "reference": data.get("reference")},
                       num_classes, seed, argument)
    if heartbeat is not None:
        from keras_mi.experiment.epoch_heartbeat import EpochHeartbeat

        every_s, write = heartbeat
        plan.callbacks = list(plan.callbacks) + [EpochHeartbeat(every_s, prefix=f"  {defense}:",
                                                                write=write)]
    fit_plan(plan, recipe, steps_per_epoch=math.ceil(len(x) / recipe.batch_size),
             verbose=verbose)
    return TrainedModel(model=model if plan.inference_model is None else plan.inference_model)


def fit_plan(plan, recipe: TrainingRecipe, steps_per_epoch: int, verbose: int = 0):
    """Compiles (unless the builder did) and fits a :class:`keras_mi.defenses.FitPlan`.

    A dataset shuffles itself (Keras must not); arrays are shuffled by Keras.

    Returns:
      The Keras ``History``.
    """
    if not plan.compiled:
        # "accuracy" shows in the progress bars and is what MMDModel's paper
        # schedule reads to decide its MMD passes.
        plan.model.compile(optimizer=make_optimizer(recipe, steps_per_epoch), loss=plan.loss,
                           metrics=["accuracy"])
    kwargs = dict(plan.fit_kwargs)
    if plan.callbacks:
        kwargs["callbacks"] = list(plan.callbacks)
    if isinstance(plan.data, (tuple, list)):
        x, y = plan.data
        return plan.model.fit(x, y, batch_size=recipe.batch_size, epochs=recipe.epochs,
                              shuffle=True, verbose=verbose, **kwargs)
    return plan.model.fit(plan.data, epochs=recipe.epochs, shuffle=False, verbose=verbose,
                          **kwargs)


def train_dpsgd_defense(defense: str, config: ExperimentConfig,
                        data: Dict[str, Any], input_shape, num_classes: int, architecture: str,
                        seed: int, verbose: int = 0) -> TrainedModel:
    """Trains a defense that runs in a child process (``dpsgd``); outputs, not a model.

    The entry's ``train_outputs`` does the work (see
    :func:`keras_mi.defenses.dpsgd.train_outputs`); ``data`` is
    ``{"eval": {role: (x, y)}, "work_dir": folder}``.
    """
    from keras_mi.defenses import resolve_defense

    entry, argument = resolve_defense(defense)
    if not entry.trains_in_subprocess:
        raise ValueError(f"Defense '{defense}' trains in this process; use train_keras_defense.")
    config = config.for_defense(defense)
    outputs, extras = entry.train_outputs(config, data, input_shape, num_classes, architecture,
                                          seed, verbose, argument)
    return TrainedModel(outputs=outputs, extras=dict(extras))


def train_defense(defense: str, config: ExperimentConfig, data: Dict[str, Any], input_shape,
                  num_classes: int, architecture: str, seed: int,
                  verbose: int = 0) -> TrainedModel:
    """:func:`train_keras_defense` or :func:`train_dpsgd_defense`, as the entry says.

    ``data`` holds ``"train"`` and ``"reference"`` (Keras defenses) and
    ``"eval"`` and ``"work_dir"`` (defenses that train in a child process).
    """
    from keras_mi.defenses import get_defense

    trainer = (train_dpsgd_defense if get_defense(defense).trains_in_subprocess
               else train_keras_defense)
    return trainer(defense, config, data, input_shape, num_classes, architecture, seed,
                   verbose=verbose)
