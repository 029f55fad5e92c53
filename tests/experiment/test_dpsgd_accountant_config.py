"""dpsgd.accountant: the accountant that calibrates the DP-SGD defense's noise to ε."""

import numpy as np
import pytest
from _experiment_data import three_class

from keras_mi.baselines.accounting import noise_multiplier_for_epsilon
from keras_mi.defenses import dpsgd as dpsgd_defense
from keras_mi.experiment import DPSGDSettings, ExperimentConfig, SplitSizes, TrainingRecipe
from keras_mi.experiment.config import identity_dict


def test_unknown_accountant_is_refused():
    with pytest.raises(ValueError, match="dpsgd.accountant 'moments' is not one of rdp, pld"):
        ExperimentConfig().with_overrides({"dpsgd.accountant": "moments"}).validate()


def test_rdp_keeps_folder_identity_and_pld_changes_it():
    default = ExperimentConfig()
    assert default.dpsgd.accountant == "rdp"
    assert "accountant" not in identity_dict(default)["dpsgd"]  # old hashes unchanged
    pld = default.with_overrides({"dpsgd.accountant": "pld"})
    pld.validate()
    assert identity_dict(pld)["dpsgd"]["accountant"] == "pld"
    assert pld.fingerprint() != default.fingerprint()


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_data_check_calibrates_with_the_chosen_accountant(accountant, monkeypatch):
    seen = []
    real = noise_multiplier_for_epsilon

    def recording(*args, **kwargs):
        seen.append(args[5] if len(args) > 5 else kwargs.get("accountant"))
        return real(*args, **kwargs)

    monkeypatch.setattr("keras_mi.baselines.accounting.noise_multiplier_for_epsilon", recording)
    cfg = ExperimentConfig(split=SplitSizes(members=200, non_members=200, reference=50,
                                            test=50, shadow=0),
                           dpsgd=DPSGDSettings(epsilon=2.0, accountant=accountant))
    facts = type("Facts", (), {"input_shape": (8,), "num_classes": 3})()
    assert dpsgd_defense.check_data(cfg, facts, None) == []
    assert seen == [accountant]


@pytest.mark.slow
def test_keras_jax_defense_calibrates_noise_with_pld(tmp_path, monkeypatch):
    """The child's noise is PLD's, smaller than RDP's at the same ε, and ε is met."""
    pytest.importorskip("jax")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    x, y = three_class(240, seed=3)
    splits = {"members": (x[:80], y[:80]), "non_members": (x[80:160], y[80:160]),
              "reference": (x[160:200], y[160:200]), "test": (x[200:], y[200:])}
    cfg = ExperimentConfig(
        dataset="synthetic", architecture="linear",
        split=SplitSizes(members=80, non_members=80, reference=40, test=40, shadow=0),
        training=TrainingRecipe(epochs=3, batch_size=40),
        dpsgd=DPSGDSettings(epsilon=3.0, delta=1e-3, implementation="keras_jax",
                            accountant="pld", learning_rate=0.5))
    cfg.validate()
    outputs, extras = dpsgd_defense.train_outputs(
        cfg, {"eval": splits, "work_dir": str(tmp_path)}, (8,), 3, "linear", seed=0, verbose=0,
        argument=None)
    steps = 3 * (80 // 40)
    want = noise_multiplier_for_epsilon(3.0, 80, 40, 3, 1e-3, "pld", steps=steps)
    rdp = noise_multiplier_for_epsilon(3.0, 80, 40, 3, 1e-3, "rdp", steps=steps)
    assert extras["accountant"] == "pld"
    assert extras["noise_multiplier"] == pytest.approx(want, rel=1e-6)
    assert extras["noise_multiplier"] < rdp
    assert extras["epsilon"] <= 3.0 + 1e-6
    assert outputs.logits["members"].shape == (80, 3)
    assert np.all(np.isfinite(outputs.logits["members"]))
