"""Location (real file), Purchase100 and Texas100 (generated in the real layout)."""

import hashlib
import tarfile

import numpy as np
import pytest
from _data_formats import csv_bytes, sha256_file, write_tgz

from keras_mi.data import get_info, load_dataset

LOCATION_SHA = "927203f85a868f8ee17a0ded1dc61699efe602167beabe34fbf45b4b1de94b33"


def _reference_location(path):
    """Independent reader: csv module over the extracted member."""
    import csv
    import io

    with tarfile.open(path) as tar:
        text = tar.extractfile("bangkok").read().decode()
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    y = np.array([int(r[0]) for r in rows]) - 1
    x = np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float32)
    return x, y


def test_location_from_real_data_dir(data_dir, tmp_path):
    x, y = load_dataset("location", data_dir=data_dir, cache_dir=tmp_path, download=False)
    assert x.shape == (5010, 446) and x.dtype == np.float32 and y.dtype == np.int64
    assert y.min() == 0 and y.max() == 29
    assert set(np.unique(x)) <= {0.0, 1.0}
    x_ref, y_ref = _reference_location(data_dir / "location.tgz")
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)
    assert get_info("location").input_shape == x.shape[1:]


def test_location_tampered_copy_is_refused(data_dir, tmp_path):
    copy = tmp_path / "location.tgz"
    copy.write_bytes((data_dir / "location.tgz").read_bytes() + b"\0")
    with pytest.raises(ValueError, match="SHA-256 mismatch") as info:
        load_dataset("location", data_dir=tmp_path, cache_dir=tmp_path / "c", download=False)
    assert LOCATION_SHA in str(info.value) and sha256_file(copy) in str(info.value)


def test_location_limit_per_class(data_dir, tmp_path):
    x, y = load_dataset("location", data_dir=data_dir, cache_dir=tmp_path, limit=3)
    counts = np.bincount(y, minlength=30)
    full_counts = np.bincount(load_dataset("location", data_dir=data_dir, cache_dir=tmp_path)[1])
    np.testing.assert_array_equal(counts, np.minimum(full_counts, 3))


def _purchase(tmp_path, rng, n=40, d=600):
    x = rng.integers(0, 2, size=(n, d))
    y = np.r_[np.arange(1, 101), rng.integers(1, 101, size=n)][:n]  # 1-based labels
    path = write_tgz(tmp_path / "dataset_purchase.tgz",
                     {"dataset_purchase": csv_bytes(np.c_[y, x])})
    return path, x, y - 1


def test_purchase_needs_explicit_sha256(tmp_path):
    path, _, _ = _purchase(tmp_path, np.random.default_rng(0))
    with pytest.raises(ValueError, match="No SHA-256 is pinned") as info:
        load_dataset("purchase100", data_dir=tmp_path, cache_dir=tmp_path / "c", download=False)
    assert sha256_file(path) in str(info.value)


def test_purchase_reads_real_layout_and_caches(tmp_path):
    path, x_true, y_true = _purchase(tmp_path, np.random.default_rng(1))
    kwargs = dict(data_dir=tmp_path, cache_dir=tmp_path / "c", download=False,
                  sha256=sha256_file(path))
    x, y = load_dataset("purchase100", **kwargs)
    assert x.shape == (40, 600) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, x_true)
    np.testing.assert_array_equal(y, y_true)
    assert len(list((tmp_path / "c").glob("purchase100-*.npz"))) == 1
    x2, y2 = load_dataset("purchase100", **kwargs)  # from the npz cache
    np.testing.assert_array_equal(x2, x_true)
    np.testing.assert_array_equal(y2, y_true)


def test_purchase_wrong_sha256_is_refused(tmp_path):
    _purchase(tmp_path, np.random.default_rng(2))
    with pytest.raises(ValueError, match="mismatch"):
        load_dataset("purchase100", data_dir=tmp_path, cache_dir=tmp_path / "c",
                     download=False, sha256=hashlib.sha256(b"other").hexdigest())


def test_purchase_label_out_of_range_is_refused(tmp_path):
    x = np.zeros((3, 600), dtype=int)
    path = write_tgz(tmp_path / "dataset_purchase.tgz",
                     {"dataset_purchase": csv_bytes(np.c_[[1, 2, 101], x])})
    with pytest.raises(ValueError, match="1..100"):
        load_dataset("purchase100", data_dir=tmp_path, cache_dir=tmp_path / "c",
                     download=False, sha256=sha256_file(path))


def test_malformed_row_is_refused(tmp_path):
    good = csv_bytes(np.c_[[1, 2], np.zeros((2, 600), dtype=int)])
    path = write_tgz(tmp_path / "dataset_purchase.tgz", {"dataset_purchase": good + b"3,1,0\n"})
    with pytest.raises(ValueError, match="line 3"):
        load_dataset("purchase100", data_dir=tmp_path, cache_dir=tmp_path / "c",
                     download=False, sha256=sha256_file(path))


def test_texas_reads_feats_and_labels_members(tmp_path):
    rng = np.random.default_rng(3)
    n, d = 12, 6169
    x_true = rng.integers(0, 2, size=(n, d))
    y_true = rng.integers(1, 101, size=n)
    # Labels member first: the reader must not depend on member order.
    path = write_tgz(tmp_path / "dataset_texas.tgz", {
        "texas/100/labels": csv_bytes(y_true[:, None]),
        "texas/100/feats": csv_bytes(x_true),
    })
    x, y = load_dataset("texas100", data_dir=tmp_path, cache_dir=tmp_path / "c",
                        download=False, sha256=sha256_file(path))
    assert x.shape == (n, d) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, x_true)
    np.testing.assert_array_equal(y, y_true - 1)


def test_texas_missing_member_is_refused(tmp_path):
    path = write_tgz(tmp_path / "dataset_texas.tgz", {"texas/100/feats": b"0,1\n"})
    with pytest.raises(ValueError, match="texas/100/labels"):
        load_dataset("texas100", data_dir=tmp_path, cache_dir=tmp_path / "c",
                     download=False, sha256=sha256_file(path))


def test_offline_without_file_names_expected_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset_texas.tgz"):
        load_dataset("texas100", data_dir=tmp_path, cache_dir=tmp_path / "c", download=False)
