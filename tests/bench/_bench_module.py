"""Loads a ``bench/*.py`` script as a module for its tests (bench/ is not a package)."""

import importlib.util
import pathlib
import sys

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"


def load_bench_module(name: str):
    """``bench/<name>.py`` imported under ``<name>_under_test``.

    ``bench/`` is on ``sys.path`` while it runs, so the script's own imports
    (``_common``) resolve.
    """
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_under_test",
                                                      BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module
