"""The mmd entry passes the config's kernel and statistic to MMDModel; bad names are refused."""

import keras
import numpy as np
import pytest

from keras_mi.defenses import get_defense
from keras_mi.experiment import ExperimentConfig


def test_kernel_and_statistic_reach_the_model():
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    y = np.arange(40) % 2
    cfg = ExperimentConfig(defenses=["mmd"], mmd_kernel="imq", mmd_statistic="log_odds",
                           mmd_sigma=2.0)
    cfg.validate()
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    plan = get_defense("mmd").build(net, cfg, {"train": (x, y), "reference": (x, y)}, 2, 0)
    assert (plan.model.kernel, plan.model.statistic, plan.model.sigma) == ("imq", "log_odds", 2.0)
    default = get_defense("mmd").build(net, ExperimentConfig(defenses=["mmd"]),
                                       {"train": (x, y), "reference": (x, y)}, 2, 0)
    assert (default.model.kernel, default.model.statistic) == ("gaussian", "softmax")


@pytest.mark.parametrize("field, value", [("mmd_kernel", "cauchy"),
                                          ("mmd_statistic", "confidence")])
def test_bad_names_are_refused_by_validation(field, value):
    cfg = ExperimentConfig(defenses=["mmd"]).with_overrides({field: value})
    with pytest.raises(ValueError, match=field):
        cfg.validate()


def test_paper_choices_keep_the_fingerprint_and_others_change_it():
    base = ExperimentConfig(defenses=["mmd"])
    explicit = base.with_overrides({"mmd_kernel": "gaussian", "mmd_statistic": "softmax"})
    assert base.fingerprint() == explicit.fingerprint()
    assert base.fingerprint() != base.with_overrides({"mmd_kernel": "imq"}).fingerprint()


def test_a_list_of_bandwidths_is_accepted_and_bad_ones_refused():
    cfg = ExperimentConfig(defenses=["mmd"]).with_overrides({"mmd_sigma": "[0.05, 1]"})
    cfg.validate()
    assert cfg.mmd_sigma == [0.05, 1.0]
    assert ExperimentConfig.from_dict({"mmd_sigma": 1}).mmd_sigma == 1.0
    for bad in ("0", "[]", "[0.1, -1]", "abc", "true"):
        with pytest.raises(ValueError, match="mmd_sigma"):
            ExperimentConfig(defenses=["mmd"]).with_overrides({"mmd_sigma": bad}).validate()
