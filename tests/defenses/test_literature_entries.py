"""The relaxloss, advreg and hamp registry entries: settings, checks, builders."""

import dataclasses

import numpy as np
import pytest

from keras_mi.defenses import defense_names, get_defense
from keras_mi.defenses.literature_settings import AdvRegSettings, HAMPSettings, RelaxLossSettings
from keras_mi.experiment import ExperimentConfig, TrainingRecipe, run_experiment
from keras_mi.experiment.train import train_keras_defense


def _data(n, seed, d=8, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = np.digitize(x[:, 0] + 0.5 * rng.normal(size=n), [-0.5, 0.5]).astype(np.int64)
    return x, y


def test_registered_after_the_builtins():
    names = defense_names()
    assert names[:5] == ("none", "mixup", "mmd", "mmd+mixup", "dpsgd")
    assert {"relaxloss", "advreg", "hamp"} <= set(names)
    assert get_defense("advreg").needs_reference and not get_defense("hamp").needs_reference


def test_authors_defaults_by_kind_of_data():
    assert RelaxLossSettings().resolved("location") == (0.8, 0.3, "tabular")
    assert RelaxLossSettings().resolved("cifar10") == (1.0, 1.0, "image")
    assert RelaxLossSettings(alpha=2.0).resolved("cifar10") == (2.0, 1.0, "image")
    assert AdvRegSettings().resolved("location") == 10.0
    assert AdvRegSettings().resolved("cifar10") == 6.0
    assert HAMPSettings().resolved("location") == (0.5, 0.001, "bernoulli")
    assert HAMPSettings().resolved("cifar10") == (0.95, 0.001, "uniform")


@pytest.mark.parametrize("section, values, message", [
    ("relaxloss", {"alpha": 0.0}, "relaxloss.alpha must lie in (0, 20]"),
    ("relaxloss", {"alpha": float("nan")}, "relaxloss.alpha must lie in (0, 20]"),
    ("relaxloss", {"upper": 1.2}, "relaxloss.upper must lie in (0, 1]"),
    ("relaxloss", {"variant": "cifar"}, "relaxloss.variant must be"),
    ("advreg", {"weight": -1.0}, "advreg.weight must lie in [0, 100]"),
    ("advreg", {"attack_weight": 0.0}, "advreg.attack_weight must lie in (0, 100]"),
    ("advreg", {"warmup_epochs": -1}, "advreg.warmup_epochs must be an int"),
    ("hamp", {"gamma": 1.0}, "hamp.gamma must lie in (0, 1)"),
    ("hamp", {"alpha": -0.5}, "hamp.alpha must lie in [0, 10]"),
    ("hamp", {"sampler": "gauss"}, "hamp.sampler must be"),
])
def test_out_of_range_settings_fail_before_anything_is_written(tmp_path, section, values,
                                                               message):
    cfg = ExperimentConfig(dataset="synthetic", defenses=["none", section])
    setattr(cfg, section, dataclasses.replace(getattr(cfg, section), **values))
    out = tmp_path / "run"
    with pytest.raises(ValueError) as err:
        run_experiment(cfg, out, data=_data(400, 0), verbose=0)
    assert message in str(err.value)
    assert not out.exists()


def test_relaxloss_upper_is_checked_against_the_classes(tmp_path):
    cfg = ExperimentConfig(dataset="synthetic", defenses=["relaxloss"])
    cfg.relaxloss = RelaxLossSettings(upper=0.3)  # 3 classes: 1/K = 0.333
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="must exceed 1/K"):
        run_experiment(cfg, out, data=_data(400, 0), verbose=0)
    assert not out.exists()


def test_config_sections_read_back():
    cfg = ExperimentConfig.from_dict({"defenses": ["hamp"], "hamp": {"gamma": 0.8},
                                      "advreg": {"weight": 3.0}})
    assert cfg.hamp.gamma == 0.8 and cfg.advreg.weight == 3.0 and cfg.relaxloss.alpha is None
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", ["relaxloss", "advreg", "hamp"])
def test_each_entry_trains_through_the_experiment_trainer(name):
    from keras_mi.defenses.hamp_outputs import HAMPOutputs

    x, y = _data(48, seed=1)
    ref = _data(24, seed=2)
    cfg = ExperimentConfig(dataset="location", training=TrainingRecipe(epochs=2, batch_size=16))
    cfg.relaxloss = RelaxLossSettings(upper=0.5)  # Location's 0.3 needs K > 3.3
    trained = train_keras_defense(name, cfg, {"train": (x, y), "reference": ref}, (8,), 3,
                                  "linear", seed=0)
    out = trained.model.predict(x, verbose=0)
    assert out.shape == (48, 3) and np.isfinite(out).all()
    if name == "hamp":
        # The model saved and attacked modifies its outputs (ranking kept).
        assert isinstance(trained.model, HAMPOutputs)
        plain = trained.model.model.predict(x, verbose=0)
        np.testing.assert_array_equal(np.argsort(out, 1), np.argsort(plain, 1))
        assert np.abs(out - plain).max() > 1e-3
    else:
        assert not isinstance(trained.model, HAMPOutputs)
