"""``per_defense``: one defense's own values, shared data and protocol."""

import json

import numpy as np
import pytest

from keras_mi import cli
from keras_mi.experiment import (
    DPSGDSettings,
    ExperimentConfig,
    SplitSizes,
    TrainingRecipe,
    get_preset,
)
from keras_mi.experiment.steps import bank_recipe


def test_location_preset_gives_each_defense_its_held_out_choice():
    cfg = get_preset("location")
    cfg.validate()
    assert "mmd+early_stopping" in cfg.defenses
    es = cfg.for_defense("mmd+early_stopping")
    assert (es.mmd_weight, es.training.batch_size, es.training.epochs) == (4.0, 512, 120)
    assert (cfg.training.batch_size, cfg.training.epochs) == (128, 30)
    # The other MMD entries keep the shared value, and so do the other budgets.
    assert cfg.for_defense("mmd").mmd_weight == cfg.for_defense("mmd+mixup").mmd_weight == 1.0
    dps = [cfg.for_defense(d).dpsgd for d in ("dpsgd", "dpsgd:1", "dpsgd:8")]
    assert [(d.learning_rate, d.batch_size, d.epochs) for d in dps] == [
        (8.0, "full", 25), (1.0, 500, 25), (8.0, "full", 50)]
    assert {d.accountant for d in dps} == {"pld"}
    # A defense's config carries no per_defense of its own: applying it twice is a no-op.
    own = cfg.for_defense("mmd+early_stopping")
    assert own.per_defense == {}
    assert own.for_defense("mmd+early_stopping").to_dict() == own.to_dict()
    # The shared fields stay shared.
    assert own.split == cfg.split and own.seed == cfg.seed and own.bank == cfg.bank


def test_dotted_set_reaches_one_defense():
    cfg = ExperimentConfig(defenses=["none", "mmd"]).with_overrides(
        {"per_defense.mmd.mmd_sigma": "[0.05, 0.1]", "per_defense.mmd.training.epochs": "7",
         "per_defense.dpsgd:8.dpsgd.learning_rate": "8"})
    assert cfg.per_defense == {"mmd": {"mmd_sigma": [0.05, 0.1], "training.epochs": 7},
                               "dpsgd:8": {"dpsgd.learning_rate": 8}}
    mmd = cfg.for_defense("mmd")
    assert (mmd.mmd_sigma, mmd.training.epochs) == ([0.05, 0.1], 7)
    assert (cfg.for_defense("none").mmd_sigma, cfg.for_defense("none").training.epochs) == (
        1.0, cfg.training.epochs)
    # Round trip through JSON keeps them.
    again = ExperimentConfig.from_dict(json.loads(cfg.to_json()))
    assert again.for_defense("dpsgd:8").dpsgd.learning_rate == 8.0


def test_a_shared_key_a_defense_sets_for_itself_warns():
    cfg = get_preset("location")
    with pytest.warns(UserWarning, match=r"training.epochs is set for every defense, but "
                                         r"per_defense keeps its own value for "
                                         r"mmd\+early_stopping \(120\)"):
        short = cfg.with_overrides({"training.epochs": 5})
    assert short.for_defense("mmd").training.epochs == 5
    assert short.for_defense("mmd+early_stopping").training.epochs == 120
    both = short.with_overrides({"per_defense.mmd+early_stopping.training.epochs": 20})
    assert both.for_defense("mmd+early_stopping").training.epochs == 20
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg.with_overrides({"mixup_alpha": 0.5})  # no defense sets it for itself
        # mmd+early_stopping is not compared: its own epochs are beside the point.
        cfg.with_overrides({"defenses": ["none", "mmd"], "training.epochs": 5})


@pytest.mark.parametrize("per_defense, message", [
    ({"mmd+early": {"mmd_weight": 2}}, r"per_defense.mmd\+early: Unknown defense 'mmd\+early'"),
    ({"mmd": {"seed": 3}}, r"per_defense.mmd sets \['seed'\], which every defense"),
    ({"mmd": {"split.members": 10}}, r"per_defense.mmd sets \['split.members'\]"),
    ({"mmd": {"mmd_weight": -1}}, "per_defense.mmd: mixup_alpha must be positive, mmd_weight "
                                  "non-negative"),
    ({"mmd": {"mmd_weight": "heavy"}}, "per_defense.mmd: config.mmd_weight must be float"),
    ({"mmd": {"nope": 1}}, "per_defense.mmd: Unknown config key 'nope'"),
    ({"mmd+early_stopping": {"early_stopping.patience": -1}},
     r"per_defense.mmd\+early_stopping: early_stopping.patience must lie in 0..1000"),
])
def test_bad_per_defense_values_are_refused(per_defense, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(defenses=["none", "mmd", "mmd+early_stopping"],
                         per_defense=per_defense).validate()


def test_an_entry_of_a_defense_not_trained_is_checked_for_keys_not_values():
    # dpsgd:1's own batch of 500 does not split into 7 microbatches, but only
    # dpsgd trains: its batch of 49 does, so the run is valid.
    cfg = ExperimentConfig(defenses=["dpsgd"], per_defense={"dpsgd:1": {"dpsgd.batch_size": 500}},
                           dpsgd=DPSGDSettings(batch_size=49, num_microbatches=7))
    cfg.validate()
    listed = cfg.with_overrides({"defenses": ["dpsgd", "dpsgd:1"]})
    with pytest.raises(ValueError, match=r"per_defense.dpsgd:1: dpsgd.num_microbatches \(7\)"):
        listed.validate()
    for entry, message in (({"nope": 1}, "Unknown config key 'nope'"),
                           ({"mmd_weight": "heavy"}, "config.mmd_weight must be float")):
        with pytest.raises(ValueError, match=message):
            ExperimentConfig(defenses=["none"], per_defense={"mmd": entry}).validate()


def test_a_shared_error_is_listed_once_not_again_per_defense():
    cfg = ExperimentConfig(defenses=["none", "mmd"], mixup_alpha=-1.0,
                           per_defense={"mmd": {"training.epochs": 0}})
    with pytest.raises(ValueError) as err:
        cfg.validate()
    lines = str(err.value).splitlines()[1:]
    assert lines.count("  - mixup_alpha must be positive, mmd_weight non-negative.") == 1
    assert not any(line.startswith("  - per_defense.mmd: mixup_alpha") for line in lines)
    assert "  - per_defense.mmd: training.epochs, batch_size and learning_rate must be " \
           "positive." in lines


@pytest.mark.parametrize("value", [{"mmd": 2}, ["mmd"], {"mmd": {3: 1}}])
def test_per_defense_must_be_a_mapping_of_mappings(value):
    with pytest.raises(ValueError, match="per_defense must map defense names to mappings"):
        ExperimentConfig.from_dict({"per_defense": value})


def test_identity_counts_per_defense_values_of_listed_defenses_only():
    base = ExperimentConfig(defenses=["none", "mmd"])
    unlisted = ExperimentConfig(defenses=["none", "mmd"],
                                per_defense={"mmd+mixup": {"mmd_weight": 2.0}})
    listed = ExperimentConfig(defenses=["none", "mmd"], per_defense={"mmd": {"mmd_weight": 2.0}})
    assert unlisted.fingerprint() == base.fingerprint()
    assert listed.fingerprint() != base.fingerprint()
    # A bank is labelled by the recipe its defense trains with, wherever the value is set.
    shared = ExperimentConfig(defenses=["none", "mmd"], mmd_weight=2.0)
    assert bank_recipe(listed, "mmd") == bank_recipe(shared, "mmd")
    assert bank_recipe(listed, "mmd") != bank_recipe(base, "mmd")
    assert bank_recipe(listed, "none") == bank_recipe(base, "none")


def test_a_defense_trains_with_its_own_value():
    from keras_mi.experiment.train import train_keras_defense

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 12)).astype("float32")
    y = rng.integers(0, 3, 96)
    data = {"train": (x[:64], y[:64]), "reference": (x[64:], y[64:])}
    recipe = TrainingRecipe(optimizer="adam", learning_rate=1e-2, epochs=2, batch_size=32)

    def weights(cfg):
        model = train_keras_defense("mmd", cfg, data, (12,), 3, "mlp_tanh", seed=3).model
        return model.get_weights()

    common = dict(split=SplitSizes(members=64, reference=32), training=recipe,
                  defenses=["none", "mmd"], mmd_sigma=0.5)
    own = weights(ExperimentConfig(**common, mmd_weight=0.1,
                                   per_defense={"mmd": {"mmd_weight": 20.0}}))
    shared = weights(ExperimentConfig(**common, mmd_weight=20.0))
    plain = weights(ExperimentConfig(**common, mmd_weight=0.1))
    for a, b in zip(own, shared):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert max(float(np.abs(a - b).max()) for a, b in zip(own, plain)) > 1e-4


def _run(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prints_and_refuses_per_defense_values(capsys, tmp_path):
    code, out, _ = _run(capsys, "evaluate", "--defenses", "none", "mmd", "--set",
                        "per_defense.mmd.mmd_weight=4", "--print-config")
    assert code == 0
    assert json.loads(out)["per_defense"]["mmd"] == {"mmd_weight": 4}
    for setting, message in [("per_defense.mmd.mmd_weight=-1", "per_defense.mmd: mixup_alpha"),
                             ("per_defense.mmd.seed=2", "per_defense.mmd sets ['seed']")]:
        out_dir = tmp_path / "out"
        code, _, err = _run(capsys, "evaluate", "--out", str(out_dir), "--defenses", "none",
                            "mmd", "--set", setting)
        assert code == cli.EXIT_BAD_INPUT and message in err
        assert not out_dir.exists()


def test_crop_flip_for_one_defense_is_checked_against_the_data(capsys, tmp_path, data_dir):
    out_dir = tmp_path / "o"
    code, _, err = _run(capsys, "evaluate", "--out", str(out_dir), "--data-dir", str(data_dir),
                        "--defenses", "none", "mmd", "--set",
                        "per_defense.mmd.training.augmentation=crop_flip")
    assert code == cli.EXIT_BAD_INPUT
    assert "training.augmentation 'crop_flip' (for mmd) needs images" in err
    assert not (out_dir / "config.json").exists()
