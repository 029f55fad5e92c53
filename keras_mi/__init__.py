"""keras-mi: membership-inference attacks and defenses for Keras 3.

The public API, re-exported here:

* Defense: :class:`MMDModel` (λ·MMD² set regularizer inside ``model.fit``),
  :class:`MixUp` (mixup augmentation layer), ``data.mixup_dataset``.
* Attacks: ``attacks.run`` / ``attacks.run_on_model`` on
  :class:`ModelOutputs` (logits + labels per split).
* Data: ``data.load_dataset``, :class:`MembershipSplit`.
* Architectures: ``models.build_model``; DP-SGD baseline: ``baselines``.
* The main job: ``experiment.run_experiment`` (``keras-mi evaluate``).

Names load on first use (PEP 562), so ``import keras_mi`` is fast, imports
no TensorFlow, and works on a JAX-only machine; the TF-Privacy child process
imports none of the Keras-3 code it does not use.

Example:
  >>> import keras_mi
  >>> keras_mi.MMDModel.__name__
  'MMDModel'
"""

import importlib

__version__ = "0.1.0"

#: Public name -> module that defines it.
_EXPORTS = {
    "MMDModel": "keras_mi.training",
    "AccuracyGap": "keras_mi.training",
    "PaperSchedule": "keras_mi.training",
    "MixUp": "keras_mi.layers",
    "ModelOutputs": "keras_mi.outputs",
    "MembershipSplit": "keras_mi.data",
    "load_dataset": "keras_mi.data",
    "mixup_dataset": "keras_mi.data",
    "build_model": "keras_mi.models",
    "mmd2": "keras_mi.losses",
    "AttackMonitor": "keras_mi.attacks",
    "AttackReport": "keras_mi.attacks",
    "run_experiment": "keras_mi.experiment",
}

#: Subpackages reachable as attributes (``keras_mi.attacks.run``).
_SUBMODULES = ("attacks", "baselines", "data", "experiment", "layers", "losses", "models",
               "outputs", "saved_models", "training")

__all__ = sorted(_EXPORTS) + list(_SUBMODULES)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"keras_mi.{name}")
    else:
        raise AttributeError(f"module 'keras_mi' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
