"""Config: round trips, overrides, validation, fingerprint, presets."""

import json

import pytest

from keras_mi.experiment import (
    ExperimentConfig,
    SplitSizes,
    TrainingRecipe,
    available_presets,
    get_preset,
    parse_defense,
)


def test_json_and_yaml_round_trip(tmp_path):
    cfg = ExperimentConfig(dataset="location", split=SplitSizes(members=10, non_members=10),
                           training=TrainingRecipe(epochs=3, lr_boundaries=[1, 2]),
                           defenses=["none", "dpsgd:2"], attacks=["loss"], seed=7)
    (tmp_path / "c.json").write_text(cfg.to_json())
    assert ExperimentConfig.load(tmp_path / "c.json") == cfg
    yaml_text = ("dataset: location\nseed: 7\ntraining:\n  epochs: 3\n  lr_boundaries: [1, 2]\n"
                 "defenses: [none, 'dpsgd:2']\n")
    (tmp_path / "c.yaml").write_text(yaml_text)
    loaded = ExperimentConfig.load(tmp_path / "c.yaml")
    assert loaded.training.epochs == 3 and loaded.training.lr_boundaries == [1, 2]
    assert loaded.defenses == ["none", "dpsgd:2"]
    # Unset fields keep their defaults.
    assert loaded.training.batch_size == TrainingRecipe().batch_size


def test_overrides_parse_command_line_strings():
    cfg = ExperimentConfig().with_overrides({
        "training.epochs": "5", "training.learning_rate": "0.5", "defenses": "[none, mixup]",
        "attacks": "null", "split.members": 12, "training.lr_boundaries": "[3, 4]"})
    assert cfg.training.epochs == 5 and cfg.training.learning_rate == 0.5
    assert cfg.defenses == ["none", "mixup"] and cfg.attacks is None
    assert cfg.split.members == 12 and cfg.training.lr_boundaries == [3, 4]


@pytest.mark.parametrize("overrides, message", [
    ({"training.epoch": 3}, "Unknown config key 'training.epoch'"),
    ({"seed": "abc"}, "seed must be int"),
    ({"split.members": "1.5"}, "members must be int"),
])
def test_bad_overrides_name_the_problem(overrides, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig().with_overrides(overrides)


def test_unknown_file_keys_list_valid_ones(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"dataset": "location", "epochs": 3}))
    with pytest.raises(ValueError, match=r"Unknown key\(s\) \['epochs'\].*valid keys: dataset"):
        ExperimentConfig.load(tmp_path / "c.json")
    with pytest.raises(FileNotFoundError):
        ExperimentConfig.load(tmp_path / "missing.yaml")


def test_validate_lists_every_problem():
    cfg = ExperimentConfig(defenses=["none", "nope", "dpsgd:-1", "mixup:3"],
                           training=TrainingRecipe(optimizer="rmsprop"))
    with pytest.raises(ValueError) as err:
        cfg.validate()
    text = str(err.value)
    assert "Unknown defense 'nope'" in text and "none, mixup, mmd, mmd+mixup, dpsgd" in text
    assert "dpsgd:-1" in text and "mixup:3" in text and "rmsprop" in text


def test_parse_defense():
    assert parse_defense("dpsgd") == ("dpsgd", None)
    assert parse_defense("dpsgd:0.5") == ("dpsgd", 0.5)
    with pytest.raises(ValueError):
        parse_defense("dpsgd:abc")


def test_fingerprint_ignores_data_location_only():
    a = ExperimentConfig()
    assert a.fingerprint() == ExperimentConfig(data_dir="/elsewhere").fingerprint()
    assert a.fingerprint() != a.with_overrides({"training.epochs": 31}).fingerprint()
    assert a.fingerprint() != a.with_overrides({"seed": 1}).fingerprint()


def test_presets_follow_the_paper_and_validate():
    assert set(available_presets()) >= {"location", "paper-cifar10", "paper-cifar100",
                                        "paper-purchase100", "paper-texas100"}
    for name in available_presets():
        get_preset(name).validate()
    c10 = get_preset("paper-cifar10")
    t = c10.training
    assert (c10.architecture, c10.split.members, t.optimizer, t.learning_rate, t.momentum,
            t.weight_decay, t.batch_size, t.epochs, t.lr_boundaries, t.augmentation,
            c10.mmd_weight, c10.mixup_alpha) == (
        "alexnet", 10000, "sgd", 0.01, 0.9, 1e-5, 100, 160, [80, 120], "crop_flip", 3.0, 1.0)
    # Presets are fresh objects: editing one does not leak into the next.
    c10.training.epochs = 1
    assert get_preset("paper-cifar10").training.epochs == 160
    with pytest.raises(ValueError, match="valid presets: location"):
        get_preset("paper-mnist")


def test_cifar10_cpu_preset_is_the_paper_recipe_at_bank_scale():
    cpu, paper = get_preset("cifar10-cpu"), get_preset("paper-cifar10")
    t, p = cpu.training, paper.training
    # The paper's optimizer and augmentation; only the scale and the schedule differ.
    assert (t.optimizer, t.learning_rate, t.momentum, t.weight_decay, t.augmentation) == (
        p.optimizer, p.learning_rate, p.momentum, p.weight_decay, p.augmentation)
    assert (t.epochs, t.batch_size, t.lr_boundaries) == (150, 32, [75, 112])
    assert (cpu.split.members, cpu.split.non_members, cpu.split.reference, cpu.split.test,
            cpu.split.shadow, cpu.num_shadow_models, cpu.bank.size) == (500, 500, 500, 1000,
                                                                         0, 0, 8)
    assert (cpu.mmd_weight, cpu.mmd_sigma) == (1.0, 0.1)
    assert (cpu.dpsgd.architecture, cpu.dpsgd.batch_size, cpu.dpsgd.implementation,
            cpu.dpsgd.epsilon) == ("linear", "full", "keras_jax", 8.0)
    # Built from a fresh paper preset: editing it leaks into neither.
    cpu.training.lr_boundaries.append(140)
    assert get_preset("paper-cifar10").training.lr_boundaries == [80, 120]
    assert get_preset("cifar10-cpu").training.lr_boundaries == [75, 112]


@pytest.mark.parametrize("overrides, message", [
    ({"mmd_per_class": "yes please"}, "mmd_per_class must be true or false"),
    ({"bank.non_adaptive": 1}, "non_adaptive must be true or false"),
    ({"training.learning_rate": float("nan")}, "learning_rate must be a finite number"),
    ({"dpsgd.epsilon": float("inf")}, "epsilon must be a finite number"),
    ({"training.lr_boundaries": [1.5]}, r"lr_boundaries\[0\] must be int"),
    ({"attacks": ["loss", 3]}, r"attacks\[1\] must be str"),
])
def test_fields_are_typed_and_finite(overrides, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig().with_overrides(overrides)


@pytest.mark.parametrize("overrides, message", [
    ({"training.momentum": 1.0}, r"training.momentum must lie in \[0, 1\)"),
    ({"training.momentum": -0.5}, r"training.momentum must lie in \[0, 1\)"),
    ({"dpsgd.momentum": 1.2}, r"dpsgd.momentum must lie in \[0, 1\)"),
    ({"training.weight_decay": -1e-5}, "weight_decay must lie"),
    ({"training.lr_factor": 10.0}, r"lr_factor .* must lie in \(0, 1\]"),
    ({"training.lr_schedule": "step", "training.lr_boundaries": [0, 3]}, "distinct epochs >= 1"),
    ({"training.lr_schedule": "step"}, "needs training.lr_boundaries"),
    ({"training.lr_boundaries": [5]}, "only apply with training.lr_schedule 'step'"),
    ({"seed": -3}, r"seed must lie in \[0, 2\*\*32\)"),
    ({"split.reference": 0}, "split.reference must be at least 1"),
    ({"num_shadow_models": -1}, "num_shadow_models must not be negative"),
    ({"dpsgd.epsilon": -1.0}, "dpsgd.epsilon must be positive"),
    ({"dpsgd.delta": 0.01, "split.members": 1000}, r"dpsgd.delta must lie in \(0, 1/members\)"),
    ({"dpsgd.l2_norm_clip": 0.0}, "l2_norm_clip must be positive"),
    ({"dpsgd.num_microbatches": 5, "training.batch_size": 64}, "positive divisor"),
    ({"dpsgd.epochs": 0}, "dpsgd.epochs must be at least 1"),
    ({"attacks": ["loss", "loss"]}, "attacks lists a name twice"),
])
def test_fields_are_bounded(overrides, message):
    cfg = ExperimentConfig().with_overrides(overrides)
    with pytest.raises(ValueError, match=message):
        cfg.validate()


def test_config_file_with_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: location\ntraining:\n  epochs: [3\n")
    with pytest.raises(ValueError, match=r"run.yaml is not valid YAML: .*line 4"):
        ExperimentConfig.load(path)
