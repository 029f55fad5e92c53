"""Atomic file writes: a temp file in the target folder, then ``os.replace``.

An interruption (Ctrl-C, a killed job, a full disk) leaves either the old
file or the new one, never a truncated file that a resumed run would trust.
The one implementation every module uses.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Callable

__all__ = ["atomic_save_npz", "atomic_write", "atomic_write_text"]


def atomic_write(path, write: Callable[[str], None], suffix: str = "") -> pathlib.Path:
    """Calls ``write(tmp_path)``, flushes it to disk, then renames it onto ``path``.

    ``suffix`` keeps an extension that a writer insists on (``.keras``).

    Example:
      >>> atomic_write("x.txt", lambda p: pathlib.Path(p).write_text("hi"))  # doctest: +SKIP
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_text(path, text: str) -> pathlib.Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically.

    Example:
      >>> atomic_write_text("/tmp/split.json", "{}")  # doctest: +SKIP
    """
    return atomic_write(path, lambda p: pathlib.Path(p).write_text(text, encoding="utf-8"))


def atomic_save_npz(path, **arrays) -> pathlib.Path:
    """``np.savez`` to ``path`` atomically (plain arrays; no pickle).

    Example:
      >>> atomic_save_npz("/tmp/a.npz", x=np.zeros(3))  # doctest: +SKIP
    """
    import numpy as np

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)
