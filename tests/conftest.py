"""Shared test fixtures: the real-data directory and quiet TensorFlow logs."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """The real-data folder (``KERAS_MI_DATA_DIR``, else ``../shared/data``)."""
    env = os.environ.get("KERAS_MI_DATA_DIR")
    path = pathlib.Path(env) if env else pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (path / "location.tgz").exists():
        pytest.skip(f"real data not found in {path}; set KERAS_MI_DATA_DIR")
    return path
