"""The ``relaxloss`` entry: settings, checks and builder of RelaxLoss.

The Keras piece is :class:`keras_mi.defenses.relaxloss_model.RelaxLossModel`;
this module imports neither Keras nor TensorFlow (``ExperimentConfig`` reads
:class:`~keras_mi.defenses.literature_settings.RelaxLossSettings`).
"""

from __future__ import annotations

from typing import List

from keras_mi.defenses.literature_settings import RelaxLossSettings
from keras_mi.defenses.registry import DefenseEntry, FitPlan, register_defense


def settings_of(config) -> RelaxLossSettings:
    """``config.relaxloss``, or the defaults for a config without that section."""
    value = getattr(config, "relaxloss", None)
    return RelaxLossSettings() if value is None else value


def check_data(config, facts, argument=None) -> List[str]:
    """``upper`` must exceed 1/K for the dataset's K classes."""
    settings = settings_of(config)
    if settings.errors():
        return []
    _, upper, _ = settings.resolved(config.dataset)
    k = int(facts.num_classes)
    if upper <= 1.0 / k:
        return [f"relaxloss.upper ({upper}) must exceed 1/K = {1.0 / k:.4g} for the "
                f"{k} classes of {config.dataset}."]
    return []


def build(model, config, data, num_classes, seed, argument=None) -> FitPlan:
    """:class:`RelaxLossModel` around the logits model (its loss replaces the compiled one)."""
    from keras_mi.defenses.relaxloss_model import RelaxLossModel  # pylint: disable=import-outside-toplevel

    alpha, upper, variant = settings_of(config).resolved(config.dataset)
    return FitPlan(RelaxLossModel(model, alpha=alpha, upper=upper, variant=variant),
                   loss=None, data=data["train"])


register_defense(DefenseEntry(
    "relaxloss", build,
    description="RelaxLoss (Chen et al. 2022): keep the loss near relaxloss.alpha, flatten",
    settings=RelaxLossSettings, config_attr="relaxloss", check_data=check_data))
