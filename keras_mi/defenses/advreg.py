"""The ``advreg`` entry: settings, checks and builder of adversarial regularization.

The Keras piece is :class:`keras_mi.defenses.advreg_model.AdvRegModel`; its
inference model contrasts the members with the run's reference split. This
module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

from typing import List

from keras_mi.defenses.literature_settings import AdvRegSettings
from keras_mi.defenses.registry import DefenseEntry, FitPlan, register_defense


def settings_of(config) -> AdvRegSettings:
    """``config.advreg``, or the defaults for a config without that section."""
    value = getattr(config, "advreg", None)
    return AdvRegSettings() if value is None else value


def check_data(config, facts, argument=None) -> List[str]:
    """The inference model needs non-members: a reference split."""
    if config.split.reference < 1:
        return ["advreg contrasts the members with the reference split: set split.reference > 0."]
    return []


def build(model, config, data, num_classes, seed, argument=None) -> FitPlan:
    """:class:`AdvRegModel` around the logits model, the reference split as non-members."""
    import keras  # pylint: disable=import-outside-toplevel

    from keras_mi.defenses.advreg_model import AdvRegModel  # pylint: disable=import-outside-toplevel

    settings = settings_of(config)
    wrapped = AdvRegModel(model, reference=data["reference"],
                          weight=settings.resolved(config.dataset),
                          attack_weight=settings.attack_weight,
                          warmup_epochs=settings.warmup_epochs, num_classes=num_classes,
                          seed=seed)
    return FitPlan(wrapped, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   data=data["train"])


register_defense(DefenseEntry(
    "advreg", build,
    description="adversarial regularization (Nasr et al. 2018), advreg.weight",
    settings=AdvRegSettings, config_attr="advreg", needs_reference=True,
    check_data=check_data))
