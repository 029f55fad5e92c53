"""keras_mi.data: datasets, membership splits and tf.data helpers.

Example:
  >>> from keras_mi.data import load_dataset, MembershipSplit
  >>> x, y = load_dataset("location")  # doctest: +SKIP
  >>> split = MembershipSplit.create(x, y, members=1000, reference=1000,
  ...     non_members=1000, test=1000, shadow=1010, seed=0)  # doctest: +SKIP

Importing this package never imports TensorFlow: TFDS is imported only when a
loader falls back to it, and ``mixup_dataset`` (tf.data) is loaded on first
access.
"""

from keras_mi.data._download import resolve_data_dir
from keras_mi.data.datasets import DatasetInfo, available_datasets, get_info, load_dataset
from keras_mi.data.splits import SET_NAMES, MembershipSplit, dataset_fingerprint

__all__ = [
    "DatasetInfo",
    "MembershipSplit",
    "SET_NAMES",
    "available_datasets",
    "dataset_fingerprint",
    "get_info",
    "load_dataset",
    "mixup_dataset",
    "resolve_data_dir",
]


def __getattr__(name):
    # pipeline.py (tf.data helpers) is loaded lazily so `import keras_mi.data`
    # works without TensorFlow.
    if name == "mixup_dataset":
        from keras_mi.data.pipeline import mixup_dataset

        return mixup_dataset
    raise AttributeError(f"module 'keras_mi.data' has no attribute '{name}'")
