"""The built-in entries of the defense registry.

``none``, ``mixup``, ``mmd``, ``mmd+mixup`` (the paper's), ``dpsgd`` (a
child process), the simple defenses ``label_smoothing``,
``confidence_penalty`` and ``early_stopping``, and ``mmd+early_stopping``
(``mmd`` stopped as ``early_stopping`` is). Each builder receives the
freshly built logits model (possibly behind the crop/flip augmentation) and
returns a :class:`~keras_mi.defenses.registry.FitPlan`; Keras and the
defense pieces load inside the builders, so this module imports neither
Keras nor TensorFlow.
"""

from __future__ import annotations

from typing import List

from keras_mi.defenses import dpsgd as _dpsgd
from keras_mi.defenses.registry import DefenseEntry, FitPlan, register_defense
from keras_mi.defenses.settings import (
    ConfidencePenaltySettings,
    EarlyStoppingSettings,
    LabelSmoothingSettings,
)


def _sparse_ce():
    import keras  # pylint: disable=import-outside-toplevel

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _mixup_data(config, x, y, num_classes: int, seed: int):
    from keras_mi.data import mixup_dataset  # pylint: disable=import-outside-toplevel

    batch = config.training.batch_size
    # The dataset reshuffles itself each epoch (seeded); Keras must not.
    return mixup_dataset(x, y, num_classes=num_classes, alpha=config.mixup_alpha,
                         batch_size=batch, seed=seed, shuffle=True,
                         drop_remainder=len(x) % batch == 1)


def _mmd_wrap(model, config, data, seed: int):
    from keras_mi.training import MMDModel  # pylint: disable=import-outside-toplevel

    return MMDModel(model, reference=data["reference"], weight=config.mmd_weight,
                    sigma=config.mmd_sigma, schedule=config.mmd_schedule,
                    per_class=config.mmd_per_class, kernel=config.mmd_kernel,
                    statistic=config.mmd_statistic, seed=seed)


def build_none(model, config, data, num_classes, seed, argument=None) -> FitPlan:
    """Plain cross-entropy on the members."""
    return FitPlan(model, loss=_sparse_ce(), data=data["train"])


def build_mixup(model, config, data, num_classes, seed, argument=None) -> FitPlan:
    """Mixup batches (``config.mixup_alpha``) with soft-target cross-entropy."""
    import keras  # pylint: disable=import-outside-toplevel

    x, y = data["train"]
    return FitPlan(model, loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                   data=_mixup_data(config, x, y, num_classes, seed))


def build_mmd(model, config, data, num_classes, seed, argument=None) -> FitPlan:
    """``MMDModel``: cross-entropy + λ·MMD² against class-matched reference batches."""
    return FitPlan(_mmd_wrap(model, config, data, seed), loss=_sparse_ce(), data=data["train"])


def build_mmd_mixup(model, config, data, num_classes, seed, argument=None) -> FitPlan:
    """``MMDModel`` fitted on mixup batches (the paper's proposed defense)."""
    import keras  # pylint: disable=import-outside-toplevel

    x, y = data["train"]
    wrapped = _mmd_wrap(model, config, data, seed)
    return FitPlan(wrapped, loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                   data=_mixup_data(config, x, y, num_classes, seed))


def build_label_smoothing(model, config, data, num_classes, seed, argument=None) -> FitPlan:
    """Keras's ``CategoricalCrossentropy(label_smoothing=ε)`` on one-hot members."""
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel

    x, y = data["train"]
    onehot = np.eye(num_classes, dtype="float32")[np.asarray(y, dtype=np.int64)]
    loss = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=config.label_smoothing.epsilon)
    return FitPlan(model, loss=loss, data=(x, onehot))


def build_confidence_penalty(model, config, data, num_classes, seed, argument=None) -> FitPlan:
    """:class:`~keras_mi.defenses.confidence_penalty.ConfidencePenalty` (β)."""
    # pylint: disable-next=import-outside-toplevel
    from keras_mi.defenses.confidence_penalty import ConfidencePenalty

    return FitPlan(model, loss=ConfidencePenalty(beta=config.confidence_penalty.beta),
                   data=data["train"])


def _stop_on_reference_loss(plan: FitPlan, config, data) -> FitPlan:
    """``plan`` stopped on the reference split's cross-entropy, best weights restored."""
    plan.callbacks.append(config.early_stopping.callback())
    plan.fit_kwargs["validation_data"] = tuple(data["reference"])
    return plan


def build_early_stopping(model, config, data, num_classes, seed, argument=None) -> FitPlan:
    """Plain cross-entropy, stopped on the reference split's loss (best weights kept)."""
    return _stop_on_reference_loss(build_none(model, config, data, num_classes, seed),
                                   config, data)


def build_mmd_early_stopping(model, config, data, num_classes, seed,
                             argument=None) -> FitPlan:
    """``mmd``, stopped on the reference split's loss (best weights kept).

    The reference split is the MMD²'s reference set and the stopping set at
    once: both are held out from the attacked records. ``MMDModel``'s
    validation loss is the cross-entropy alone (``compute_loss`` at
    ``training=False``), so the stopping epoch is chosen on utility, and the
    MMD² is free to pull the members' outputs until then.
    """
    return _stop_on_reference_loss(build_mmd(model, config, data, num_classes, seed),
                                   config, data)


def _reference_errors(config, facts, argument) -> List[str]:
    """Class-matched reference batches need one reference record per class at least."""
    if config.split.reference < facts.num_classes:
        return [f"the MMD defenses draw class-matched reference batches: split.reference "
                f"({config.split.reference}) must be at least the number of classes "
                f"({facts.num_classes})."]
    return []


def _no_errors(config) -> List[str]:
    return []


register_defense(DefenseEntry(
    "none", build_none, description="plain cross-entropy training", validate=_no_errors))
register_defense(DefenseEntry(
    "mixup", build_mixup, description="mixup (Zhang et al. 2018), mixup_alpha",
    validate=_no_errors))
register_defense(DefenseEntry(
    "mmd", build_mmd, description="cross-entropy + mmd_weight·MMD² vs the reference set",
    needs_reference=True, validate=_no_errors, check_data=_reference_errors))
register_defense(DefenseEntry(
    "mmd+mixup", build_mmd_mixup, description="MMD + mixup (the paper's defense)",
    needs_reference=True, validate=_no_errors, check_data=_reference_errors))
register_defense(DefenseEntry(
    "dpsgd", description="DP-SGD at dpsgd.epsilon (dpsgd:<epsilon> for another ε)",
    trains_in_subprocess=True, train_outputs=_dpsgd.train_outputs,
    train_outputs_many=_dpsgd.train_outputs_many,
    parse_argument=_dpsgd.parse_epsilon, argument_help="dpsgd:<epsilon>",
    check_data=_dpsgd.check_data, accountant_epsilon=_dpsgd.accountant_epsilon,
    validate=_no_errors))
register_defense(DefenseEntry(
    "label_smoothing", build_label_smoothing,
    description="label smoothing (Szegedy et al. 2016), label_smoothing.epsilon",
    settings=LabelSmoothingSettings, config_attr="label_smoothing"))
register_defense(DefenseEntry(
    "confidence_penalty", build_confidence_penalty,
    description="CE − β·entropy (Pereyra et al. 2017), confidence_penalty.beta",
    settings=ConfidencePenaltySettings, config_attr="confidence_penalty"))
register_defense(DefenseEntry(
    "early_stopping", build_early_stopping,
    description="stop on the reference split's loss, best weights restored",
    settings=EarlyStoppingSettings, config_attr="early_stopping", needs_reference=True))
register_defense(DefenseEntry(
    "mmd+early_stopping", build_mmd_early_stopping,
    description="mmd, stopped on the reference split's loss (early_stopping.patience)",
    settings=EarlyStoppingSettings, config_attr="early_stopping", needs_reference=True,
    check_data=_reference_errors))

#: Modules of further entries (each registers its own on import; no top-level
#: Keras import there), loaded with the built-in ones.
_EXTRA_MODULES: tuple = ("keras_mi.defenses.relaxloss", "keras_mi.defenses.advreg",
                         "keras_mi.defenses.hamp")

for _module in _EXTRA_MODULES:
    import importlib as _importlib

    _importlib.import_module(_module)
