"""keras-mi: membership-inference attacks and defenses for Keras 3.

The public API, re-exported here:

* Defense: :class:`MMDModel` (λ·MMD² set regularizer inside ``model.fit``),
  :class:`MixUp` (mixup augmentation layer), ``data.mixup_dataset``; every
  defense by name in the ``defenses`` registry (``defenses.register_defense``).
* Attacks: ``attacks.run`` / ``attacks.run_on_model`` on
  :class:`ModelOutputs` (logits + labels per split).
* Data: ``data.load_dataset``, :class:`MembershipSplit`.
* Architectures: ``models.build_model``; DP-SGD baseline: ``baselines``.
* The main job: ``experiment.run_experiment`` (``keras-mi evaluate``).

Names load on first use (PEP 562), so ``import keras_mi`` is fast, imports
no TensorFlow, and works on a JAX-only machine; the TF-Privacy child process
imports none of the Keras-3 code it does not use. The classes that ``.keras``
files name (``MMDModel``, ``MixUp``) are registered with Keras as soon as
Keras is imported (before or after ``keras_mi``), so
``keras.saving.load_model`` finds them without touching ``keras_mi.MMDModel``.

Example:
  >>> import keras_mi
  >>> keras_mi.MMDModel.__name__
  'MMDModel'
"""

import importlib
import importlib.abc
import importlib.util
import sys

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
_SUBMODULES = ("attacks", "baselines", "data", "defenses", "experiment", "layers", "losses",
               "models", "outputs", "saved_models", "training")

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


#: Modules whose classes ``.keras`` files name (``keras_mi>MMDModel``...);
#: importing them runs their ``register_keras_serializable`` decorators.
_SERIALIZABLE_MODULES = ("keras_mi.training.mmd_model", "keras_mi.layers.mix_up",
                         "keras_mi.defenses.confidence_penalty",
                         "keras_mi.defenses.relaxloss_model", "keras_mi.defenses.advreg_model",
                         "keras_mi.defenses.hamp_model", "keras_mi.defenses.hamp_outputs")


def _register_serializables():
    try:
        for module in _SERIALIZABLE_MODULES:
            importlib.import_module(module)
    except Exception as err:  # never break the user's `import keras`
        import warnings

        warnings.warn(f"keras_mi could not register its Keras classes ({err!r}); loading .keras "
                      "files that hold them will fail.", stacklevel=2)


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Registers keras-mi's classes right after ``import keras`` finishes.

    ``keras.saving.load_model`` only finds registered classes, but importing
    Keras here would import TensorFlow (its default backend) with
    ``import keras_mi``. So registration waits for the user's own
    ``import keras``: this finder wraps the loader of the ``keras`` package
    and removes itself once it has fired.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        # One shot: find the real spec with the other finders (not this one).
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _register_serializables()

    def __getattr__(self, name):  # resources, get_data...: the real loader's
        return getattr(self._loader, name)


if "keras" in sys.modules:
    _register_serializables()
elif not any(isinstance(f, _RegisterAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
