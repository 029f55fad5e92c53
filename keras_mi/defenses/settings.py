"""Hyper-parameters of the simple defenses: typed, bounded dataclasses.

Each is held by one ``ExperimentConfig`` attribute of the same name as its
defense (``config.label_smoothing.epsilon``) and checks its own bounds with
``errors(prefix)``, so a bad value is refused before anything trains. No
Keras import here: ``keras_mi.experiment.config`` reads these classes.

Example:
  >>> LabelSmoothingSettings(epsilon=1.5).errors("label_smoothing")
  ['label_smoothing.epsilon must lie in (0, 1); got 1.5.']
"""

from __future__ import annotations

import dataclasses
from typing import List


@dataclasses.dataclass
class LabelSmoothingSettings:
    """Label smoothing (Szegedy et al. 2016): targets ``(1 - ε)·onehot + ε/K``.

    Defaults: ``epsilon = 0.1``, the value of the paper (Sec. 7) and of the
    membership-inference comparison in DingfanChen/RelaxLoss,
    ``source/nonimage/defense/label_smoothing.py`` (``--epsilon`` default
    0.1) and ``source/cifar/defense/label_smoothing.py``.

    Attributes:
      epsilon: the smoothing mass, in (0, 1).

    References:
      Szegedy et al., "Rethinking the Inception Architecture for Computer
      Vision", CVPR 2016.
    """

    epsilon: float = 0.1

    def errors(self, prefix: str = "label_smoothing") -> List[str]:
        if not 0.0 < self.epsilon < 1.0:
            return [f"{prefix}.epsilon must lie in (0, 1); got {self.epsilon}."]
        return []


@dataclasses.dataclass
class ConfidencePenaltySettings:
    """Confidence penalty (Pereyra et al. 2017): ``CE − β·H(softmax(logits))``.

    Defaults: ``beta = 0.1``, the entropy weight of the membership-inference
    comparison in DingfanChen/RelaxLoss,
    ``source/nonimage/defense/confidence_penalty.py`` (``--alpha`` default
    0.1, "weight for the entropy term").

    Attributes:
      beta: the weight of the entropy bonus, in (0, 10]. Above
        ``log(K)``-scale weights the loss rewards uniform outputs over fitting.

    References:
      Pereyra et al., "Regularizing Neural Networks by Penalizing Confident
      Output Distributions", ICLR workshop 2017.
    """

    beta: float = 0.1

    def errors(self, prefix: str = "confidence_penalty") -> List[str]:
        if not 0.0 < self.beta <= 10.0:
            return [f"{prefix}.beta must lie in (0, 10]; got {self.beta}."]
        return []


@dataclasses.dataclass
class EarlyStoppingSettings:
    """Early stopping on the loss of held-out data (the reference split).

    Training stops once the reference set's loss has not improved by more
    than ``min_delta`` for ``patience`` epochs, and the weights of the best
    epoch are restored. The reference split is held out from training and
    never attacked (it is not an evaluation record), so choosing the
    stopping epoch on it leaks nothing about the attacked members and
    non-members. ``training.epochs`` stays the upper bound.

    Defaults: DingfanChen/RelaxLoss, ``source/nonimage/defense/early_stopping.py``,
    snapshots fixed epochs (``--stop_eps`` 5, 10, 20, ...) rather than
    monitoring a loss; ``patience = 5`` and ``min_delta = 0`` here are our
    choice (the shortest of those stopping gaps; any improvement counts).

    Attributes:
      patience: epochs without improvement before stopping, 0..1000.
      min_delta: the smallest decrease of the held-out loss that counts as
        an improvement, in [0, 10].
    """

    patience: int = 5
    min_delta: float = 0.0

    def callback(self):
        """The ``keras.callbacks.EarlyStopping`` of these settings.

        It watches ``val_loss`` (the fit's ``validation_data`` must be the
        held-out set) and restores the best epoch's weights.

        Returns:
          A new callback (Keras is imported here, not with this module).

        Example:
          >>> EarlyStoppingSettings(patience=3).callback().patience
          3
        """
        import keras  # pylint: disable=import-outside-toplevel

        return keras.callbacks.EarlyStopping(monitor="val_loss", mode="min",
                                             patience=self.patience, min_delta=self.min_delta,
                                             restore_best_weights=True)

    def errors(self, prefix: str = "early_stopping") -> List[str]:
        errors = []
        if not 0 <= self.patience <= 1000:
            errors.append(f"{prefix}.patience must lie in 0..1000 epochs; got {self.patience}.")
        if not 0.0 <= self.min_delta <= 10.0:
            errors.append(f"{prefix}.min_delta must lie in [0, 10]; got {self.min_delta}.")
        return errors
