"""Verified file resolution: order, checksum refusal, downloads, atomic writes."""

import hashlib
import os

import numpy as np
import pytest

from keras_mi.data import _download
from keras_mi.data._download import RemoteFile, resolve_data_dir, resolve_file

PAYLOAD = b"keras-mi test payload\n"
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _remote(url=None, sha=(PAYLOAD_SHA,), aliases=()):
    return RemoteFile("payload.bin", url, sha, aliases)


def test_data_dir_argument_overrides_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_MI_DATA_DIR", str(tmp_path / "from_env"))
    assert resolve_data_dir() == tmp_path / "from_env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("KERAS_MI_DATA_DIR")
    assert resolve_data_dir() is None


def test_data_dir_is_searched_before_cache(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir(), cache.mkdir()
    (data / "payload.bin").write_bytes(PAYLOAD)
    (cache / "payload.bin").write_bytes(PAYLOAD)
    assert resolve_file(_remote(), data, cache, download=False) == data / "payload.bin"
    got = resolve_file(_remote(), tmp_path / "none", cache, download=False)
    assert got == cache / "payload.bin"


def test_env_var_data_dir_is_used(monkeypatch, tmp_path):
    (tmp_path / "payload.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("KERAS_MI_DATA_DIR", str(tmp_path))
    found = resolve_file(_remote(), None, tmp_path / "cache", download=False)
    assert found == tmp_path / "payload.bin"


def test_alias_name_is_found(tmp_path):
    (tmp_path / "upstream.bin").write_bytes(PAYLOAD)
    remote = _remote(aliases=("upstream.bin",))
    assert resolve_file(remote, tmp_path, tmp_path / "c", download=False).name == "upstream.bin"


@pytest.mark.parametrize("where", ["data", "cache"])
def test_wrong_hash_is_refused_wherever_found(tmp_path, where):
    folder = tmp_path / where
    folder.mkdir()
    (folder / "payload.bin").write_bytes(PAYLOAD + b"tampered")
    actual = hashlib.sha256(PAYLOAD + b"tampered").hexdigest()
    with pytest.raises(ValueError, match="SHA-256 mismatch") as info:
        resolve_file(_remote(), tmp_path / "data", tmp_path / "cache", download=False)
    assert PAYLOAD_SHA in str(info.value) and actual in str(info.value)


def test_unknown_hash_is_refused_unless_sha256_given(tmp_path):
    (tmp_path / "payload.bin").write_bytes(PAYLOAD)
    with pytest.raises(ValueError, match=f"sha256='{PAYLOAD_SHA}'"):
        resolve_file(_remote(sha=()), tmp_path, tmp_path / "c", download=False)
    found = resolve_file(_remote(sha=()), tmp_path, tmp_path / "c", False, sha256=PAYLOAD_SHA)
    assert found == tmp_path / "payload.bin"


def test_user_sha256_replaces_pinned_hash(tmp_path):
    (tmp_path / "payload.bin").write_bytes(PAYLOAD)
    with pytest.raises(ValueError, match="mismatch"):
        resolve_file(_remote(), tmp_path, tmp_path / "c", False, sha256="0" * 64)


def test_missing_file_offline_names_file_and_folders(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        resolve_file(_remote(url="https://example.invalid/p"), tmp_path / "d", tmp_path / "c",
                     False)
    message = str(info.value)
    assert "payload.bin" in message and str(tmp_path / "d") in message
    assert str(tmp_path / "c") in message and "KERAS_MI_DATA_DIR" in message


def test_download_goes_to_cache_and_is_verified(tmp_path):
    # keras.utils.get_file reads file:// URLs without any network.
    source = tmp_path / "origin.bin"
    source.write_bytes(PAYLOAD)
    cache = tmp_path / "cache"
    found = resolve_file(_remote(url=source.as_uri()), tmp_path / "none", cache, download=True)
    assert found == cache / "payload.bin"
    assert found.read_bytes() == PAYLOAD


def test_download_with_unknown_hash_is_refused(tmp_path):
    source = tmp_path / "origin.bin"
    source.write_bytes(PAYLOAD)
    with pytest.raises(ValueError, match="No SHA-256 is pinned"):
        resolve_file(_remote(url=source.as_uri(), sha=()), None, tmp_path / "cache", True)


def test_download_with_wrong_content_is_refused(tmp_path):
    source = tmp_path / "origin.bin"
    source.write_bytes(PAYLOAD + b"x")
    with pytest.raises(ValueError):
        resolve_file(_remote(url=source.as_uri()), None, tmp_path / "cache", True)


def test_atomic_save_npz_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "arrays.npz"
    _download.atomic_save_npz(path, x=np.arange(3))

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(KeyboardInterrupt):
        _download.atomic_save_npz(path, x=np.arange(5))
    with np.load(path) as data:  # The old file is intact.
        np.testing.assert_array_equal(data["x"], np.arange(3))
    assert os.listdir(tmp_path) == ["arrays.npz"]


def test_cached_arrays_builds_once(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"x": np.arange(4)}

    first = _download.cached_arrays(tmp_path, "k", build)
    second = _download.cached_arrays(tmp_path, "k", build)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["x"], second["x"])


def test_failed_download_names_the_file_the_folders_and_the_address(tmp_path):
    url = (tmp_path / "gone" / "payload.bin").as_uri()  # file:// without a file: no network
    with pytest.raises(FileNotFoundError) as info:
        resolve_file(_remote(url=url), tmp_path / "d", tmp_path / "c", download=True)
    message = str(info.value)
    assert "payload.bin" in message and url in message and "download" in message
    assert str(tmp_path / "c") in message and "KERAS_MI_DATA_DIR" in message
