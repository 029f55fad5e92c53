"""Shared test fixtures: the real-data directory and quiet TensorFlow logs."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """The real-data folder (``KERAS_MI_DATA_DIR``, else ``../shared/data``)."""
    env = os.environ.get("KERAS_MI_DATA_DIR")
    path = (
        pathlib.Path(env)
        if env
        else pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    if not (path / "location.tgz").exists():
        pytest.skip(f"real data not found in {path}; set KERAS_MI_DATA_DIR")
    return path


_LOOPBACK = ("127.", "::1", "localhost")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never touch the network: any non-loopback connection fails loudly."""
    import socket

    real_connect = socket.socket.connect

    def guarded_connect(sock, address, *args, **kwargs):
        host = address[0] if isinstance(address, tuple) else str(address)
        if (
            isinstance(host, str)
            and not host.startswith(_LOOPBACK)
            and sock.family != socket.AF_UNIX
        ):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(sock, address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
