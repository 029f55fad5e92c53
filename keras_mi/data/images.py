"""Readers for the image benchmarks: CIFAR-10 (JPEG tarball), CIFAR-100
(binary tarball), MNIST / Fashion-MNIST (idx files) and a TFDS fallback.

Every reader returns ``uint8`` images ``(n, H, W, C)`` and ``int64`` labels,
training split first, then the test split; :func:`keras_mi.data.load_dataset`
converts the images to float32 in ``[0, 1]``.

``limit`` (where accepted) keeps at most that many records *per class in
each split*, so small test subsets stay class-balanced.
"""

import gzip
import io
import tarfile

import numpy as np

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
SPLITS = ("train", "test")


def _progbar(total, verbose):
    if not verbose:
        return None
    import keras  # Lazy: only for the progress bar.

    return keras.utils.Progbar(total, unit_name="image")


def _take_per_class(entries, limit):
    """``entries`` sorted; keep the first ``limit`` of each label."""
    if limit is None:
        return entries
    counts = {}
    kept = []
    for entry in entries:
        label = entry[1]
        if counts.get(label, 0) < limit:
            counts[label] = counts.get(label, 0) + 1
            kept.append(entry)
    return kept


def read_cifar10_jpeg(path, limit=None, verbose=0):
    """Read ``cifar10-jpeg.tar.gz`` (members ``<split>/<class>/NNNN.jpg``).

    The tarball is streamed once, front to back, keeping the compressed
    JPEG bytes (about 20 MB); members are then sorted by name, ``train/``
    before ``test/``, and decoded with Pillow (imported here, lazily).

    Args:
      path: The archive.
      limit: Keep at most this many images per class and split (the first
        in name order); ``None`` keeps all 60,000.
      verbose: Show a progress bar while decoding.

    Returns:
      ``(x, y)``: uint8 ``(n, 32, 32, 3)`` and int64 labels in CIFAR order.

    Example:
      >>> x, y = read_cifar10_jpeg("cifar10-jpeg.tar.gz", limit=2)  # doctest: +SKIP
      >>> x.shape  # doctest: +SKIP
      (40, 32, 32, 3)
    """
    from PIL import Image  # Lazy: Pillow is only needed for this reader.

    class_index = {name: i for i, name in enumerate(CIFAR10_CLASSES)}
    entries = {split: [] for split in SPLITS}
    with tarfile.open(path, mode="r|gz") as tar:  # Stream mode: never seeks.
        for member in tar:
            if not member.isfile() or not member.name.lower().endswith(".jpg"):
                continue
            parts = member.name.lstrip("./").split("/")
            if len(parts) < 3 or parts[-3] not in entries:
                continue
            split, cls = parts[-3], parts[-2]
            if cls not in class_index:
                raise ValueError(
                    f"{path}: member {member.name} has unknown class '{cls}'; "
                    f"expected one of {CIFAR10_CLASSES}."
                )
            data = tar.extractfile(member).read()
            entries[split].append((member.name, class_index[cls], data))
    if not entries["train"] and not entries["test"]:
        raise ValueError(f"{path} holds no train/<class>/*.jpg members.")
    chosen = []
    for split in SPLITS:
        chosen.extend(_take_per_class(sorted(entries[split]), limit))
    images = np.empty((len(chosen), 32, 32, 3), dtype=np.uint8)
    labels = np.empty(len(chosen), dtype=np.int64)
    bar = _progbar(len(chosen), verbose)
    for i, (name, label, data) in enumerate(chosen):
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("RGB"))
        if pixels.shape != (32, 32, 3):
            raise ValueError(f"{path}: {name} is {pixels.shape}, not 32x32 RGB.")
        images[i] = pixels
        labels[i] = label
        if bar is not None and (i + 1) % 1000 == 0:
            bar.update(i + 1)
    if bar is not None:
        bar.update(len(chosen), finalize=True)
    return images, labels


def read_cifar100_binary(path, limit=None):
    """Read ``cifar-100-binary.tar.gz`` (``train.bin`` then ``test.bin``).

    Each record is 3,074 bytes: coarse label, fine label, then 3,072 pixel
    bytes (1,024 red, 1,024 green, 1,024 blue, rows of 32). The fine
    (100-class) label is returned.

    Returns:
      ``(x, y)``: uint8 ``(n, 32, 32, 3)`` and int64 labels 0..99.

    Example:
      >>> x, y = read_cifar100_binary("cifar-100-binary.tar.gz")  # doctest: +SKIP
      >>> x.shape  # doctest: +SKIP
      (60000, 32, 32, 3)
    """
    blobs = {}
    with tarfile.open(path, mode="r|gz") as tar:  # Stream mode: never seeks.
        for member in tar:
            base = member.name.rsplit("/", 1)[-1]
            if member.isfile() and base in ("train.bin", "test.bin"):
                blobs[base] = tar.extractfile(member).read()
    xs, ys = [], []
    for base in ("train.bin", "test.bin"):
        if base not in blobs:
            raise ValueError(f"{path} has no member {base}; is it cifar-100-binary?")
        raw = np.frombuffer(blobs[base], dtype=np.uint8)
        if raw.size % 3074:
            raise ValueError(f"{path}:{base} size {raw.size} is not a multiple of 3074.")
        records = raw.reshape(-1, 3074)
        x = records[:, 2:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = records[:, 1].astype(np.int64)
        keep = _first_per_class(y, limit)
        xs.append(x[keep])
        ys.append(y[keep])
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


def _first_per_class(y, limit):
    if limit is None:
        return np.arange(len(y))
    return np.sort(np.concatenate([np.flatnonzero(y == c)[:limit] for c in np.unique(y)]))


def read_idx(path):
    """Read an idx file (``.gz`` or raw): ubyte images or labels.

    Example:
      >>> read_idx("train-labels-idx1-ubyte.gz").shape  # doctest: +SKIP
      (60000,)
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte idx file.")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))
    body = np.frombuffer(data, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, body has {body.size} bytes.")
    return body.reshape(shape)


def read_idx_pair(train_images, train_labels, test_images, test_labels, limit=None):
    """Read MNIST-style idx files into ``(x (n, 28, 28, 1) uint8, y int64)``.

    Example:
      >>> x, y = read_idx_pair(*paths)  # doctest: +SKIP
    """
    xs, ys = [], []
    for images_path, labels_path in ((train_images, train_labels), (test_images, test_labels)):
        x, y = read_idx(images_path), read_idx(labels_path).astype(np.int64)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(
                f"{images_path} / {labels_path}: expected images (n, H, W) and "
                f"n labels, got {x.shape} and {y.shape}."
            )
        keep = _first_per_class(y, limit)
        xs.append(x[keep, ..., None])
        ys.append(y[keep])
    return np.concatenate(xs), np.concatenate(ys)


def read_tfds(name, data_dir=None, download=True, limit=None):
    """Load ``name`` with TensorFlow Datasets (imported here, lazily).

    Returns the ``train`` split then ``test`` as uint8 images and int64
    labels.

    Example:
      >>> x, y = read_tfds("mnist", data_dir="/tmp/tfds")  # doctest: +SKIP
    """
    import tensorflow_datasets as tfds  # Lazy: TensorFlow is optional.

    kwargs = {"data_dir": None if data_dir is None else str(data_dir)}
    try:
        splits = tfds.load(
            name, split=list(SPLITS), as_supervised=True, download=download, **kwargs
        )
    except Exception as error:  # tfds raises many types; keep the cause.
        raise FileNotFoundError(
            f"TensorFlow Datasets could not provide '{name}' (data_dir="
            f"{kwargs['data_dir']}, download={download}): {error}"
        ) from error
    xs, ys = [], []
    for split in splits:
        images, labels = [], []
        for x, y in tfds.as_numpy(split.batch(2048)):
            images.append(x)
            labels.append(y)
        x, y = np.concatenate(images), np.concatenate(labels).astype(np.int64)
        keep = _first_per_class(y, limit)
        xs.append(x[keep])
        ys.append(y[keep])
    return np.concatenate(xs).astype(np.uint8), np.concatenate(ys)
