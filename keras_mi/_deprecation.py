"""Old public names kept for one release: each warns, then does what the new one does."""

from __future__ import annotations

import functools
import warnings
from typing import Callable, Optional


def deprecated_alias(new: Callable, old_name: str, use: Optional[str] = None) -> Callable:
    """A function named ``old_name`` that warns and calls ``new``.

    Args:
      new: the function that replaces the old name.
      old_name: the name kept for one release.
      use: what the warning tells users to call instead (default: ``new``'s
        full name).

    Returns:
      A function that emits a ``DeprecationWarning`` naming ``new``, then
      returns ``new(*args, **kwargs)``.

    Example:
      >>> import warnings
      >>> def double(v):
      ...     return 2 * v
      >>> twice = deprecated_alias(double, "twice")
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     value = twice(3)
      >>> value, caught[0].category.__name__
      (6, 'DeprecationWarning')
    """
    where = use or f"{new.__module__}.{new.__name__}"

    @functools.wraps(new)
    def alias(*args, **kwargs):
        warnings.warn(f"{old_name} is deprecated and goes in the next release; use {where}.",
                      DeprecationWarning, stacklevel=2)
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old_name
    alias.__doc__ = f"Deprecated (kept for one release): use ``{where}``."
    return alias


def warn_moved(old: str, new: str) -> None:
    """Warns that the module ``old`` is now ``new`` (called by the old module's shim)."""
    warnings.warn(f"{old} is deprecated and goes in the next release; import {new} instead.",
                  DeprecationWarning, stacklevel=3)
