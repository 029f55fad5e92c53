"""The ``hamp`` entry: settings, checks and builder of HAMP.

Training is :class:`keras_mi.defenses.hamp_model.HAMPModel`; the model that
is saved and attacked is :class:`keras_mi.defenses.hamp_outputs.HAMPOutputs`
around the trained logits model (``FitPlan.inference_model``), so every
attack sees the modified outputs. This module imports neither Keras nor
TensorFlow.
"""

from __future__ import annotations

from keras_mi.defenses.literature_settings import HAMPSettings
from keras_mi.defenses.registry import DefenseEntry, FitPlan, register_defense


def settings_of(config) -> HAMPSettings:
    """``config.hamp``, or the defaults for a config without that section."""
    value = getattr(config, "hamp", None)
    return HAMPSettings() if value is None else value


def build(model, config, data, num_classes, seed, argument=None) -> FitPlan:
    """:class:`HAMPModel` to fit; :class:`HAMPOutputs` as the model to save and attack."""
    # pylint: disable=import-outside-toplevel
    from keras_mi.defenses.hamp_model import HAMPModel
    from keras_mi.defenses.hamp_outputs import HAMPOutputs

    settings = settings_of(config)
    gamma, alpha, sampler = settings.resolved(config.dataset)
    output_seed = seed if settings.output_seed is None else settings.output_seed
    return FitPlan(HAMPModel(model, gamma=gamma, alpha=alpha, num_classes=num_classes),
                   loss=None, data=data["train"],
                   inference_model=HAMPOutputs(model, sampler=sampler, low=0.0, high=1.0,
                                               seed=output_seed))


register_defense(DefenseEntry(
    "hamp", build,
    description="HAMP (Chen & Pattabiraman 2024): high-entropy labels, output modification",
    settings=HAMPSettings, config_attr="hamp"))
