"""Hyper-parameters of RelaxLoss, adversarial regularization and HAMP.

Typed, bounded dataclasses, each held by the ``ExperimentConfig`` attribute
of its defense's name (``config.relaxloss.alpha``) and checking its own
bounds with ``errors(prefix)``. A field left ``None`` takes the authors'
value for the kind of data (:func:`data_kind`), so a run "at the authors'
default" needs no numbers. No Keras import, and no registration here: the
entries live in ``relaxloss.py``, ``advreg.py`` and ``hamp.py``.

Example:
  >>> RelaxLossSettings().resolved("location")
  (0.8, 0.3, 'tabular')
  >>> HAMPSettings().resolved("cifar10")
  (0.95, 0.001, 'uniform')
  >>> AdvRegSettings(weight=-1).errors()
  ['advreg.weight must lie in [0, 100]; got -1.']
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Tuple

#: Datasets whose records are images (the authors' CIFAR settings apply).
IMAGE_DATASETS = ("cifar10", "cifar100", "fashion_mnist", "mnist")


def data_kind(dataset: str) -> str:
    """``"image"`` for :data:`IMAGE_DATASETS`, else ``"tabular"``.

    Example:
      >>> data_kind("location"), data_kind("cifar10")
      ('tabular', 'image')
    """
    return "image" if str(dataset).lower() in IMAGE_DATASETS else "tabular"


#: The authors' (α, upper, variant) by kind of data, from DingfanChen/RelaxLoss:
#: ``source/nonimage/defense/configs/Purchase.yml`` (``alpha: 0.8``,
#: ``upper: 0.3``; their code has no Location config, Purchase is the
#: closest tabular one) and ``source/cifar/defense/configs/CIFAR10_resnet20.yml``
#: (``alpha: 1``, ``upper: 1``) with the flattening loss of
#: ``source/cifar/defense/relaxloss.py``.
RELAXLOSS_DEFAULTS = {"tabular": (0.8, 0.3, "tabular"), "image": (1.0, 1.0, "image")}


@dataclasses.dataclass
class RelaxLossSettings:
    """RelaxLoss (Chen, Yu & Fritz, ICLR 2022) hyper-parameters.

    ``None`` takes the authors' value for the kind of data
    (:data:`RELAXLOSS_DEFAULTS`): image datasets get the CIFAR-10 ResNet-20
    config (α = 1, upper = 1, the image loss), tabular ones the Purchase
    config (α = 0.8, upper = 0.3, the non-image loss).

    Attributes:
      alpha: the target mean training loss, > 0 (at most 20).
      upper: the cap on the flattened targets' true-class confidence, in
        (0, 1]; it must exceed 1/K (checked against the dataset).
      variant: ``"tabular"`` or ``"image"`` flattening loss.

    References:
      Chen, Yu & Fritz, "RelaxLoss: Defending Membership Inference Attacks
      without Losing Utility", ICLR 2022.
    """

    alpha: Optional[float] = None
    upper: Optional[float] = None
    variant: Optional[str] = None

    def resolved(self, dataset: str) -> Tuple[float, float, str]:
        """``(alpha, upper, variant)`` with the authors' values filled in."""
        kind = data_kind(dataset)
        alpha, upper, variant = RELAXLOSS_DEFAULTS[kind]
        return (alpha if self.alpha is None else float(self.alpha),
                upper if self.upper is None else float(self.upper),
                variant if self.variant is None else self.variant)

    def errors(self, prefix: str = "relaxloss") -> List[str]:
        errors = []
        if self.alpha is not None and not (isinstance(self.alpha, (int, float))
                                           and math.isfinite(self.alpha)
                                           and 0.0 < self.alpha <= 20.0):
            errors.append(f"{prefix}.alpha must lie in (0, 20]; got {self.alpha}.")
        if self.upper is not None and not (isinstance(self.upper, (int, float))
                                           and 0.0 < self.upper <= 1.0):
            errors.append(f"{prefix}.upper must lie in (0, 1]; got {self.upper}.")
        if self.variant is not None and self.variant not in ("tabular", "image"):
            errors.append(f"{prefix}.variant must be 'tabular' or 'image'; got {self.variant!r}.")
        return errors


#: The authors' λ by kind of data, from the AdvReg runs of
#: DependableSystemsLab/MIA_defense_HAMP: ``location/train-all.sh``
#: (``train-advreg.py --alpha 10``) and ``cifar10/train-all.sh`` (``--alpha 6``).
ADVREG_DEFAULTS = {"tabular": 10.0, "image": 6.0}


@dataclasses.dataclass
class AdvRegSettings:
    """Adversarial regularization (Nasr, Shokri & Houmansadr, CCS 2018).

    Attributes:
      weight: λ in [0, 100], the gain's weight; None: the authors' value for
        the kind of data (:data:`ADVREG_DEFAULTS`: 10 tabular, 6 images).
      attack_weight: in (0, 100], the weight of the inference model's loss.
      warmup_epochs: 0..1000 epochs of plain CE first (authors: 1).

    References:
      Nasr, Shokri & Houmansadr, "Machine Learning with Membership Privacy
      using Adversarial Regularization", CCS 2018.
    """

    weight: Optional[float] = None
    attack_weight: float = 1.0
    warmup_epochs: int = 1

    def resolved(self, dataset: str) -> float:
        """λ with the authors' value filled in."""
        if self.weight is not None:
            return float(self.weight)
        return ADVREG_DEFAULTS[data_kind(dataset)]

    def errors(self, prefix: str = "advreg") -> List[str]:
        errors = []
        if self.weight is not None and not (isinstance(self.weight, (int, float))
                                            and math.isfinite(self.weight)
                                            and 0.0 <= self.weight <= 100.0):
            errors.append(f"{prefix}.weight must lie in [0, 100]; got {self.weight}.")
        if not (isinstance(self.attack_weight, (int, float)) and 0.0 < self.attack_weight <= 100.0):
            errors.append(f"{prefix}.attack_weight must lie in (0, 100]; got {self.attack_weight}.")
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, int) \
                or not 0 <= self.warmup_epochs <= 1000:
            errors.append(f"{prefix}.warmup_epochs must be an int in 0..1000; "
                          f"got {self.warmup_epochs!r}.")
        return errors


#: The authors' (γ, α) by kind of data (DependableSystemsLab/MIA_defense_HAMP):
#: ``location/train-all.sh`` ``--entropy_percentile 0.5 --alpha 0.001`` and
#: ``cifar10/train-all.sh`` ``--entropy_percentile 0.95 --alpha 0.001``.
HAMP_DEFAULTS = {"tabular": (0.5, 0.001), "image": (0.95, 0.001)}


@dataclasses.dataclass
class HAMPSettings:
    """HAMP (Chen & Pattabiraman, NDSS 2024) hyper-parameters.

    ``None`` takes the authors' value for the kind of data
    (:data:`HAMP_DEFAULTS`; image datasets get CIFAR-10's, tabular ones
    Location's). The random inputs of the output modification follow the
    authors' generators: 0/1 features (``"bernoulli"``, their Location code;
    keras-mi's tabular features are 0/1) or uniform values on [0, 1]
    (``"uniform"``, their CIFAR code; keras-mi scales images to [0, 1]).

    Attributes:
      gamma: γ in (0, 1), the soft labels' entropy as a fraction of log K.
      alpha: α in [0, 10], the entropy-regularizer weight.
      sampler: ``"bernoulli"`` or ``"uniform"`` random inputs.
      output_seed: seed of the random inputs (None: the model's seed).

    References:
      Chen & Pattabiraman, "Overconfidence is a Dangerous Thing: Mitigating
      Membership Inference Attacks by Enforcing Less Confident Prediction",
      NDSS 2024.
    """

    gamma: Optional[float] = None
    alpha: Optional[float] = None
    sampler: Optional[str] = None
    output_seed: Optional[int] = None

    def resolved(self, dataset: str) -> Tuple[float, float, str]:
        """``(gamma, alpha, sampler)`` with the authors' values filled in."""
        kind = data_kind(dataset)
        gamma, alpha = HAMP_DEFAULTS[kind]
        sampler = "uniform" if kind == "image" else "bernoulli"
        return (gamma if self.gamma is None else float(self.gamma),
                alpha if self.alpha is None else float(self.alpha),
                sampler if self.sampler is None else self.sampler)

    def errors(self, prefix: str = "hamp") -> List[str]:
        errors = []
        if self.gamma is not None and not (isinstance(self.gamma, (int, float))
                                           and 0.0 < self.gamma < 1.0):
            errors.append(f"{prefix}.gamma must lie in (0, 1); got {self.gamma}.")
        if self.alpha is not None and not (isinstance(self.alpha, (int, float))
                                           and math.isfinite(self.alpha)
                                           and 0.0 <= self.alpha <= 10.0):
            errors.append(f"{prefix}.alpha must lie in [0, 10]; got {self.alpha}.")
        if self.sampler is not None and self.sampler not in ("bernoulli", "uniform"):
            errors.append(f"{prefix}.sampler must be 'bernoulli' or 'uniform'; "
                          f"got {self.sampler!r}.")
        if self.output_seed is not None and not (isinstance(self.output_seed, int)
                                                 and self.output_seed >= 0):
            errors.append(f"{prefix}.output_seed must be an int >= 0 or null; "
                          f"got {self.output_seed!r}.")
        return errors
