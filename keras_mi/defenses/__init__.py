"""keras_mi.defenses: every defense as one entry of a registry.

``none``, ``mixup``, ``mmd``, ``mmd+mixup``, ``dpsgd`` (``dpsgd:<epsilon>``),
``label_smoothing``, ``confidence_penalty``, ``early_stopping``, ``relaxloss``,
``advreg``, ``hamp``; a user adds
their own with :func:`register_defense`. The experiment (``keras-mi
evaluate``) trains any entry the same way: build the logits model, ask the
entry's builder for a :class:`FitPlan`, compile and fit it.

Importing this package imports neither Keras nor TensorFlow; the Keras
pieces (:class:`ConfidencePenalty`, :class:`RelaxLossModel`, :class:`AdvRegModel`,
:class:`HAMPModel`, :class:`HAMPOutputs`) load on first use.

Example:
  >>> from keras_mi import defenses
  >>> defenses.get_defense("label_smoothing").config_attr
  'label_smoothing'
"""

import importlib

from keras_mi.defenses.literature_settings import AdvRegSettings, HAMPSettings, RelaxLossSettings
from keras_mi.defenses.registry import (
    DefenseEntry,
    FitPlan,
    config_errors,
    config_sections,
    defense_entries,
    defense_names,
    get_defense,
    register_defense,
    resolve_defense,
    unregister_defense,
)
from keras_mi.defenses.settings import (
    ConfidencePenaltySettings,
    EarlyStoppingSettings,
    LabelSmoothingSettings,
)

#: Keras-dependent public names -> module (loaded on first use).
_LAZY = {"ConfidencePenalty": "keras_mi.defenses.confidence_penalty",
         "RelaxLossModel": "keras_mi.defenses.relaxloss_model",
         "AdvRegModel": "keras_mi.defenses.advreg_model",
         "HAMPModel": "keras_mi.defenses.hamp_model",
         "HAMPOutputs": "keras_mi.defenses.hamp_outputs"}

__all__ = [
    "AdvRegModel", "AdvRegSettings", "ConfidencePenalty", "ConfidencePenaltySettings",
    "DefenseEntry", "EarlyStoppingSettings", "HAMPModel", "HAMPOutputs", "HAMPSettings",
    "RelaxLossModel", "RelaxLossSettings",
    "FitPlan", "LabelSmoothingSettings", "config_errors", "config_sections", "defense_entries",
    "defense_names", "get_defense", "register_defense", "resolve_defense", "unregister_defense",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_mi.defenses' has no attribute '{name}'")
