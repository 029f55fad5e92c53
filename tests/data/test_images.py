"""CIFAR-10 (real JPEG archive + generated), CIFAR-100 binary, MNIST-style
idx files (Debian Fashion-MNIST + generated) and the TFDS fallback."""

import gzip
import io
import pathlib

import numpy as np
import pytest
from _data_formats import sha256_file, write_idx, write_tgz

from keras_mi.data import images, load_dataset

DEBIAN_FASHION = pathlib.Path("/usr/share/datasets/fashion-mnist")


# ---- CIFAR-10 JPEG archive ---------------------------------------------------


def test_cifar10_real_archive_subset_and_cache(data_dir, tmp_path):
    kwargs = dict(data_dir=data_dir, cache_dir=tmp_path, download=False, limit=2)
    x, y = load_dataset("cifar10", **kwargs)
    assert x.shape == (40, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.1
    # Two per class in train (first 20 records), then two per class in test.
    np.testing.assert_array_equal(y[:20], np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(y[20:], np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(x * 255, np.round(x * 255))  # came from uint8
    cached = list(tmp_path.glob("cifar10-jpeg-*-limit2.npz"))
    assert len(cached) == 1
    x2, y2 = load_dataset("cifar10", **kwargs)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)


def test_cifar10_tampered_archive_is_refused(data_dir, tmp_path):
    copy = tmp_path / "cifar10-jpeg.tar.gz"
    copy.write_bytes((data_dir / "cifar10-jpeg.tar.gz").read_bytes()[:-1] + b"\x00")
    with pytest.raises(ValueError, match="d62ed8e69cb906ac"):
        load_dataset("cifar10", data_dir=tmp_path, cache_dir=tmp_path / "c", limit=1)


def _jpeg(color):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_cifar10_jpeg_reader_orders_by_name(tmp_path):
    colors = {"train/cat/0001.jpg": (200, 10, 10), "train/airplane/0002.jpg": (10, 200, 10),
              "test/truck/0000.jpg": (10, 10, 200), "train/airplane/0000.jpg": (90, 90, 90),
              "test/airplane/0005.jpg": (250, 250, 0)}
    # Written in a shuffled order, under a top folder, as some archives have.
    path = write_tgz(tmp_path / "c.tgz", {f"cifar/{k}": _jpeg(v) for k, v in colors.items()})
    x, y = images.read_cifar10_jpeg(path)
    order = ["train/airplane/0000.jpg", "train/airplane/0002.jpg", "train/cat/0001.jpg",
             "test/airplane/0005.jpg", "test/truck/0000.jpg"]
    np.testing.assert_array_equal(y, [0, 0, 3, 0, 9])
    expected = np.array([np.broadcast_to(colors[k], (32, 32, 3)) for k in order])
    assert np.abs(x.astype(int) - expected).max() <= 3  # JPEG of a flat colour
    x1, y1 = images.read_cifar10_jpeg(path, limit=1)
    np.testing.assert_array_equal(y1, [0, 3, 0, 9])


def test_cifar10_unknown_class_is_refused(tmp_path):
    path = write_tgz(tmp_path / "c.tgz", {"train/dragon/0000.jpg": _jpeg((0, 0, 0))})
    with pytest.raises(ValueError, match="dragon"):
        images.read_cifar10_jpeg(path)


# ---- CIFAR-100 binary ----------------------------------------------------------


def _cifar100_records(x, fine, coarse):
    planes = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # R plane, G plane, B plane
    return np.c_[coarse, fine, planes].astype(np.uint8).tobytes()


def test_cifar100_binary_layout(tmp_path):
    rng = np.random.default_rng(0)
    x_tr, x_te = rng.integers(0, 256, (6, 32, 32, 3)), rng.integers(0, 256, (3, 32, 32, 3))
    y_tr, y_te = np.array([5, 99, 0, 5, 42, 7]), np.array([1, 2, 3])
    path = write_tgz(tmp_path / "cifar-100-binary.tar.gz", {
        "cifar-100-binary/test.bin": _cifar100_records(x_te, y_te, y_te // 5),
        "cifar-100-binary/train.bin": _cifar100_records(x_tr, y_tr, y_tr // 5),
    })
    with pytest.raises(ValueError, match="58a81ae192c23a4b"):  # pinned upstream hash
        load_dataset("cifar100", data_dir=tmp_path, cache_dir=tmp_path / "c", download=False)
    x, y = load_dataset("cifar100", data_dir=tmp_path, cache_dir=tmp_path / "c",
                        download=False, sha256=sha256_file(path))
    assert x.shape == (9, 32, 32, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(y, np.r_[y_tr, y_te])
    np.testing.assert_allclose(x, np.r_[x_tr, x_te] / 255.0, atol=1e-7)
    _, y_lim = images.read_cifar100_binary(path, limit=1)
    np.testing.assert_array_equal(y_lim, [5, 99, 0, 42, 7, 1, 2, 3])


# ---- idx files (MNIST, Fashion-MNIST) -----------------------------------------


def test_read_idx_pair_matches_written_arrays(tmp_path):
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (7, 28, 28)), rng.integers(0, 10, 7),
              rng.integers(0, 256, (3, 28, 28)), rng.integers(0, 10, 3)]
    names = ["tri", "trl", "tei", "tel"]
    paths = [write_idx(tmp_path / f"{n}.gz", a) for n, a in zip(names, arrays)]
    x, y = images.read_idx_pair(*paths)
    np.testing.assert_array_equal(x[..., 0], np.r_[arrays[0], arrays[2]])
    np.testing.assert_array_equal(y, np.r_[arrays[1], arrays[3]])
    assert x.shape == (10, 28, 28, 1)


def test_idx_truncated_or_wrong_magic_is_refused(tmp_path):
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + np.asarray([5], ">u4").tobytes() + b"\x01\x02")
    with pytest.raises(ValueError, match="header says"):
        images.read_idx(bad)
    with gzip.open(bad, "wb") as f:
        f.write(b"\x12\x34\x56\x78")
    with pytest.raises(ValueError, match="idx"):
        images.read_idx(bad)


def test_mnist_files_with_wrong_hash_are_refused(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        write_idx(folder / name, np.zeros((2, 28, 28)))
    for name in ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        write_idx(folder / name, np.zeros(2))
    with pytest.raises(ValueError, match="440fcabf73cc546f"):
        load_dataset("mnist", data_dir=tmp_path, cache_dir=tmp_path / "c", download=False)


def _independent_labels(path):
    raw = gzip.decompress(path.read_bytes())
    assert int.from_bytes(raw[:4], "big") == 2049
    return np.frombuffer(raw[8:], dtype=np.uint8)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed "
                           "(/usr/share/datasets/fashion-mnist missing)")
def test_fashion_mnist_from_debian_files(tmp_path):
    x, y = load_dataset("fashion_mnist", data_dir=tmp_path, cache_dir=tmp_path, download=False)
    assert x.shape == (70000, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 7000))
    expected = np.r_[_independent_labels(DEBIAN_FASHION / "train-labels-idx1-ubyte.gz"),
                     _independent_labels(DEBIAN_FASHION / "t10k-labels-idx1-ubyte.gz")]
    np.testing.assert_array_equal(y, expected)
    assert x.min() == 0.0 and x.max() == 1.0


# ---- TFDS fallback (mocked; never downloads) -----------------------------------


def test_tfds_fallback_for_mnist_and_cifar10(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        x, y = load_dataset("mnist", data_dir=tmp_path, cache_dir=tmp_path, download=False)
        assert x.shape == (12, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int64
        assert 0 <= y.min() and y.max() <= 9 and 0.0 <= x.min() and x.max() <= 1.0
        x, y = load_dataset("cifar10", data_dir=tmp_path, cache_dir=tmp_path, download=False)
        assert x.shape == (12, 32, 32, 3) and 0 <= y.min() and y.max() <= 9
    # Outside the mock, nothing local and no download: a clear error.
    with pytest.raises(FileNotFoundError,
                       match="mnist/train-images-idx3-ubyte.gz.*could not provide 'mnist'"):
        load_dataset("mnist", data_dir=tmp_path, cache_dir=tmp_path, download=False)
