"""Verified file resolution: data dir -> cache dir -> download.

Every dataset file keras-mi reads goes through :func:`resolve_file`, which
looks for the file in, in order,

1. the data directory (the ``data_dir`` argument, else the environment
   variable ``KERAS_MI_DATA_DIR``; only :func:`resolve_data_dir` reads it),
2. any extra read-only directories a dataset names (e.g. Debian's
   ``/usr/share/datasets/fashion-mnist``),
3. the cache directory (``~/.keras/datasets/keras_mi`` unless overridden),
4. a download with ``keras.utils.get_file`` into the cache directory.

A file is used only if its SHA-256 is one of the pinned hashes. A file
whose hash is wrong is refused with a ``ValueError`` naming the expected
and actual hashes, wherever it was found. Files with no pinned hash are
refused too unless the caller passes ``sha256=`` explicitly.
"""

import dataclasses
import hashlib
import os
import pathlib

import numpy as np

from keras_mi._atomic import atomic_save_npz, atomic_write_text  # noqa: F401  (re-exported)

DATA_DIR_ENV = "KERAS_MI_DATA_DIR"


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A dataset file: its name, where to download it, its pinned hashes.

    Attributes:
      fname: File name looked up in each directory (and saved as).
      url: Download address, or ``None`` when the file cannot be
        downloaded (it must then be placed in the data dir by hand).
      sha256: Accepted SHA-256 hex digests (several when the same content
        ships in differently packed files). Empty means "unknown": the
        file is refused unless the caller passes ``sha256=``.
      aliases: Other names the same file may have in a directory (e.g. the
        upstream name ``dataset_location.tgz``).

    Example:
      >>> f = RemoteFile("location.tgz", None, ("927203f8...",))
      >>> f.fname
      'location.tgz'
    """

    fname: str
    url: str | None
    sha256: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


def resolve_data_dir(data_dir=None):
    """Return the user's data directory, or ``None``.

    The argument wins; otherwise the environment variable
    ``KERAS_MI_DATA_DIR`` is used. This is the only place keras-mi reads
    that variable.

    Example:
      >>> resolve_data_dir("/data/mi")
      PosixPath('/data/mi')
    """
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
    return None if data_dir is None else pathlib.Path(data_dir).expanduser()


def check_data_dir(data_dir=None):
    """Return :func:`resolve_data_dir`, refusing a named folder that is not there.

    A data directory the user named (argument or ``KERAS_MI_DATA_DIR``) that
    does not exist is a typo far more often than a request to download, so
    it is refused with its name and where it came from instead of falling
    through to the cache and the network.

    Raises:
      FileNotFoundError: the folder does not exist or is a file.

    Example:
      >>> check_data_dir("/data/mi")  # doctest: +SKIP
      PosixPath('/data/mi')
    """
    path = resolve_data_dir(data_dir)
    if path is not None and not path.is_dir():
        source = ("data_dir argument / --data-dir" if data_dir is not None
                  else f"${DATA_DIR_ENV}")
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise FileNotFoundError(
            f"Data directory {path} ({source}) {what}; point it at the folder that holds "
            f"the dataset files, or unset it to use the cache and downloads.")
    return path


def resolve_cache_dir(cache_dir=None):
    """Return the cache directory (default ``~/.keras/datasets/keras_mi``).

    Example:
      >>> resolve_cache_dir("/tmp/kmi").name
      'kmi'
    """
    if cache_dir is None:
        return pathlib.Path("~/.keras/datasets/keras_mi").expanduser()
    return pathlib.Path(cache_dir).expanduser()


def sha256_of(path, chunk_size=1 << 20):
    """SHA-256 hex digest of a file, read in chunks.

    Example:
      >>> sha256_of("location.tgz")  # doctest: +SKIP
      '927203f85a868f8ee17a0ded1dc61699efe602167beabe34fbf45b4b1de94b33'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path, expected):
    """Raise ``ValueError`` unless ``path``'s SHA-256 is in ``expected``.

    Args:
      path: The file to check.
      expected: Accepted hex digests. Empty means no hash is known: the
        file is refused and the message gives its actual hash, which the
        caller may pass as ``sha256=`` after checking the file's origin.

    Example:
      >>> verify_file("location.tgz", ("927203f8...",))  # doctest: +SKIP
    """
    actual = sha256_of(path)
    expected = tuple(h.lower() for h in expected)
    if not expected:
        raise ValueError(
            f"No SHA-256 is pinned for {path}, so keras-mi will not use it. "
            f"Its SHA-256 is {actual}; if you trust where the file came from, "
            f"pass sha256='{actual}' to load_dataset."
        )
    if actual not in expected:
        raise ValueError(
            f"SHA-256 mismatch for {path}: expected "
            f"{' or '.join(expected)}, got {actual}. The file is corrupt or "
            "not the expected version; delete or replace it."
        )
    return path


def resolve_file(
    remote,
    data_dir=None,
    cache_dir=None,
    download=True,
    sha256=None,
    extra_dirs=(),
):
    """Find (or download) a verified copy of ``remote`` and return its path.

    Args:
      remote: A :class:`RemoteFile`.
      data_dir: User data directory; ``None`` falls back to
        ``KERAS_MI_DATA_DIR`` (see :func:`resolve_data_dir`).
      cache_dir: Cache directory; ``None`` means ``~/.keras/datasets/keras_mi``.
      download: Whether a missing file may be downloaded.
      sha256: Hex digest to accept instead of the pinned ones.
      extra_dirs: Further read-only directories searched after ``data_dir``.

    Returns:
      A ``pathlib.Path`` to a file whose SHA-256 was checked.

    Example:
      >>> path = resolve_file(RemoteFile("location.tgz", None,
      ...     ("927203f8...",)), data_dir="/data")  # doctest: +SKIP
    """
    expected = (sha256,) if sha256 else remote.sha256
    data_dir = resolve_data_dir(data_dir)
    cache_dir = resolve_cache_dir(cache_dir)
    searched = [d for d in (data_dir, *map(pathlib.Path, extra_dirs), cache_dir) if d]
    for directory in searched:
        for name in (remote.fname, *remote.aliases):
            candidate = directory / name
            if candidate.is_file():
                return verify_file(candidate, expected)
    where = ", ".join(str(d) for d in searched) or "(no directory)"
    if download and remote.url:
        try:
            # Without a pinned hash, download anyway so the error can report
            # the file's hash, but never hand an unverified file to the caller.
            path = _get_file(remote, cache_dir, expected[0] if expected else None)
        except ValueError:
            raise  # a corrupt download: get_file's message says so
        except Exception as err:  # keras' get_file raises a bare Exception on fetch errors
            raise FileNotFoundError(
                f"Dataset file '{remote.fname}' not found (looked in: {where}) and its download "
                f"from {remote.url} failed ({type(err).__name__}: {err}). Put the file in your "
                f"data directory (data_dir=... / --data-dir, or ${DATA_DIR_ENV}) or the cache "
                f"directory.") from err
        return verify_file(path, expected)
    hint = (
        f"download it from {remote.url} or rerun with download=True"
        if remote.url
        else "this file cannot be downloaded automatically"
    )
    raise FileNotFoundError(
        f"Dataset file '{remote.fname}' not found (looked in: {where}). Put it "
        f"in your data directory (data_dir=... or ${DATA_DIR_ENV}) or the "
        f"cache directory; {hint}."
    )


def _get_file(remote, cache_dir, file_hash):
    import keras  # Lazy: keras may import a backend.

    cache_dir.mkdir(parents=True, exist_ok=True)
    path = keras.utils.get_file(
        fname=remote.fname,
        origin=remote.url,
        file_hash=file_hash,
        hash_algorithm="sha256",
        cache_dir=str(cache_dir),
        cache_subdir="",
    )
    return pathlib.Path(path)


def cached_arrays(cache_dir, key, build, verbose=0):
    """Load arrays from ``<cache_dir>/<key>.npz`` or build and cache them.

    Args:
      cache_dir: Cache directory (already resolved).
      key: File stem; include the source file's hash in it so a new
        source never reuses stale arrays.
      build: Zero-argument function returning a dict of arrays.
      verbose: Print a line when writing the cache.

    Example:
      >>> cached_arrays(pathlib.Path("/tmp"), "demo", lambda: {"x": np.ones(2)})  # doctest: +SKIP
    """
    path = pathlib.Path(cache_dir) / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError):
            pass  # A damaged cache is rebuilt below.
    arrays = build()
    try:
        atomic_save_npz(path, **arrays)
        if verbose:
            print(f"keras-mi: cached decoded arrays in {path}")
    except OSError:
        pass  # Read-only cache: still return the arrays.
    return arrays
