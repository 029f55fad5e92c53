"""Deprecated: the training-time attack monitor is :mod:`keras_mi.attacks.monitor`.

Kept for one release so ``from keras_mi.attacks.callback import AttackMonitor``
still works (with a ``DeprecationWarning``).
"""

from keras_mi._deprecation import warn_moved
from keras_mi.attacks.monitor import AttackMonitor

warn_moved("keras_mi.attacks.callback", "keras_mi.attacks.monitor")

__all__ = ["AttackMonitor"]
