"""bench/frontier_location.py's spec parser: overrides, list values, per-defense keys."""


import pytest
from _bench_module import load_bench_module


@pytest.fixture(scope="module")
def frontier():
    return load_bench_module("frontier_location")


def test_list_values_keep_their_commas(frontier):
    assert frontier.parse_spec("m=mmd,mmd_sigma=[0.05,0.1],mmd_weight=2") == (
        "m", "mmd", {"mmd_sigma": "[0.05,0.1]", "mmd_weight": "2"})


def test_per_defense_keys_split_at_their_commas(frontier):
    label, defense, overrides = frontier.parse_spec(
        "imq=mmd+early_stopping,per_defense.mmd+early_stopping.mmd_kernel=imq,"
        "per_defense.mmd+early_stopping.mmd_sigma=[0.1],per_defense.dpsgd:8.dpsgd.epochs=9")
    assert (label, defense) == ("imq", "mmd+early_stopping")
    assert overrides == {"per_defense.mmd+early_stopping.mmd_kernel": "imq",
                         "per_defense.mmd+early_stopping.mmd_sigma": "[0.1]",
                         "per_defense.dpsgd:8.dpsgd.epochs": "9"}


def test_per_defense_override_reaches_the_defense_config(frontier):
    args = type("Args", (), {"bank": 4, "data_dir": None, "quick": False})()
    _, defense, overrides = frontier.parse_spec(
        "imq=mmd+early_stopping,per_defense.mmd+early_stopping.mmd_kernel=imq,"
        "per_defense.mmd+early_stopping.mmd_weight=3")
    config = frontier.config_for(args, 1, defense, overrides)
    config.validate()
    own = config.for_defense(defense)
    # the override beside the preset's own per-defense values (batch 512)
    assert (own.mmd_kernel, own.mmd_weight, own.training.batch_size) == ("imq", 3.0, 512)
    assert config.for_defense("mmd").mmd_kernel == "gaussian"


@pytest.mark.parametrize("text", ["nolabel", "=mmd", "label="])
def test_malformed_specs_are_refused(frontier, text):
    import argparse
    with pytest.raises(argparse.ArgumentTypeError):
        frontier.parse_spec(text)
