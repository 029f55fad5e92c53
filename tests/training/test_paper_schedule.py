"""iterate_batches: one pass over arrays, tf.data and PyDataset inputs."""

import keras
import numpy as np
import pytest

from keras_mi.training.paper_schedule import iterate_batches


def test_arrays_cover_every_row_once_and_shuffle_with_seed():
    x, y = np.arange(10)[:, None].astype("float32"), np.arange(10)
    batches = list(iterate_batches(x, y, batch_size=4, seed=3))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    np.testing.assert_array_equal(np.concatenate([b[0][:, 0] for b in batches]), seen)
    again = iterate_batches(x, y, 4, seed=3)
    assert [b[1].tolist() for b in again] == [b[1].tolist() for b in batches]


def test_dataset_and_steps_cap():
    tf = pytest.importorskip("tensorflow")
    rows = (np.zeros((10, 2)), np.arange(10), np.ones(10))
    ds = tf.data.Dataset.from_tensor_slices(rows).batch(3)
    batches = list(iterate_batches(ds, None, steps=2))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5]]


class _Seq(keras.utils.PyDataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return np.full((2, 1), i, "float32"), np.array([i, i])


def test_py_dataset_and_missing_labels():
    assert [b[1].tolist() for b in iterate_batches(_Seq(), None)] == [[0, 0], [1, 1]]
    with pytest.raises(ValueError, match="labels"):
        list(iterate_batches(np.zeros((3, 1)), None))
