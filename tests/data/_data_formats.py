"""Writers of small files in the real on-disk formats (privacytrustlab tgz,
CIFAR binary tarball, idx) for the data tests. The suite-wide network guard
lives in tests/conftest.py."""

import gzip
import hashlib
import io
import tarfile

import numpy as np


def sha256_file(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_tgz(path, members):
    """``members``: {name: bytes}; written in the given order."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def csv_bytes(rows, quote_first=False):
    lines = []
    for row in rows:
        cells = [str(int(v)) for v in row]
        if quote_first:
            cells[0] = f'"{cells[0]}"'
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


def write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())
    return path
