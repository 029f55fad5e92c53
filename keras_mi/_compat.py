"""The one place that imports TensorFlow Privacy (and its MI harness).

TF-Privacy 0.9.0's top-level ``__init__`` fails on TensorFlow >= 2.16; it
honours ``sys.skip_tf_privacy_import`` to skip that body, after which its
submodules import fine. The MI harness lives in a separate distribution,
``tensorflow-empirical-privacy``, under the ``tensorflow_privacy`` namespace.
Every other module asks this one, so the hook is set exactly once and a
missing install gives one clear message.
"""

from __future__ import annotations

import importlib
import sys
import types

_INSTALL_HINT = (
    "TF-Privacy is not installed. keras-mi uses it for the DP-SGD baseline and "
    "the membership-inference harness baseline. Install it (its metadata pins "
    "stale TensorFlow/numpy versions, so skip dependency resolution):\n"
    "    pip install 'keras-mi[tf]'\n"
    "    pip install --no-deps tensorflow-privacy==0.9.0 "
    "tensorflow-empirical-privacy==0.1.0 tf-keras==2.21.0\n"
    "(`make setup` in the keras-mi repository does both steps)."
)

#: Dotted path of TF-Privacy's membership-inference harness package.
MIA_PACKAGE = (
    "tensorflow_privacy.privacy.privacy_tests.membership_inference_attack"
)


def import_tf_privacy(submodule: str) -> types.ModuleType:
    """Imports ``tensorflow_privacy.<submodule>`` with the TF>=2.16 hook set.

    Args:
      submodule: path below ``tensorflow_privacy``, e.g.
        ``"privacy.analysis.compute_dp_sgd_privacy_lib"``.

    Returns:
      The imported module.

    Raises:
      ImportError: with install instructions when TF-Privacy (or the MI
        harness, for ``privacy.privacy_tests.*``) is missing.

    Example:
      >>> mia = import_tf_privacy(
      ...     "privacy.privacy_tests.membership_inference_attack."
      ...     "membership_inference_attack")  # doctest: +SKIP
    """
    sys.skip_tf_privacy_import = True
    name = f"tensorflow_privacy.{submodule}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if missing.startswith("tensorflow_privacy") or missing == "tensorflow":
            raise ImportError(f"Cannot import {name}: {err}.\n{_INSTALL_HINT}") from err
        raise


def import_mia(module: str) -> types.ModuleType:
    """Imports a module of TF-Privacy's membership-inference harness.

    Example:
      >>> ds = import_mia("data_structures")  # doctest: +SKIP
    """
    return import_tf_privacy(MIA_PACKAGE.split(".", 1)[1] + "." + module)
