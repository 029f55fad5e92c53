"""MembershipSplit: disjointness (property-based), stratification, reference
coverage, JSON round trip, fingerprint checks and bad inputs."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_mi.data import SET_NAMES, MembershipSplit, dataset_fingerprint


def _pool(n=600, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 4)).astype(np.float32), np.arange(n) % classes


@st.composite
def pools_and_sizes(draw):
    classes = draw(st.integers(1, 8))
    n = draw(st.integers(classes * 4, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    y = np.r_[np.arange(classes), rng.integers(0, classes, n - classes)]
    cuts = np.sort(rng.integers(0, n + 1, size=4))
    sizes = np.diff(np.r_[0, cuts, n])  # five non-negative sizes summing to n
    sizes = [int(s) for s in sizes]
    drop = draw(st.integers(0, sizes[4]))  # leave some records unused
    sizes[4] -= drop
    sizes[0], sizes[1] = max(sizes[0], 1), max(sizes[1], classes)
    return y, sizes, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None)
@given(pools_and_sizes())
def test_sets_are_disjoint_sized_and_stratified(case):
    y, sizes, seed = case
    x = np.zeros((len(y), 1), dtype=np.float32)
    if sum(sizes) > len(y):
        with pytest.raises(ValueError, match="only"):
            MembershipSplit.create(x, y, *sizes, seed=seed)
        return
    counts = np.bincount(y)
    try:
        split = MembershipSplit.create(x, y, *sizes, seed=seed)
    except ValueError as error:
        # Allowed only where stratification (within 2 records per class) does
        # not guarantee a reference record of every class.
        assert "not in the reference set" in str(error)
        assert sizes[1] * counts.min() / len(y) < 2
        return
    all_idx = np.concatenate([getattr(split, n) for n in SET_NAMES])
    assert np.unique(all_idx).size == all_idx.size == sum(sizes)
    assert all_idx.min() >= 0 and all_idx.max() < len(y)
    assert split.sizes == dict(zip(SET_NAMES, sizes))
    for name in SET_NAMES:
        idx = getattr(split, name)
        got = np.bincount(y[idx], minlength=len(counts))
        np.testing.assert_array_less(np.abs(got - idx.size * counts / len(y)), 2.0 + 1e-9)
    assert set(y[split.members]) <= set(y[split.reference])


def test_same_seed_same_split_other_seed_differs():
    x, y = _pool()
    a = MembershipSplit.create(x, y, 100, 100, 100, 100, 100, seed=3)
    b = MembershipSplit.create(x, y, 100, 100, 100, 100, 100, seed=3)
    c = MembershipSplit.create(x, y, 100, 100, 100, 100, 100, seed=4)
    for name in SET_NAMES:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.members, c.members)


def test_default_sizes_and_shadow_takes_the_rest():
    assert MembershipSplit.default_sizes(60000) == {
        "members": 10000, "reference": 10000, "non_members": 10000, "test": 10000,
        "shadow": 20000}
    x, y = _pool(n=605)
    split = MembershipSplit.create(x, y, members=100, reference=100, non_members=100, test=100)
    assert split.sizes["shadow"] == 205
    assert MembershipSplit.create(x, y).sizes == MembershipSplit.default_sizes(605)


def test_save_load_round_trip(tmp_path):
    x, y = _pool()
    split = MembershipSplit.create(x, y, 120, 90, 120, 60, 150, seed=7)
    path = split.save(tmp_path / "split.json")
    loaded = MembershipSplit.load(path, x, y)
    for name in SET_NAMES:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(split, name))
    assert (loaded.seed, loaded.fingerprint, loaded.num_classes) == (7, split.fingerprint, 3)
    xs, ys = loaded.arrays(x, y, "reference")
    np.testing.assert_array_equal(xs, x[split.reference])
    np.testing.assert_array_equal(ys, y[split.reference])


def test_load_with_other_data_is_refused(tmp_path):
    x, y = _pool()
    path = MembershipSplit.create(x, y, 100, 100, 100, 100, 100).save(tmp_path / "s.json")
    x_changed = x.copy()
    x_changed[5, 0] += 1.0
    with pytest.raises(ValueError, match="different dataset"):
        MembershipSplit.load(path, x_changed, y)
    with pytest.raises(ValueError, match="different dataset"):
        MembershipSplit.load(path, x, np.roll(y, 1))
    with pytest.raises(ValueError, match="different dataset"):
        MembershipSplit.load(path, x.astype(np.float64), y)


def test_load_of_overlapping_file_is_refused(tmp_path):
    x, y = _pool()
    path = MembershipSplit.create(x, y, 100, 100, 100, 100, 100).save(tmp_path / "s.json")
    data = json.loads(path.read_text())
    data["indices"]["test"][0] = data["indices"]["members"][0]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="disjoint"):
        MembershipSplit.load(path, x, y)


def test_load_rejects_other_json(tmp_path):
    x, y = _pool()
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"members": [1, 2]}))
    with pytest.raises(ValueError, match="not a keras-mi MembershipSplit"):
        MembershipSplit.load(path, x, y)


def test_fingerprint_depends_on_bytes_and_labels():
    x, y = _pool()
    base = dataset_fingerprint(x, y)
    assert base == dataset_fingerprint(x.copy(), y.copy())
    assert base != dataset_fingerprint(x[::-1], y[::-1])
    assert base != dataset_fingerprint(x, (y + 1) % 3)


def test_too_few_records_is_refused():
    x, y = _pool(n=300)
    with pytest.raises(ValueError, match="pool has only 300; reduce the sizes by 100"):
        MembershipSplit.create(x, y, 100, 100, 100, 100, 0)


def test_reference_missing_a_member_class_is_refused():
    x, y = _pool(n=600, classes=10)
    with pytest.raises(ValueError, match="not in the reference set"):
        MembershipSplit.create(x, y, members=100, reference=5, non_members=10, test=10, shadow=0)


def test_nan_features_are_refused():
    x, y = _pool()
    x[17, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values in 1 record"):
        MembershipSplit.create(x, y)


@pytest.mark.parametrize(
    "labels, kwargs, message",
    [
        (lambda y: y - 1, {}, "0-based"),
        (lambda y: y, {"num_classes": 2}, "outside 0..1"),
        (lambda y: y + 0.5, {}, "integer class labels"),
        (lambda y: np.eye(3)[y], {}, "1-D"),
        (lambda y: y[:-1], {}, "matching"),
    ],
)
def test_bad_labels_are_refused(labels, kwargs, message):
    x, y = _pool()
    with pytest.raises(ValueError, match=message):
        MembershipSplit.create(x, labels(y), **kwargs)


@pytest.mark.parametrize("sizes", [(-1, 10, 10, 10, 10), (0, 10, 10, 10, 10),
                                   (10, 0, 10, 10, 10), (10.5, 10, 10, 10, 10)])
def test_bad_sizes_are_refused(sizes):
    x, y = _pool()
    with pytest.raises(ValueError, match="members|reference"):
        MembershipSplit.create(x, y, *sizes)


@pytest.mark.parametrize("damage, message", [
    (lambda text: text[: len(text) // 2], "is not a readable split file"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "indices"}),
     "is incomplete: it lacks \\['indices'\\]"),
    (lambda text: json.dumps({**json.loads(text), "indices": {"members": [0]}}),
     "lacks the indices of members, reference"),
    (lambda text: json.dumps({**json.loads(text),
                              "indices": {**json.loads(text)["indices"], "test": ["x"]}}),
     "holds invalid indices"),
])
def test_load_of_a_damaged_file_names_it(tmp_path, damage, message):
    x, y = _pool()
    path = MembershipSplit.create(x, y, 100, 100, 100, 100, 100).save(tmp_path / "s.json")
    path.write_text(damage(path.read_text()))
    with pytest.raises(ValueError, match=message) as err:
        MembershipSplit.load(path, x, y)
    assert str(path) in str(err.value)
