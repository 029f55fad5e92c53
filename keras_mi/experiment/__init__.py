"""keras_mi.experiment: the main job behind ``keras-mi evaluate``.

Train one target per defense, attack each, write a privacy/utility report;
resumable and reproducible.

Example:
  >>> from keras_mi.experiment import get_preset, run_experiment
  >>> config = get_preset("location").with_overrides({"training.epochs": 5})
  >>> report = run_experiment(config, "runs/quick")  # doctest: +SKIP
"""

from keras_mi.experiment.config import (
    DPSGDSettings,
    ExperimentConfig,
    SplitSizes,
    TrainingRecipe,
    parse_defense,
)
from keras_mi.experiment.presets import DEFAULT_PRESET, available_presets, get_preset
from keras_mi.experiment.runner import available_attacks, run_experiment
from keras_mi.experiment.store import ConfigMismatchError

__all__ = [
    "ConfigMismatchError", "DEFAULT_PRESET", "DEFENSES", "DPSGDSettings", "ExperimentConfig",
    "SplitSizes", "TrainingRecipe", "available_attacks", "available_presets", "get_preset",
    "parse_defense", "run_experiment",
]


def __getattr__(name):
    # DEFENSES: kept for one release; keras_mi.defenses.defense_names() is the source.
    if name == "DEFENSES":
        from keras_mi.defenses import defense_names

        return defense_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
