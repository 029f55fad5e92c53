"""Deprecated: the paper's MMD schedule moved to `keras_mi.training.paper_schedule`.

("Schedules" in Keras are learning-rate schedules.) This module keeps the
old import path working for one release.
"""

import warnings

from keras_mi.training.paper_schedule import PaperSchedule, iterate_batches

__all__ = ["PaperSchedule", "iterate_batches"]

warnings.warn("keras_mi.training.schedules is deprecated; import from "
              "keras_mi.training.paper_schedule instead.", DeprecationWarning, stacklevel=2)
