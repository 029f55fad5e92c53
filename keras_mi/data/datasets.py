"""Dataset registry: names -> loaders and metadata (:class:`DatasetInfo`).

:func:`load_dataset` returns one pool ``(x, y)`` per dataset (the training
split followed by the test split where the source has both), ready for
:class:`keras_mi.data.MembershipSplit`:

* ``x``: float32; tabular features are 0/1, images are scaled to ``[0, 1]``
  with shape ``(n, H, W, C)``.
* ``y``: int64 labels ``0..num_classes-1``.

Files are found by :func:`keras_mi.data._download.resolve_file` (data dir ->
cache dir -> download) and used only when their SHA-256 matches a pinned
hash.
"""

import dataclasses

import numpy as np

from keras_mi.data import images, tabular
from keras_mi.data._download import (
    RemoteFile,
    cached_arrays,
    check_data_dir,
    resolve_cache_dir,
    resolve_file,
    sha256_of,
)

_PTL = "https://github.com/privacytrustlab/datasets/raw/master/"
# Debian's dataset-fashion-mnist package; its files are the upstream ones
# re-gzipped without the file-name header, hence their own hashes below.
SYSTEM_DATA_DIRS = ("/usr/share/datasets",)

LOCATION = RemoteFile(
    "location.tgz",
    _PTL + "dataset_location.tgz",
    ("927203f85a868f8ee17a0ded1dc61699efe602167beabe34fbf45b4b1de94b33",),
    aliases=("dataset_location.tgz",),
)
# No published checksum was found for these two archives: they are refused
# until the user passes sha256= (after checking the file's origin).
PURCHASE100 = RemoteFile("dataset_purchase.tgz", _PTL + "dataset_purchase.tgz", ())
TEXAS100 = RemoteFile("dataset_texas.tgz", _PTL + "dataset_texas.tgz", ())
CIFAR10_JPEG = RemoteFile(
    "cifar10-jpeg.tar.gz",
    None,
    ("d62ed8e69cb906ac780297c8c086276d78b3b42b8304933867179286db41bee2",),
)
# Hash as listed in tensorflow_datasets/url_checksums/cifar100.txt.
CIFAR100_BINARY = RemoteFile(
    "cifar-100-binary.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    ("58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",),
)
_IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# Upstream hashes from tensorflow_datasets/url_checksums/{mnist,fashion_mnist}.txt;
# the second Fashion-MNIST hash of each file is Debian's re-gzipped copy.
_MNIST_SHA = (
    ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",),
    ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",),
    ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",),
    ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",),
)
_FASHION_SHA = (
    (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    ),
    (
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    ),
    (
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    ),
    (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    ),
)


def _idx_files(folder, hashes):
    # Looked up as <dir>/<folder>/<file>, so MNIST and Fashion-MNIST can share
    # a data dir; Debian's files sit in /usr/share/datasets/fashion-mnist/.
    return tuple(RemoteFile(f"{folder}/{n}", None, h) for n, h in zip(_IDX_NAMES, hashes))


MNIST_IDX = _idx_files("mnist", _MNIST_SHA)
FASHION_MNIST_IDX = _idx_files("fashion-mnist", _FASHION_SHA)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Metadata of a registered dataset.

    Attributes:
      name: Registry name, e.g. ``"cifar10"``.
      input_shape: Shape of one record as returned by :func:`load_dataset`.
      num_classes: Number of labels; labels are ``0..num_classes-1``.
      architecture: Default model for ``keras_mi.models.build_model``
        (``"alexnet"``, ``"mlp_tanh"`` or ``"small_cnn"``).
      description: One line on the data and its source.

    Example:
      >>> get_info("location").num_classes
      30
    """

    name: str
    input_shape: tuple
    num_classes: int
    architecture: str
    description: str = ""


@dataclasses.dataclass(frozen=True)
class _Entry:
    info: DatasetInfo
    load: object  # (data_dir, cache_dir, download, sha256, limit, verbose) -> (x, y)


def _single_sha(sha256, name):
    if sha256 is not None and not isinstance(sha256, str):
        raise ValueError(f"sha256 for '{name}' must be one hex string, got {sha256!r}.")
    return sha256


def _load_location(data_dir, cache_dir, download, sha256, limit, verbose):
    path = resolve_file(LOCATION, data_dir, cache_dir, download, _single_sha(sha256, "location"))
    x, y = tabular.read_label_first_csv(path, "bangkok", 30)
    return tabular.limit_per_class(x, y, limit)


def _tabular_cached(remote, reader, name, data_dir, cache_dir, download, sha256, limit, verbose):
    path = resolve_file(remote, data_dir, cache_dir, download, _single_sha(sha256, name))

    def build():
        x, y = reader(path)
        return {"x": x.astype(np.uint8), "y": y}  # 0/1 features: store compactly.

    key = f"{name}-{sha256_of(path)[:16]}"
    arrays = cached_arrays(resolve_cache_dir(cache_dir), key, build, verbose)
    return tabular.limit_per_class(arrays["x"].astype(np.float32), arrays["y"], limit)


def _load_purchase(data_dir, cache_dir, download, sha256, limit, verbose):
    def reader(path):
        return tabular.read_label_first_csv(path, "dataset_purchase", 100)

    args = (data_dir, cache_dir, download, sha256, limit, verbose)
    return _tabular_cached(PURCHASE100, reader, "purchase100", *args)


def _load_texas(data_dir, cache_dir, download, sha256, limit, verbose):
    args = (data_dir, cache_dir, download, sha256, limit, verbose)
    return _tabular_cached(TEXAS100, tabular.read_texas, "texas100", *args)


def _tfds_dir(cache_dir):
    return resolve_cache_dir(cache_dir) / "tfds"


def _tfds_or_explain(name, cache_dir, download, limit, missing):
    """Fall back to TFDS; if that fails too, say what local file would do."""
    try:
        return images.read_tfds(name, _tfds_dir(cache_dir), download, limit)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{missing} TFDS fallback failed as well: {error}") from error
    except ImportError as error:
        raise FileNotFoundError(f"{missing} The TFDS fallback needs tensorflow_datasets, "
                                f"which is not installed ({error}).") from error


def _load_cifar10(data_dir, cache_dir, download, sha256, limit, verbose):
    try:
        path = resolve_file(
            CIFAR10_JPEG, data_dir, cache_dir, False, _single_sha(sha256, "cifar10")
        )
    except FileNotFoundError as missing:
        return _tfds_or_explain("cifar10", cache_dir, download, limit, missing)
    tag = "all" if limit is None else f"limit{limit}"
    key = f"cifar10-jpeg-{sha256_of(path)[:16]}-{tag}"

    def build():
        x, y = images.read_cifar10_jpeg(path, limit=limit, verbose=verbose)
        return {"x": x, "y": y}

    arrays = cached_arrays(resolve_cache_dir(cache_dir), key, build, verbose)
    return arrays["x"], arrays["y"]


def _load_cifar100(data_dir, cache_dir, download, sha256, limit, verbose):
    sha256 = _single_sha(sha256, "cifar100")
    path = resolve_file(CIFAR100_BINARY, data_dir, cache_dir, download, sha256)
    return images.read_cifar100_binary(path, limit=limit)


def _idx_loader(files, tfds_name):
    def load(data_dir, cache_dir, download, sha256, limit, verbose):
        if sha256 is not None:
            raise ValueError(
                f"'{tfds_name}' is read from four idx files with pinned hashes; "
                "sha256= is not supported for it."
            )
        try:
            paths = [
                resolve_file(f, data_dir, cache_dir, False, None, SYSTEM_DATA_DIRS)
                for f in files
            ]
        except FileNotFoundError as missing:
            return _tfds_or_explain(tfds_name, cache_dir, download, limit, missing)
        return images.read_idx_pair(*paths, limit=limit)

    return load


def _info(name, shape, classes, arch, text):
    return DatasetInfo(name, shape, classes, arch, text)


_REGISTRY = {
    "location": _Entry(
        _info("location", (446,), 30, "mlp_tanh", "Foursquare Bangkok check-ins (Shokri et al.)"),
        _load_location,
    ),
    "purchase100": _Entry(
        _info("purchase100", (600,), 100, "mlp_tanh", "Kaggle shopping baskets, 100 clusters"),
        _load_purchase,
    ),
    "texas100": _Entry(
        _info("texas100", (6169,), 100, "mlp_tanh", "Texas hospital discharge records"),
        _load_texas,
    ),
    "cifar10": _Entry(
        _info("cifar10", (32, 32, 3), 10, "alexnet", "CIFAR-10 (JPEG archive or TFDS)"),
        _load_cifar10,
    ),
    "cifar100": _Entry(
        _info("cifar100", (32, 32, 3), 100, "alexnet", "CIFAR-100 binary version, fine labels"),
        _load_cifar100,
    ),
    "mnist": _Entry(
        _info("mnist", (28, 28, 1), 10, "small_cnn", "MNIST digits (idx files or TFDS)"),
        _idx_loader(MNIST_IDX, "mnist"),
    ),
    "fashion_mnist": _Entry(
        _info("fashion_mnist", (28, 28, 1), 10, "small_cnn", "Fashion-MNIST (idx files or TFDS)"),
        _idx_loader(FASHION_MNIST_IDX, "fashion_mnist"),
    ),
}


def available_datasets():
    """Names accepted by :func:`load_dataset` and :func:`get_info`, sorted.

    Example:
      >>> "cifar10" in available_datasets()
      True
    """
    return sorted(_REGISTRY)


def _entry(name):
    key = str(name).lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(
            f"Unknown dataset '{name}'. Choose one of: {', '.join(available_datasets())}."
        )
    return _REGISTRY[key]


def get_info(name):
    """Return the :class:`DatasetInfo` of dataset ``name``.

    Example:
      >>> get_info("cifar10").architecture
      'alexnet'
    """
    return _entry(name).info


def load_dataset(
    name,
    data_dir=None,
    cache_dir=None,
    download=True,
    *,
    sha256=None,
    limit=None,
    verbose=0,
):
    """Load dataset ``name`` as one pool ``(x, y)``.

    Files are looked up in ``data_dir`` (default: ``$KERAS_MI_DATA_DIR``),
    then the cache dir, then downloaded with ``keras.utils.get_file`` (when
    ``download`` is true and the dataset has a download address). A file
    whose SHA-256 is not the pinned one is refused with a ``ValueError``.
    Slow-to-parse sources (CIFAR-10 JPEGs, Purchase100, Texas100) are cached
    as ``.npz`` in the cache dir.

    Args:
      name: One of :func:`available_datasets`.
      data_dir: Folder holding the dataset files (read only).
      cache_dir: Folder for downloads and decoded caches; default
        ``~/.keras/datasets/keras_mi``.
      download: Allow network downloads (keras ``get_file`` or TFDS).
      sha256: Accept a file with this SHA-256 instead of the pinned hash
        (required for Purchase100 and Texas100, which have none pinned).
      limit: Keep at most this many records per class in each split (the
        first ones in file/name order), for quick experiments and tests.
      verbose: Show progress when decoding or caching.

    Returns:
      ``(x, y)``: float32 features/images (images scaled to ``[0, 1]``) and
      int64 labels in ``0..num_classes-1``; training split first.

    Example:
      >>> x, y = load_dataset("location", data_dir="/data")  # doctest: +SKIP
      >>> x.shape, y.max()  # doctest: +SKIP
      ((5010, 446), 29)
    """
    entry = _entry(name)
    if limit is not None and (int(limit) != limit or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}.")
    data_dir = check_data_dir(data_dir)
    cache_dir = resolve_cache_dir(cache_dir)
    x, y = entry.load(data_dir, cache_dir, download, sha256, limit, verbose)
    x = np.asarray(x)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return _check_output(entry.info, x, np.asarray(y, dtype=np.int64))


def _check_output(info, x, y):
    if x.shape[1:] != tuple(info.input_shape) or len(x) != len(y) or len(y) == 0:
        raise ValueError(
            f"'{info.name}' produced x {x.shape} and y {y.shape}; expected "
            f"(n, *{info.input_shape}) and (n,) with n > 0. The source file is "
            "not in the expected format."
        )
    if y.min() < 0 or y.max() >= info.num_classes:
        raise ValueError(
            f"'{info.name}' labels span {y.min()}..{y.max()}, outside "
            f"0..{info.num_classes - 1}; the source file is not in the expected format."
        )
    return x, y


__all__ = ["DatasetInfo", "available_datasets", "get_info", "load_dataset"]
