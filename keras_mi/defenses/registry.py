"""The defense registry: one name -> one :class:`DefenseEntry`.

An entry says everything the experiment needs to train a model with a
defense: its settings (a dataclass held by one ``ExperimentConfig``
attribute), whether it reads the reference set, how to check a config, and
a builder that turns a freshly built logits model into a :class:`FitPlan`
(what to ``compile`` and ``fit``). A defense that trains elsewhere (DP-SGD
in a child process) sets ``trains_in_subprocess`` and gives
``train_outputs`` instead of ``build``. ``keras_mi.experiment`` asks this
registry and never parses names itself.

This module imports neither Keras nor TensorFlow.

Example:
  >>> from keras_mi.defenses import defense_names, resolve_defense
  >>> "mmd+mixup" in defense_names()
  True
  >>> entry, argument = resolve_defense("dpsgd:8")
  >>> entry.name, argument, entry.trains_in_subprocess
  ('dpsgd', 8.0, True)
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

#: name -> DefenseEntry, in registration order.
_REGISTRY: Dict[str, "DefenseEntry"] = {}


@dataclasses.dataclass
class FitPlan:
    """What a defense's builder hands back to the trainer.

    The trainer compiles ``model`` with the run's optimizer, ``loss`` and
    ``metrics=["accuracy"]`` (unless ``compiled``), then calls
    ``model.fit(data, epochs=..., shuffle=False, callbacks=..., **fit_kwargs)``
    for a dataset, or ``model.fit(x, y, batch_size=..., epochs=...,
    shuffle=True, callbacks=..., **fit_kwargs)`` for arrays.

    Attributes:
      model: the Keras model to fit (the logits model, a wrapper around it
        such as ``MMDModel``, or a model whose ``compute_loss`` is the defense).
      loss: the Keras loss to compile with (ignored when ``compiled``).
      data: ``(x, y)`` arrays, or a ``tf.data.Dataset`` of batches that
        shuffles itself (Keras must not).
      callbacks: extra Keras callbacks for ``fit``.
      fit_kwargs: extra ``fit`` keyword arguments (``validation_data``...).
      compiled: True when the builder compiled ``model`` itself.
      inference_model: the model to save and attack, when it is not the
        logits model the builder was given (e.g. an output modification);
        None: the given logits model.
    """

    model: Any
    loss: Any = None
    data: Any = None
    callbacks: List[Any] = dataclasses.field(default_factory=list)
    fit_kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    compiled: bool = False
    inference_model: Any = None


#: ``build(model, config, data, num_classes, seed, argument) -> FitPlan``.
Builder = Callable[..., FitPlan]


@dataclasses.dataclass
class DefenseEntry:
    """One defense of the registry.

    Attributes:
      name: the name ``--defenses`` and ``config.defenses`` use (no ``:``).
      description: one line for ``--help`` and the README.
      build: ``build(model, config, data, num_classes, seed, argument)``
        returning a :class:`FitPlan`. ``model`` is the freshly built logits
        model (possibly already wrapped with the crop/flip augmentation),
        ``data`` is ``{"train": (x, y), "reference": (x, y) or None}``,
        ``argument`` the parsed ``name:<argument>`` value or None.
      settings: the dataclass of the defense's hyper-parameters, or None.
      config_attr: the ``ExperimentConfig`` attribute holding an instance
        of ``settings`` (None: the entry reads no config section, or flat
        fields such as ``mixup_alpha``).
      needs_reference: True when the defense trains on the reference set.
      validate: ``validate(config) -> list of error strings``; checks that
        need no data. None: the settings' own ``errors(prefix)`` if any.
      check_data: ``check_data(config, facts, argument) -> list of error
        strings``; checks against the loaded dataset (``facts`` has
        ``num_classes``, ``input_shape``...), before anything is written.
      parse_argument: ``parse_argument(text) -> value`` for ``name:<text>``
        (raises ValueError on a bad value); None: the name takes none.
      argument_help: how the argument reads in messages (``"dpsgd:<epsilon>"``).
      trains_in_subprocess: True for a defense that trains outside this
        process and returns outputs, not a model (then ``train_outputs``).
      train_outputs: ``train_outputs(config, data, input_shape, num_classes,
        architecture, seed, verbose, argument)`` returning ``(outputs,
        extras)``: the :class:`keras_mi.outputs.ModelOutputs` and a dict the
        report records.
      train_outputs_many: ``train_outputs_many(config, datas, input_shape,
        num_classes, architecture, seeds, verbose, argument, work_dir)``
        returning one ``(outputs, extras)`` per model: trains a bank's
        models at once (e.g. in one child process), or None when the config
        gains nothing from that. None (the field, or what it returns): the
        bank calls ``train_outputs`` once per model.
      accountant_epsilon: ``accountant_epsilon(config, argument) -> float``
        for a defense with a formal privacy guarantee (its bank then gets
        the empirical ε audit); None otherwise.

    Example:
      >>> from keras_mi.defenses import DefenseEntry, FitPlan
      >>> entry = DefenseEntry("plain", lambda model, config, data, num_classes, seed,
      ...                      argument: FitPlan(model, data=data["train"]))
      >>> entry.needs_reference
      False
    """

    name: str
    build: Optional[Builder] = None
    description: str = ""
    settings: Optional[type] = None
    config_attr: Optional[str] = None
    needs_reference: bool = False
    validate: Optional[Callable[[Any], List[str]]] = None
    check_data: Optional[Callable[[Any, Any, Any], List[str]]] = None
    parse_argument: Optional[Callable[[str], Any]] = None
    argument_help: Optional[str] = None
    trains_in_subprocess: bool = False
    train_outputs: Optional[Callable[..., Any]] = None
    train_outputs_many: Optional[Callable[..., Any]] = None
    accountant_epsilon: Optional[Callable[[Any, Any], Optional[float]]] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or ":" in self.name \
                or self.name != self.name.strip():
            raise ValueError(f"A defense name must be a non-empty string without ':' or "
                             f"surrounding spaces; got {self.name!r}.")
        if self.trains_in_subprocess:
            if self.train_outputs is None:
                raise ValueError(f"Defense '{self.name}' trains in a subprocess: give "
                                 "train_outputs(config, data, input_shape, num_classes, "
                                 "architecture, seed, verbose, argument).")
        elif self.build is None:
            raise ValueError(f"Defense '{self.name}' needs a build(model, config, data, "
                             "num_classes, seed, argument) returning a FitPlan.")
        if (self.settings is None) != (self.config_attr is None):
            raise ValueError(f"Defense '{self.name}': give settings and config_attr together "
                             "(the dataclass and the ExperimentConfig attribute holding it).")

    def settings_of(self, config) -> Any:
        """The entry's settings as ``config`` holds them (None without settings).

        A config that lacks the attribute (a user's entry, an older config)
        gets the settings' defaults.
        """
        if self.config_attr is None:
            return None
        value = getattr(config, self.config_attr, None)
        return self.settings() if value is None else value

    def errors(self, config) -> List[str]:
        """``validate(config)``, or the settings' own ``errors(prefix)``."""
        if self.validate is not None:
            return list(self.validate(config))
        settings = self.settings_of(config)
        if settings is not None and hasattr(settings, "errors"):
            return list(settings.errors(self.config_attr))
        return []

    def data_errors(self, config, facts, argument=None) -> List[str]:
        """``check_data(config, facts, argument)``, or [] when the entry has none."""
        return [] if self.check_data is None else list(self.check_data(config, facts, argument))

    def epsilon(self, config, argument=None) -> Optional[float]:
        """The accountant's ε of a DP defense (None for the others)."""
        if self.accountant_epsilon is None:
            return None
        return self.accountant_epsilon(config, argument)


def register_defense(entry: DefenseEntry, *, replace: bool = False) -> DefenseEntry:
    """Adds ``entry`` to the registry; a name already taken is refused.

    Args:
      entry: the :class:`DefenseEntry`.
      replace: allow replacing an entry of the same name (tests, reloads).

    Returns:
      ``entry``, so it can be used as an expression.

    Raises:
      ValueError: the name is taken (and ``replace`` is False), or ``entry``
        is not a DefenseEntry.

    Example:
      >>> import keras
      >>> from keras_mi.defenses import DefenseEntry, FitPlan, register_defense
      >>> def build(model, config, data, num_classes, seed, argument):
      ...     return FitPlan(model, loss=keras.losses.SparseCategoricalCrossentropy(
      ...         from_logits=True), data=data["train"])
      >>> register_defense(DefenseEntry("my_plain", build))  # doctest: +SKIP
    """
    if not isinstance(entry, DefenseEntry):
        raise ValueError(f"register_defense expects a DefenseEntry, got {type(entry).__name__}.")
    _ensure_builtins()  # built-in names first, and never silently replaced
    if entry.name in _REGISTRY and not replace:
        raise ValueError(f"A defense named '{entry.name}' is already registered; pick another "
                         "name (or pass replace=True).")
    _REGISTRY[entry.name] = entry
    return entry


def unregister_defense(name: str) -> None:
    """Removes a user's entry (tests); unknown names raise ValueError."""
    _ensure_builtins()
    if name not in _REGISTRY:
        raise ValueError(_unknown(name))
    del _REGISTRY[name]


def defense_names() -> Tuple[str, ...]:
    """The registered names, built-in ones first, in registration order.

    Example:
      >>> defense_names()[:5]
      ('none', 'mixup', 'mmd', 'mmd+mixup', 'dpsgd')
    """
    _ensure_builtins()
    return tuple(_REGISTRY)


def defense_entries() -> Tuple[DefenseEntry, ...]:
    """Every registered entry, in :func:`defense_names` order."""
    _ensure_builtins()
    return tuple(_REGISTRY.values())


def resolve_defense(name: str) -> Tuple[DefenseEntry, Any]:
    """Splits ``name`` (``"dpsgd:8"``) into its entry and parsed argument.

    The one place a defense name is parsed.

    Raises:
      ValueError: unknown name (the message lists the valid ones), an
        argument given to a defense that takes none, or a bad argument.

    Example:
      >>> resolve_defense("mmd+mixup")[0].needs_reference
      True
    """
    _ensure_builtins()
    text = str(name)
    base, sep, arg = text.partition(":")
    if base not in _REGISTRY:
        raise ValueError(_unknown(text))
    entry = _REGISTRY[base]
    if not sep:
        return entry, None
    if entry.parse_argument is None:
        takers = [e.argument_help or f"{e.name}:<value>" for e in _REGISTRY.values()
                  if e.parse_argument is not None]
        raise ValueError(f"Defense '{text}' takes no argument; only "
                         f"{', '.join(takers) or 'none'} do.")
    return entry, entry.parse_argument(arg)


def get_defense(name: str) -> DefenseEntry:
    """The entry of ``name`` (``"mixup"``, or ``"dpsgd:8"`` with its argument checked).

    Raises:
      ValueError: unknown name; the message lists the valid names.

    Example:
      >>> get_defense("none").name
      'none'
    """
    return resolve_defense(name)[0]


def config_sections() -> Dict[str, type]:
    """``ExperimentConfig`` attribute -> settings dataclass, over every entry."""
    _ensure_builtins()
    return {e.config_attr: e.settings for e in _REGISTRY.values() if e.config_attr}


def config_errors(config, names: Sequence[str]) -> List[str]:
    """Every error the registry finds in ``config`` for the defenses ``names``.

    Unknown or malformed names, and each registered entry's ``validate``
    (settings are checked whether or not their defense is listed, so a bad
    value never waits for the run that uses it).
    """
    _ensure_builtins()
    errors = []
    for name in names:
        try:
            resolve_defense(name)
        except ValueError as err:
            errors.append(str(err))
    for entry in _REGISTRY.values():
        for err in entry.errors(config):
            if err not in errors:
                errors.append(err)
    return errors


def _unknown(name: str) -> str:
    takers = [e.argument_help for e in _REGISTRY.values() if e.argument_help]
    extra = f" (and {', '.join(takers)})" if takers else ""
    return f"Unknown defense '{name}'; valid defenses: {', '.join(_REGISTRY)}{extra}."


_LOADED = False


def _ensure_builtins() -> None:
    """Registers the built-in entries on first use (keeps imports cycle-free)."""
    global _LOADED  # pylint: disable=global-statement
    if not _LOADED:
        _LOADED = True
        # Importing the module runs its register_defense calls.
        importlib.import_module("keras_mi.defenses.builtin")
