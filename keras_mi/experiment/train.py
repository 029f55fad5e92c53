"""Trains one model per defense with the experiment's shared recipe.

Each Keras defense builds a fresh architecture (``keras_mi.models``), wraps
it as the defense asks (mixup data, ``MMDModel``) and fits it with the
optimizer and learning-rate schedule of :class:`TrainingRecipe`. The model
returned is always the plain logits model (never the MMD wrapper), so its
``.keras`` file loads without keras-mi's training code. DP-SGD runs in its
own process through :func:`keras_mi.baselines.train_dpsgd`.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Any, Dict, Optional, Tuple

import numpy as np

from keras_mi.experiment.config import ExperimentConfig, TrainingRecipe, parse_defense


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
    import keras  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        tf.config.experimental.enable_op_determinism()


def make_optimizer(recipe: TrainingRecipe, steps_per_epoch: int, learning_rate: Optional[float] = None):
    """The recipe's optimizer, with the step schedule converted to batches.

    Example:
      >>> opt = make_optimizer(TrainingRecipe(optimizer="sgd", momentum=0.9), 10)
    """
    import keras  # pylint: disable=import-outside-toplevel

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
    import keras  # pylint: disable=import-outside-toplevel

    if len(input_shape) != 3:
        raise ValueError(f"augmentation 'crop_flip' needs images (H, W, C), got input shape {input_shape}; "
                         "set training.augmentation to 'none'.")
    height, width = int(input_shape[0]), int(input_shape[1])
    inputs = keras.Input(tuple(input_shape))
    h = keras.layers.ZeroPadding2D(4)(inputs)
    h = keras.layers.RandomCrop(height, width, seed=seed)(h)
    # RandomCrop passes its input through at inference (the padded image):
    # the centre crop undoes the padding there and is the identity in training.
    h = keras.layers.CenterCrop(height, width)(h)
    h = keras.layers.RandomFlip("horizontal", seed=seed + 1)(h)
    return keras.Model(inputs, model(h))


def train_keras_defense(defense: str, config: ExperimentConfig, data: Dict[str, Tuple[np.ndarray, np.ndarray]],
                        input_shape, num_classes: int, architecture: str, seed: int,
                        verbose: int = 0) -> TrainedModel:
    """Trains ``none``/``mixup``/``mmd``/``mmd+mixup`` on ``data["train"]``.

    Args:
      defense: the defense name.
      config: the experiment config (recipe, λ, σ, α).
      data: ``{"train": (x, y), "reference": (x, y)}``; the reference set is
        only read by the MMD defenses.
      input_shape, num_classes, architecture: what to build.
      seed: this model's seed (see :func:`model_seed`).
      verbose: Keras ``fit`` verbosity.

    Returns:
      A :class:`TrainedModel` with the plain logits model.
    """
    import keras  # pylint: disable=import-outside-toplevel

    from keras_mi import models  # pylint: disable=import-outside-toplevel

    kind, _ = parse_defense(defense)
    recipe = config.training
    x, y = data["train"]
    seed_everything(seed)
    model = models.build_model(architecture, tuple(input_shape), num_classes, seed=seed)
    trainable = model
    if recipe.augmentation == "crop_flip":
        trainable = _with_augmentation(model, input_shape, seed)
    use_mixup = kind in ("mixup", "mmd+mixup")
    use_mmd = kind in ("mmd", "mmd+mixup")
    if use_mmd:
        from keras_mi.training import MMDModel  # pylint: disable=import-outside-toplevel

        trainable = MMDModel(trainable, reference=data["reference"], weight=config.mmd_weight,
                             sigma=config.mmd_sigma, schedule=config.mmd_schedule,
                             per_class=config.mmd_per_class, seed=seed)
    steps = math.ceil(len(x) / recipe.batch_size)
    if use_mixup:
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # "accuracy" shows in the progress bars and is what MMDModel's paper
    # schedule reads to decide its MMD passes.
    trainable.compile(optimizer=make_optimizer(recipe, steps), loss=loss, metrics=["accuracy"])
    if use_mixup:
        from keras_mi.data import mixup_dataset  # pylint: disable=import-outside-toplevel

        dataset = mixup_dataset(x, y, num_classes=num_classes, alpha=config.mixup_alpha,
                                batch_size=recipe.batch_size, seed=seed, shuffle=True,
                                drop_remainder=len(x) % recipe.batch_size == 1)
        # The dataset reshuffles itself each epoch (seeded); Keras must not.
        trainable.fit(dataset, epochs=recipe.epochs, shuffle=False, verbose=verbose)
    else:
        trainable.fit(x, y, batch_size=recipe.batch_size, epochs=recipe.epochs, shuffle=True,
                      verbose=verbose)
    return TrainedModel(model=model)


def train_dpsgd_defense(defense: str, config: ExperimentConfig,
                        data: Dict[str, Any], input_shape, num_classes: int, architecture: str,
                        seed: int, verbose: int = 0) -> TrainedModel:
    """DP-SGD at the requested ε, in a child process.

    ``config.dpsgd.implementation`` picks the child: ``"tf_privacy"``
    (TF-Privacy + tf-keras, :func:`keras_mi.baselines.train_dpsgd`; the model
    is kept as ``out/model.h5`` in ``data["work_dir"]``) or ``"keras_jax"``
    (:func:`keras_mi.baselines.train_dpsgd_keras` with ``KERAS_BACKEND=jax``
    and Poisson batches; ``out/model.keras``). The noise multiplier is the
    smallest that reaches ε for the run's member count, batch size and
    epochs (``noise_multiplier_for_epsilon``). The extras record the
    implementation; for ``keras_jax`` also the sampler and the accountant's
    ``sampling_assumption``.
    """
    from keras_mi import baselines  # pylint: disable=import-outside-toplevel

    _, eps = parse_defense(defense)
    dp = config.dpsgd
    epsilon = eps if eps is not None else dp.epsilon
    recipe = config.training
    epochs = dp.epochs or recipe.epochs
    batch_size = dp.batch_size or recipe.batch_size
    splits = data["eval"]
    if dp.implementation == "keras_jax":
        return _train_dpsgd_keras_jax(dp, epsilon, batch_size, epochs, splits, data,
                                      input_shape, num_classes, architecture, seed, verbose)
    # train_dpsgd calibrates the noise multiplier to ε on the steps it takes
    # (baselines.noise_multiplier_for_epsilon), so the ε reported is met.
    result = baselines.train_dpsgd(
        splits["members"], splits["non_members"], input_shape=tuple(input_shape),
        num_classes=num_classes, architecture=architecture, reference=splits.get("reference"),
        test=splits.get("test"), target_epsilon=epsilon, l2_norm_clip=dp.l2_norm_clip,
        batch_size=batch_size, epochs=epochs, learning_rate=dp.learning_rate,
        momentum=dp.momentum, num_microbatches=dp.num_microbatches, delta=dp.delta, seed=seed,
        work_dir=data.get("work_dir"), verbose=1 if verbose else 0)
    return TrainedModel(outputs=result.outputs, extras={
        "epsilon": float(result.epsilon), "target_epsilon": float(epsilon),
        "delta": None if result.delta is None else float(result.delta),
        "noise_multiplier": float(result.noise_multiplier),
        "l2_norm_clip": float(result.l2_norm_clip), "epochs": int(result.epochs),
        "batch_size": int(result.batch_size), "num_microbatches": result.num_microbatches,
        "accountant": result.accountant})


def _train_dpsgd_keras_jax(dp, epsilon, batch_size, epochs, splits, data, input_shape,
                           num_classes, architecture, seed, verbose) -> TrainedModel:
    """``train_dpsgd_defense`` with the Keras 3 / JAX trainer (Poisson batches)."""
    from keras_mi.baselines.dpsgd_keras_subprocess import (  # pylint: disable=import-outside-toplevel
        train_dpsgd_keras_subprocess)

    result = train_dpsgd_keras_subprocess(
        splits["members"], splits["non_members"], input_shape=tuple(input_shape),
        num_classes=num_classes, architecture=architecture, reference=splits.get("reference"),
        test=splits.get("test"), target_epsilon=epsilon, l2_norm_clip=dp.l2_norm_clip,
        batch_size=batch_size, epochs=epochs, learning_rate=dp.learning_rate,
        momentum=dp.momentum, sampling="poisson", delta=dp.delta, seed=seed,
        work_dir=data.get("work_dir"), verbose=1 if verbose else 0)
    return TrainedModel(outputs=result.outputs, extras={
        "epsilon": float(result.epsilon), "target_epsilon": float(epsilon),
        "delta": float(result.delta), "noise_multiplier": float(result.noise_multiplier),
        "l2_norm_clip": float(result.l2_norm_clip), "epochs": int(result.epochs),
        "batch_size": int(result.batch_size), "num_microbatches": None,
        "accountant": result.accountant, "implementation": "keras_jax", "sampling": "poisson",
        "sampling_assumption": result.privacy.sampling_assumption})
