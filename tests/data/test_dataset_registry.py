"""Registry metadata, name handling and the no-TensorFlow-at-import rule."""

import os
import subprocess
import sys

import pytest

from keras_mi.data import DatasetInfo, available_datasets, get_info, load_dataset

EXPECTED = {
    "cifar10": ((32, 32, 3), 10, "alexnet"),
    "cifar100": ((32, 32, 3), 100, "alexnet"),
    "fashion_mnist": ((28, 28, 1), 10, "small_cnn"),
    "location": ((446,), 30, "mlp_tanh"),
    "mnist": ((28, 28, 1), 10, "small_cnn"),
    "purchase100": ((600,), 100, "mlp_tanh"),
    "texas100": ((6169,), 100, "mlp_tanh"),
}


def test_available_datasets_and_infos():
    assert available_datasets() == sorted(EXPECTED)
    for name, (shape, classes, arch) in EXPECTED.items():
        info = get_info(name)
        assert isinstance(info, DatasetInfo) and info.name == name
        assert (info.input_shape, info.num_classes, info.architecture) == (shape, classes, arch)


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="cifar10, cifar100"):
        get_info("svhn")
    with pytest.raises(ValueError, match="Unknown dataset"):
        load_dataset("svhn")


def test_dashes_and_case_are_accepted():
    assert get_info("Fashion-MNIST").name == "fashion_mnist"


@pytest.mark.parametrize("limit", [0, -1, 2.5])
def test_bad_limit_is_refused(limit, tmp_path):
    with pytest.raises(ValueError, match="limit"):
        load_dataset("location", data_dir=tmp_path, cache_dir=tmp_path, limit=limit)


def test_import_does_not_load_tensorflow():
    # JAX backend, so a `keras` import elsewhere in keras_mi cannot pull TF in.
    code = (
        "import sys, keras_mi.data, keras_mi.data.datasets, keras_mi.data.splits;"
        "bad = [m for m in ('tensorflow', 'tensorflow_datasets', 'PIL') if m in sys.modules];"
        "assert not bad, bad"
    )
    env = dict(os.environ, KERAS_BACKEND="jax")
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_a_data_dir_that_does_not_exist_is_named(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError, match=f"Data directory {missing} .*does not exist"):
        load_dataset("location", data_dir=missing, cache_dir=tmp_path / "c")
    monkeypatch.setenv("KERAS_MI_DATA_DIR", str(missing))
    with pytest.raises(FileNotFoundError, match=r"\(\$KERAS_MI_DATA_DIR\) does not exist"):
        load_dataset("location", cache_dir=tmp_path / "c")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        load_dataset("location", data_dir=tmp_path / "a-file", cache_dir=tmp_path / "c")
