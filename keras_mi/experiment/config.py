"""The experiment's configuration: one dataclass tree, JSON/YAML on disk.

An :class:`ExperimentConfig` names everything that decides the numbers of a
report: the dataset and its split sizes, the architecture, the training
recipe, the defenses to compare, the attacks to run and the seed. Its
:meth:`ExperimentConfig.fingerprint` (SHA-256 of the canonical JSON, minus
the fields that only say *where* data lives) is stored in the output folder,
so a re-run with a different config in the same folder is refused.

Defense names come from the registry (:mod:`keras_mi.defenses`,
``defense_names()``); the built-in ones:

* ``none``: plain cross-entropy training.
* ``mixup``: mixup (Zhang et al. 2018) with ``mixup_alpha``.
* ``mmd``: cross-entropy + λ·MMD² between the softmax outputs of a training
  batch and a class-matched reference batch (``mmd_weight`` = λ).
* ``mmd+mixup``: both (the paper's proposed defense).
* ``dpsgd``: DP-SGD (TF-Privacy, or Keras 3 on JAX with
  ``dpsgd.implementation: keras_jax``) at ``dpsgd.epsilon``; ``dpsgd:8`` asks for
  ε = 8 explicitly, so several budgets can be compared in one report.
* ``label_smoothing``, ``confidence_penalty``, ``early_stopping``: their
  settings live in the config sections of the same names.

``per_defense`` gives one defense its own values of the other fields
(``{"mmd+early_stopping": {"mmd_weight": 2.0}}``); every step that trains,
checks or labels that defense's models reads
:meth:`ExperimentConfig.for_defense`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import pathlib
from typing import Any, Dict, List, Optional, Sequence, Union

from keras_mi import mmd_options
from keras_mi.defenses.literature_settings import AdvRegSettings, HAMPSettings, RelaxLossSettings
from keras_mi.defenses.registry import (
    config_errors,
    config_sections,
    defense_names,
    resolve_defense,
)
from keras_mi.defenses.settings import (
    ConfidencePenaltySettings,
    EarlyStoppingSettings,
    LabelSmoothingSettings,
)


def __getattr__(name):
    # DEFENSES: kept for one release; keras_mi.defenses.defense_names() is the source.
    if name == "DEFENSES":
        return defense_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Optimizers the training recipe can name.
OPTIMIZERS = ("sgd", "adam")

#: Learning-rate schedules: constant, or divided by ``lr_factor`` at epochs.
LR_SCHEDULES = ("constant", "step")

#: Augmentations: none, or random crop (4-pixel zero padding) + flip (images).
AUGMENTATIONS = ("none", "crop_flip")

#: Config fields that say where data lives, not what is computed; they are
#: left out of the fingerprint so the same run on another machine matches.
_LOCATION_FIELDS = ("data_dir", "cache_dir")


@dataclasses.dataclass
class SplitSizes:
    """How many pool records go to each role of a membership experiment.

    ``members`` train the target; ``non_members`` are held out and attacked
    next to the members (same size, so 0.5 is chance); ``reference`` is the
    MMD validation set; ``test`` measures utility; ``shadow`` is the pool the
    shadow models (shadow-model attack, LiRA) draw their training sets from.

    Example:
      >>> SplitSizes(members=1000, non_members=1000, reference=1000).total  # + test 1000
      4000
    """

    members: int = 1000
    non_members: int = 1000
    reference: int = 1000
    test: int = 1000
    shadow: int = 0

    @property
    def total(self) -> int:
        return self.members + self.non_members + self.reference + self.test + self.shadow


@dataclasses.dataclass
class TrainingRecipe:
    """Optimizer, schedule and augmentation shared by every model of a run.

    ``lr_boundaries`` are epochs at which the learning rate is multiplied by
    ``lr_factor`` (``lr_schedule="step"``). ``weight_decay`` is the Keras 3
    optimizer's decoupled decay (PyTorch's SGD couples it to the gradient;
    at 1e-5 the difference is immaterial).

    Example:
      >>> TrainingRecipe(optimizer="sgd", learning_rate=0.01, momentum=0.9,
      ...                lr_schedule="step", lr_boundaries=[80, 120]).epochs
      30
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    epochs: int = 30
    batch_size: int = 64
    lr_schedule: str = "constant"
    lr_boundaries: List[int] = dataclasses.field(default_factory=list)
    lr_factor: float = 0.1
    augmentation: str = "none"


@dataclasses.dataclass
class DPSGDSettings:
    """DP-SGD baseline: target ε (noise is calibrated to it), δ, clipping.

    DP-SGD trains with plain SGD (``learning_rate``, ``momentum``) in a
    child process; ``epochs``/``batch_size`` of ``None`` reuse the training
    recipe's values. ``delta`` of ``None`` lets the baseline pick the
    largest power of ten below 1/members. ``num_microbatches`` (a divisor
    of the batch size) clips per microbatch instead of per example: still
    record-level DP, much faster, noisier per example.

    ``implementation`` picks the trainer: ``"tf_privacy"`` (default;
    TF-Privacy's optimizer on tf-keras, shuffled fixed-size batches, in a
    TensorFlow child process) or ``"keras_jax"``
    (:func:`keras_mi.baselines.train_dpsgd_keras` in a ``KERAS_BACKEND=jax``
    child process: Poisson-sampled batches, the sampler the accountant
    assumes; ``num_microbatches`` must be null there).

    ``architecture`` names the DP model (one of
    :func:`keras_mi.models.available_architectures`; none has BatchNorm);
    ``None`` uses the run's ``architecture``. Under DP a smaller model often
    wins (e.g. ``linear``, softmax regression, on Location), so the DP row
    may differ from the undefended one. Steps are ``epochs * (n //
    batch_size)``. ``batch_size="full"`` is the whole training set of each
    DP model (the members for the target, a bank model's half for a bank
    model; sampling rate q = 1), and then ``epochs`` is the number of steps.

    ``tf_privacy_optimizer`` picks TF-Privacy's path (``tf_privacy`` only):
    ``"microbatched"`` (``DPKerasSGDOptimizer``, the default),
    ``"vectorized"`` (``VectorizedDPKerasSGDOptimizer``) or
    ``"fast_clipping"`` (``DPSequential`` with the layer registry: one
    backward pass for Dense-only models). Same update, different speed.

    ``accountant`` calibrates the noise to ε: ``"rdp"`` (Rényi DP,
    TF-Privacy's default and ``compute_dp_sgd_privacy``'s) or ``"pld"``
    (privacy loss distributions, ``dp_accounting.pld``: a tighter bound on
    the same mechanism, so less noise at the same ε). Both assume Poisson
    sampling (see ``implementation``).

    Example:
      >>> DPSGDSettings(epsilon=4.0).l2_norm_clip
      1.0
    """

    epsilon: float = 4.0
    delta: Optional[float] = None
    l2_norm_clip: float = 1.0
    learning_rate: float = 0.1
    momentum: float = 0.0
    num_microbatches: Optional[int] = None  # None: per-example clipping
    epochs: Optional[int] = None
    batch_size: Optional[Union[int, str]] = None  # None: training.batch_size; "full"
    implementation: str = "tf_privacy"
    architecture: Optional[str] = None  # None: the run's architecture
    tf_privacy_optimizer: str = "microbatched"
    accountant: str = "rdp"

    def batch_for(self, num_records: int, recipe_batch_size: int) -> int:
        """The DP-SGD batch size on a training set of ``num_records`` records.

        Args:
          num_records: the DP model's training set size.
          recipe_batch_size: ``training.batch_size``, used when ``batch_size``
            is null.

        Returns:
          ``num_records`` for ``"full"``, else ``batch_size`` or the recipe's.

        Example:
          >>> DPSGDSettings(batch_size="full").batch_for(300, 64)
          300
        """
        if self.batch_size == FULL_BATCH:
            return int(num_records)
        return int(self.batch_size or recipe_batch_size)


#: ``dpsgd.batch_size`` value for full-batch DP-SGD (every record each step).
FULL_BATCH = "full"

#: DP-SGD trainers of the ``dpsgd`` defense (``dpsgd.implementation``).
DPSGD_IMPLEMENTATIONS = ("tf_privacy", "keras_jax")


def identity_dict(config: "ExperimentConfig") -> Dict[str, Any]:
    """``config.to_dict()`` without fields that do not change the numbers'
    identity: data locations, and ``dpsgd.implementation``,
    ``dpsgd.architecture``, ``dpsgd.tf_privacy_optimizer`` and
    ``dpsgd.accountant`` at their defaults (so folders and banks made
    before the fields existed keep their hashes).

    Example:
      >>> "implementation" in identity_dict(ExperimentConfig())["dpsgd"]
      False
    """
    data = config.to_dict()
    for key in _LOCATION_FIELDS:
        data.pop(key, None)
    # Per-defense values count for the defenses trained (and hashes from
    # before the field existed stay).
    data["per_defense"] = {k: v for k, v in data["per_defense"].items()
                           if k in config.defenses and v}
    if not data["per_defense"]:
        del data["per_defense"]
    # A defense's settings change no number unless that defense is trained
    # (and folders made before a section existed keep their hashes).
    used = set()
    for name in config.defenses:
        try:
            used.add(resolve_defense(name)[0].config_attr)
        except ValueError:
            pass
    for attr in config_sections():
        if attr not in used:
            data.pop(attr, None)
    # The MMD kernel and statistic at the paper's choices: hashes from before
    # the fields existed.
    for key, default in (("mmd_kernel", "gaussian"), ("mmd_statistic", "softmax")):
        if data.get(key) == default:
            del data[key]
    if data.get("dpsgd", {}).get("implementation") == "tf_privacy":
        del data["dpsgd"]["implementation"]
    if "architecture" in data.get("dpsgd", {}) and data["dpsgd"]["architecture"] is None:
        del data["dpsgd"]["architecture"]  # the run's architecture, as before the field
    if data.get("dpsgd", {}).get("tf_privacy_optimizer") == "microbatched":
        del data["dpsgd"]["tf_privacy_optimizer"]  # the path used before the field
    if data.get("dpsgd", {}).get("accountant") == "rdp":
        del data["dpsgd"]["accountant"]  # the accountant used before the field
    return data


#: Query views of the bank protocol: the plain input, or flips and shifts (images).
BANK_QUERIES = ("none", "flip_shift")


@dataclasses.dataclass
class BankSettings:
    """The bank protocol: ``size`` models per defense, each the target in turn.

    Each defense gets a bank of ``size`` models trained *with that defense*
    (adaptive) on random halves of members + non-members; each model is
    attacked with the other ``size - 1`` (LiRA, RMIA with the test split as
    population, the loss threshold) and the pairs are pooled
    (:mod:`keras_mi.attacks.bank`). ``size = 0`` keeps only the
    single-target report. ``non_adaptive`` also attacks each defended bank
    with the ``none`` bank's models as shadows (when ``none`` is compared).
    ``rmia_offline_a`` of ``None`` tunes ``a`` on the paired model.

    Example:
      >>> BankSettings(size=16).lira_center
      'median'
    """

    size: int = 0
    queries: str = "none"
    query_shift: int = 2
    lira_center: str = "median"
    rmia_gamma: float = 1.0
    rmia_offline_a: Optional[float] = None
    non_adaptive: bool = True


@dataclasses.dataclass
class ExperimentConfig:
    """Everything that decides the numbers of one ``keras-mi evaluate`` report.

    Example:
      >>> cfg = ExperimentConfig(dataset="location", defenses=["none", "mixup"])
      >>> cfg = cfg.with_overrides({"training.epochs": "5", "seed": "1"})
      >>> cfg.training.epochs, cfg.seed
      (5, 1)
    """

    dataset: str = "location"
    split: SplitSizes = dataclasses.field(default_factory=SplitSizes)
    architecture: Optional[str] = None  # None: the dataset's default
    training: TrainingRecipe = dataclasses.field(default_factory=TrainingRecipe)
    defenses: List[str] = dataclasses.field(
        default_factory=lambda: ["none", "mixup", "mmd+mixup", "dpsgd"])
    attacks: Optional[List[str]] = None  # None: every attack keras_mi.attacks.run knows
    seed: int = 0
    mmd_weight: float = 3.0
    # A bandwidth > 0, or a list of them (their kernels are summed).
    mmd_sigma: Union[float, List[float]] = 1.0
    mmd_schedule: str = "summed"
    mmd_per_class: bool = True  # MMD² within each class (the paper's sorted passes)
    mmd_kernel: str = "gaussian"  # keras_mi.mmd_options.KERNELS
    mmd_statistic: str = "softmax"  # keras_mi.mmd_options.STATISTICS
    mixup_alpha: float = 1.0
    dpsgd: DPSGDSettings = dataclasses.field(default_factory=DPSGDSettings)
    # Settings of the registry's defenses (keras_mi.defenses), one section each.
    label_smoothing: LabelSmoothingSettings = dataclasses.field(
        default_factory=LabelSmoothingSettings)
    confidence_penalty: ConfidencePenaltySettings = dataclasses.field(
        default_factory=ConfidencePenaltySettings)
    early_stopping: EarlyStoppingSettings = dataclasses.field(
        default_factory=EarlyStoppingSettings)
    relaxloss: RelaxLossSettings = dataclasses.field(default_factory=RelaxLossSettings)
    advreg: AdvRegSettings = dataclasses.field(default_factory=AdvRegSettings)
    hamp: HAMPSettings = dataclasses.field(default_factory=HAMPSettings)
    num_shadow_models: int = 4
    num_lira_shadows: int = 8
    bank: BankSettings = dataclasses.field(default_factory=BankSettings)
    data_dir: Optional[str] = None
    cache_dir: Optional[str] = None
    # Field values for one defense only, keyed by its name as listed in
    # ``defenses`` ("dpsgd:8" is not "dpsgd"), in ``--set``'s dotted keys:
    # {"mmd+early_stopping": {"mmd_weight": 2.0}}. Each defense keeps its own
    # held-out choice while the data, split, seed, attacks and bank stay shared.
    per_defense: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)

    # ---- (de)serialisation -------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready nested dict (the inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ExperimentConfig":
        """Builds from a nested dict; unknown keys raise with the valid ones."""
        return _build(cls, data, "config")

    @classmethod
    def load(cls, path) -> "ExperimentConfig":
        """Reads a ``.json``, ``.yaml`` or ``.yml`` file.

        Example:
          >>> ExperimentConfig.load("my_run.yaml")  # doctest: +SKIP
        """
        path = pathlib.Path(path)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise FileNotFoundError(f"Config file {path} {what}.")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"Config file {path} cannot be read as UTF-8 text ({err}).") from err
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as err:
                # The parser's own message says where (line, column) and what.
                raise ValueError(f"Config file {path} is not valid YAML: "
                                 f"{' '.join(str(err).split())}") from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"Config file {path} is not valid JSON: {err.msg} at line "
                                 f"{err.lineno}, column {err.colno}.") from None
        if not isinstance(data, dict):
            raise ValueError(f"Config file {path} must hold a mapping, got {type(data).__name__}.")
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"Config file {path}: {err}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON without the data-location fields."""
        data = identity_dict(self)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def with_overrides(self, overrides: Dict[str, Any]) -> "ExperimentConfig":
        """A copy with dotted keys replaced (``{"training.epochs": 5}``).

        String values (from the command line) are parsed as YAML scalars or
        lists, so ``"5"`` -> 5, ``"[80, 120]"`` -> [80, 120], ``"none"`` -> "none",
        ``"null"`` -> None. ``per_defense.<defense>.<key>`` sets one defense's
        own value (see :meth:`for_defense`).
        """
        data = self.to_dict()
        for key, value in overrides.items():
            node = data
            parts = key.split(".")
            if parts[0] == "per_defense" and len(parts) >= 3:
                # Defense names hold no dots; the rest is the config key.
                value = _parse_scalar(value) if isinstance(value, str) else value
                data["per_defense"].setdefault(parts[1], {})[".".join(parts[2:])] = value
                continue
            unknown = (f"Unknown config key '{key}'; valid keys: "
                       f"{', '.join(_keys(self.to_dict()))}.")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ValueError(unknown)
                node = node[part]
            if parts[-1] not in node:
                raise ValueError(unknown)
            node[parts[-1]] = _parse_scalar(value) if isinstance(value, str) else value
        _warn_of_shadowed_keys(overrides, {name: values for name, values
                                           in (data.get("per_defense") or {}).items()
                                           if name in (data.get("defenses") or [])})
        return type(self).from_dict(data)

    def for_defense(self, defense: str) -> "ExperimentConfig":
        """The config ``defense`` trains with: ``per_defense[defense]`` applied.

        The copy has an empty ``per_defense``, so applying it twice changes
        nothing. Every step that trains, checks or labels one defense's
        models reads this config, not the shared one.

        Example:
          >>> cfg = ExperimentConfig(per_defense={"mmd": {"mmd_weight": 2}})
          >>> cfg.for_defense("mmd").mmd_weight, cfg.for_defense("mmd+mixup").mmd_weight
          (2.0, 3.0)
        """
        data = self.to_dict()
        overrides = data.pop("per_defense").get(defense, {})
        return type(self).from_dict(data).with_overrides(overrides)

    # ---- derived values -----------------------------------------------------

    def validate(self) -> None:
        """Checks names and numbers that need no data; raises ValueError."""
        # Names and each defense's own settings: the registry's entries say.
        errors = config_errors(self, self.defenses)
        if not self.defenses:
            errors.append("defenses is empty; name at least one of "
                          + ", ".join(defense_names()) + ".")
        if len(set(self.defenses)) != len(self.defenses):
            errors.append(f"defenses lists a name twice: {self.defenses}.")
        t = self.training
        if t.optimizer not in OPTIMIZERS:
            errors.append(f"training.optimizer '{t.optimizer}' is not one of "
                          f"{', '.join(OPTIMIZERS)}.")
        if t.lr_schedule not in LR_SCHEDULES:
            errors.append(f"training.lr_schedule '{t.lr_schedule}' is not one of "
                          f"{', '.join(LR_SCHEDULES)}.")
        if t.augmentation not in AUGMENTATIONS:
            errors.append(f"training.augmentation '{t.augmentation}' is not one of "
                          f"{', '.join(AUGMENTATIONS)}.")
        if t.epochs < 1 or t.batch_size < 1 or t.learning_rate <= 0:
            errors.append("training.epochs, batch_size and learning_rate must be positive.")
        errors.extend(_range_errors(self))
        for field, choices in (("mmd_schedule", mmd_options.SCHEDULES),
                               ("mmd_kernel", mmd_options.KERNELS),
                               ("mmd_statistic", mmd_options.STATISTICS)):
            if getattr(self, field) not in choices:
                errors.append(f"{field} '{getattr(self, field)}' is not one of "
                              f"{', '.join(choices)}.")
        for role in ("members", "non_members"):
            if getattr(self.split, role) < 1:
                errors.append(f"split.{role} must be at least 1.")
        for role in ("reference", "test", "shadow"):
            if getattr(self.split, role) < 0:
                errors.append(f"split.{role} must not be negative.")
        needy = [d for d in self.defenses if _entry_or_none(d) is not None
                 and _entry_or_none(d).needs_reference]
        if needy and self.split.reference < 1:
            errors.append(f"the defense(s) {needy} need a reference set: set "
                          "split.reference > 0.")
        if self.attacks is not None and "lira" in self.attacks and self.num_lira_shadows < 4:
            errors.append("the lira attack needs num_lira_shadows >= 4 (16+ recommended).")
        if self.mixup_alpha <= 0 or self.mmd_weight < 0:
            errors.append("mixup_alpha must be positive, mmd_weight non-negative.")
        if not _is_bandwidths(self.mmd_sigma):
            errors.append("mmd_sigma must be a finite number > 0 or a non-empty list of them; got "
                          f"{self.mmd_sigma!r}.")
        errors.extend(_bank_errors(self))
        errors.extend(_per_defense_errors(self, errors))
        if errors:
            raise ValueError("Invalid experiment config:\n  - " + "\n  - ".join(errors))


def _range_errors(config: "ExperimentConfig") -> List[str]:
    """Bounds of the numeric fields and the rules that tie fields together.

    Types (and finiteness) are already checked by :func:`_coerce`; these are
    the checks that need no data, so a bad value is refused before anything
    is written.
    """
    errors = []
    t, s, dp = config.training, config.split, config.dpsgd

    def need(ok: bool, message: str) -> None:
        if not ok:
            errors.append(message)

    need(0.0 <= t.momentum < 1.0, f"training.momentum must lie in [0, 1); got {t.momentum}.")
    need(0.0 <= t.weight_decay < 1.0,
         f"training.weight_decay must lie in [0, 1); got {t.weight_decay}.")
    # A boundary at or after the last epoch would never apply, without a word.
    late = [b for b in t.lr_boundaries if b >= t.epochs]
    need(not late or t.lr_schedule != "step",
         f"training.lr_boundaries {late} lie at or after the last epoch (training.epochs = "
         f"{t.epochs}) and would never apply; set boundaries below {t.epochs}.")
    need(0.0 < t.lr_factor <= 1.0,
         f"training.lr_factor (the learning rate is multiplied by it at each boundary) must "
         f"lie in (0, 1]; got {t.lr_factor}.")
    bounds = list(t.lr_boundaries)
    need(all(b >= 1 for b in bounds) and len(set(bounds)) == len(bounds),
         f"training.lr_boundaries must be distinct epochs >= 1; got {bounds}.")
    if t.lr_schedule == "step":
        need(bool(bounds), "training.lr_schedule 'step' needs training.lr_boundaries, e.g. "
                           "[80, 120] (epochs at which the rate is multiplied by lr_factor).")
    elif t.lr_schedule == "constant":
        # Boundaries under a constant schedule would be ignored without a word.
        need(not bounds, f"training.lr_boundaries {bounds} only apply with "
                         "training.lr_schedule 'step'; set it, or set lr_boundaries to [].")
    need(s.reference >= 1, "split.reference must be at least 1: every split holds a "
                           "reference set covering the member classes (the MMD validation set).")
    need(0 <= config.seed < 2**32, f"seed must lie in [0, 2**32); got {config.seed}.")
    need(config.num_shadow_models >= 0,
         f"num_shadow_models must not be negative; got {config.num_shadow_models}.")
    need(config.num_lira_shadows >= 0,
         f"num_lira_shadows must not be negative; got {config.num_lira_shadows}.")
    if config.attacks is not None:
        need(len(set(config.attacks)) == len(config.attacks),
             f"attacks lists a name twice: {config.attacks}.")
    need(dp.epsilon > 0, f"dpsgd.epsilon must be positive; got {dp.epsilon}.")
    need(dp.delta is None or 0.0 < dp.delta < 1.0 / max(s.members, 1),
         f"dpsgd.delta must lie in (0, 1/members) = (0, {1.0 / max(s.members, 1):.3g}) or be "
         f"null (the largest power of ten below 1/members); got {dp.delta}.")
    need(dp.l2_norm_clip > 0, f"dpsgd.l2_norm_clip must be positive; got {dp.l2_norm_clip}.")
    need(dp.learning_rate > 0, f"dpsgd.learning_rate must be positive; got {dp.learning_rate}.")
    need(0.0 <= dp.momentum < 1.0, f"dpsgd.momentum must lie in [0, 1); got {dp.momentum}.")
    need(dp.epochs is None or dp.epochs >= 1,
         f"dpsgd.epochs must be at least 1 (or null for training.epochs); got {dp.epochs}.")
    need(dp.batch_size is None or dp.batch_size == FULL_BATCH
         or (isinstance(dp.batch_size, int) and dp.batch_size >= 1),
         f"dpsgd.batch_size must be at least 1, '{FULL_BATCH}' (the whole training set) or "
         f"null (training.batch_size); got {dp.batch_size!r}.")
    # A full batch's size is the training set's, checked with the data (check_data).
    dp_batch = None if dp.batch_size == FULL_BATCH else dp.batch_size or t.batch_size
    if dp.num_microbatches is not None and dp_batch is not None:
        need(dp.num_microbatches >= 1 and dp_batch >= 1 and dp_batch % dp.num_microbatches == 0,
             f"dpsgd.num_microbatches ({dp.num_microbatches}) must be a positive divisor of the "
             f"DP-SGD batch size ({dp_batch}), or null for per-example clipping.")
    need(dp.implementation in DPSGD_IMPLEMENTATIONS,
         f"dpsgd.implementation '{dp.implementation}' is not one of "
         f"{', '.join(DPSGD_IMPLEMENTATIONS)}.")
    if dp.architecture is not None:
        from keras_mi.models.architectures import available_architectures
        need(dp.architecture in available_architectures(),
             f"dpsgd.architecture '{dp.architecture}' is not one of "
             f"{', '.join(available_architectures())} (or null for the run's architecture).")
    from keras_mi.baselines.dpsgd_worker import TF_PRIVACY_OPTIMIZERS
    need(dp.tf_privacy_optimizer in TF_PRIVACY_OPTIMIZERS,
         f"dpsgd.tf_privacy_optimizer '{dp.tf_privacy_optimizer}' is not one of "
         f"{', '.join(TF_PRIVACY_OPTIMIZERS)}.")
    need(dp.implementation != "keras_jax" or dp.tf_privacy_optimizer == "microbatched",
         "dpsgd.tf_privacy_optimizer is a TF-Privacy option (dpsgd.implementation "
         "tf_privacy); the keras_jax trainer has its own per-example path: leave it at "
         "microbatched.")
    from keras_mi.baselines.accounting import ACCOUNTANTS
    need(dp.accountant in ACCOUNTANTS,
         f"dpsgd.accountant '{dp.accountant}' is not one of {', '.join(ACCOUNTANTS)}.")
    need(dp.implementation != "keras_jax" or dp.num_microbatches is None,
         "dpsgd.num_microbatches is a TF-Privacy option; the keras_jax trainer clips per "
         "example: set it to null.")
    return errors


def _warn_of_shadowed_keys(overrides: Dict[str, Any], per_defense: Dict[str, Any]) -> None:
    """Warns when a key set for every defense is one a listed defense sets for itself.

    ``--epochs 5`` on the ``location`` preset shortens every defense but
    ``mmd+early_stopping``, whose own ``training.epochs`` wins.
    """
    import warnings  # pylint: disable=import-outside-toplevel

    for key in overrides:
        own = {name: values[key] for name, values in per_defense.items()
               if isinstance(values, dict) and key in values}
        if own:
            names = ", ".join(f"{name} ({value!r})" for name, value in own.items())
            first = next(iter(own))
            warnings.warn(f"{key} is set for every defense, but per_defense keeps its own value "
                          f"for {names}; set per_defense.{first}.{key} to change that too.",
                          UserWarning, stacklevel=3)


#: Top-level fields every defense of a report shares: ``per_defense`` may
#: not set them (the data, its split, the seed, the attacks and the bank
#: protocol are what makes the defenses' rows comparable).
_SHARED_FIELDS = ("dataset", "split", "architecture", "defenses", "attacks", "seed",
                  "num_shadow_models", "num_lira_shadows", "bank", "data_dir", "cache_dir",
                  "per_defense")


def _per_defense_errors(config: "ExperimentConfig", shared: Sequence[str]) -> List[str]:
    """Each ``per_defense`` entry: a known defense, no shared field, valid values.

    A defense's config repeats the shared config's errors (``shared``); only
    the ones its own values cause are listed, under its name. An entry of a
    defense the run does not train is checked for its keys and their types,
    not for how its values combine with the shared ones (``--defenses dpsgd
    --set dpsgd.num_microbatches=10`` is not refused for ``dpsgd:1``'s own
    batch size); listing that defense checks them.
    """
    errors = []
    for name, overrides in config.per_defense.items():
        where = f"per_defense.{name}"
        try:
            resolve_defense(name)
        except ValueError as err:
            errors.append(f"{where}: {err}")
            continue
        fixed = sorted(k for k in overrides if k.split(".")[0] in _SHARED_FIELDS)
        if fixed:
            errors.append(f"{where} sets {fixed}, which every defense of a report shares "
                          "(data, split, architecture, seed, attacks, bank); set them at the "
                          "top level.")
            continue
        try:
            own = config.for_defense(name)  # unknown keys, wrong types
            if name in config.defenses:
                own.validate()
        except ValueError as err:
            lines = str(err).splitlines()
            if lines[0].startswith("Invalid experiment config"):
                lines = [line.strip()[2:] for line in lines[1:]]
            errors.extend(f"{where}: {line}" for line in lines if line not in shared)
    return errors


def _bank_errors(config: "ExperimentConfig") -> List[str]:
    b, errors = config.bank, []
    if b.size != 0 and (b.size % 2 or not 4 <= b.size <= 256):
        errors.append("bank.size must be 0 (no bank) or an even number from 4 to 256; "
                      f"got {b.size}.")
    if b.queries not in BANK_QUERIES:
        errors.append(f"bank.queries '{b.queries}' is not one of {', '.join(BANK_QUERIES)}.")
    if b.query_shift < 1:
        errors.append(f"bank.query_shift must be at least 1 pixel; got {b.query_shift}.")
    if b.lira_center not in ("mean", "median"):
        errors.append(f"bank.lira_center '{b.lira_center}' is not one of mean, median.")
    if not b.rmia_gamma > 0:
        errors.append(f"bank.rmia_gamma must be positive; got {b.rmia_gamma}.")
    if b.rmia_offline_a is not None and not 0.0 <= b.rmia_offline_a <= 1.0:
        errors.append(f"bank.rmia_offline_a must lie in [0, 1] (or null to tune it); got "
                      f"{b.rmia_offline_a}.")
    if b.size:
        if config.split.test < 1:
            errors.append("the bank protocol uses the test split as RMIA's population: set "
                          "split.test > 0.")
        if b.queries != "none" and any(_entry_or_none(d) is not None
                                       and _entry_or_none(d).trains_in_subprocess
                                       for d in config.defenses):
            errors.append("bank.queries 'flip_shift' is not supported with dpsgd (its models "
                          "live in another process); use bank.queries none.")
    return errors


def parse_defense(name: str):
    """Splits a defense name into ``(name, argument_or_None)``.

    Kept for one release: :func:`keras_mi.defenses.resolve_defense` (which
    this wraps) returns the registry entry itself.

    Example:
      >>> parse_defense("dpsgd:8")
      ('dpsgd', 8.0)
      >>> parse_defense("mmd+mixup")
      ('mmd+mixup', None)
    """
    entry, argument = resolve_defense(name)
    return entry.name, argument


def _entry_or_none(name: str):
    try:
        return resolve_defense(name)[0]
    except ValueError:
        return None


def _parse_scalar(text: str):
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _keys(data: Dict[str, Any], prefix: str = "") -> List[str]:
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.extend(_keys(value, f"{prefix}{key}."))
        else:
            out.append(prefix + key)
    return out


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping, got {data!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"Unknown key(s) {unknown} in {where}; valid keys: {', '.join(fields)}.")
    kwargs = {}
    nested = _nested_sections() if cls is ExperimentConfig else {}
    for name, value in data.items():
        if name in nested:
            kwargs[name] = _build(nested[name], value, f"{where}.{name}")
        else:
            kwargs[name] = copy.deepcopy(value)
    obj = cls(**kwargs)
    _coerce(obj, where)
    return obj


def _nested_sections() -> Dict[str, type]:
    """ExperimentConfig attribute -> dataclass, for every section field."""
    out = {}
    for f in dataclasses.fields(ExperimentConfig):
        if f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
            if dataclasses.is_dataclass(value):
                out[f.name] = type(value)
    return out


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_bandwidths(value) -> bool:
    """True for a finite number > 0 or a non-empty list of them."""
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        for v in values)


def _coerce(obj, where: str) -> None:
    """Checks scalar field types (ints stay ints, floats accept ints)."""
    hints = {"int": int, "float": float, "str": str, "bool": bool}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        ftype = str(field.type)
        if value is None:
            if not ftype.startswith("Optional"):
                raise ValueError(f"{where}.{field.name} must not be null.")
            continue
        base = ftype.replace("Optional[", "").rstrip("]")
        if ftype == "Optional[Union[int, str]]":
            # A count (integral floats become ints) or a keyword; validate() names it.
            if isinstance(value, float) and value.is_integer():
                setattr(obj, field.name, int(value))
            elif not isinstance(value, (int, str)) or isinstance(value, bool):
                raise ValueError(f"{where}.{field.name} must be an integer or a string, "
                                 f"got {value!r}.")
            continue
        if ftype == "Dict[str, Dict[str, Any]]":
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, dict)
                    and all(isinstance(key, str) for key in v) for k, v in value.items()):
                raise ValueError(f"{where}.{field.name} must map defense names to mappings of "
                                 f"config keys to values, e.g. {{'mmd': {{'mmd_weight': 2}}}}; "
                                 f"got {value!r}.")
            continue
        if ftype == "Union[float, List[float]]":
            # A number or a list of numbers, kept as floats (validate() bounds them).
            if isinstance(value, list):
                setattr(obj, field.name, [float(v) if _is_number(v) else v for v in value])
            elif _is_number(value):
                setattr(obj, field.name, float(value))
            continue
        if base in hints:
            want = hints[base]
            if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                if not math.isfinite(value):
                    raise ValueError(
                        f"{where}.{field.name} must be a finite number, got {value!r}.")
                setattr(obj, field.name, float(value))
            elif want is int and isinstance(value, float) and value.is_integer():
                setattr(obj, field.name, int(value))
            elif want is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"{where}.{field.name} must be true or false, got {value!r}.")
            elif not isinstance(value, want) or isinstance(value, bool):
                raise ValueError(f"{where}.{field.name} must be {base}, got {value!r}.")
        elif base.startswith("List"):
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ValueError(f"{where}.{field.name} must be a list, got {value!r}.")
            items = list(value)
            inner = base[len("List["):].rstrip("]")
            if inner in hints:
                items = [_coerce_item(v, hints[inner], f"{where}.{field.name}[{i}]")
                         for i, v in enumerate(items)]
            setattr(obj, field.name, items)


def _coerce_item(value, want, where: str):
    """One list element: ints stay ints (integral floats accepted), strs stay strs."""
    if want is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, want) or isinstance(value, bool):
        raise ValueError(f"{where} must be {want.__name__}, got {value!r}.")
    return value
