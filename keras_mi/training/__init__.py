"""keras_mi.training: the MMD set regularizer inside `model.fit`.

Example:
  >>> from keras_mi.training import MMDModel
  >>> model = MMDModel(net, reference=(x_val, y_val), weight=3.0)  # doctest: +SKIP
  >>> model.compile("adam", loss, metrics=["accuracy"]); model.fit(x, y)  # doctest: +SKIP
"""

from keras_mi.training.callbacks import AccuracyGap
from keras_mi.training.mmd_model import MMDModel
from keras_mi.training.paper_schedule import PaperSchedule
from keras_mi.training.reference import ReferenceSet

__all__ = ["AccuracyGap", "MMDModel", "PaperSchedule", "ReferenceSet"]
