"""The defense registry: names, errors, user entries, and no behaviour change.

The paper's four Keras defenses, trained through their registry entries,
must end with exactly the weights of the code path they replaced (a frozen
copy of it is below), so ``make demo`` and every saved run keep their numbers.
"""

import math

import numpy as np
import pytest

from keras_mi import defenses
from keras_mi.defenses import DefenseEntry, FitPlan
from keras_mi.experiment import ExperimentConfig, SplitSizes, TrainingRecipe
from keras_mi.experiment.config import parse_defense
from keras_mi.experiment.train import (
    _with_augmentation,
    make_optimizer,
    seed_everything,
    train_defense,
    train_keras_defense,
)


def three_class(n, seed):
    """A noisy 3-class task on 8 Gaussian features (as tests/experiment/_experiment_data)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = np.digitize(x[:, 0] + 0.5 * rng.normal(size=n), [-0.5, 0.5]).astype(np.int64)
    return x, y


def _old_train_keras_defense(kind, config, data, input_shape, num_classes, architecture, seed):
    """Frozen copy of train_keras_defense before the registry (commit ce7d147)."""
    import keras

    from keras_mi import models

    recipe = config.training
    x, y = data["train"]
    seed_everything(seed)
    model = models.build_model(architecture, tuple(input_shape), num_classes, seed=seed)
    trainable = model
    if recipe.augmentation == "crop_flip":
        trainable = _with_augmentation(model, input_shape, seed)
    use_mixup = kind in ("mixup", "mmd+mixup")
    use_mmd = kind in ("mmd", "mmd+mixup")
    if use_mmd:
        from keras_mi.training import MMDModel

        trainable = MMDModel(trainable, reference=data["reference"], weight=config.mmd_weight,
                             sigma=config.mmd_sigma, schedule=config.mmd_schedule,
                             per_class=config.mmd_per_class, seed=seed)
    steps = math.ceil(len(x) / recipe.batch_size)
    if use_mixup:
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainable.compile(optimizer=make_optimizer(recipe, steps), loss=loss, metrics=["accuracy"])
    if use_mixup:
        from keras_mi.data import mixup_dataset

        dataset = mixup_dataset(x, y, num_classes=num_classes, alpha=config.mixup_alpha,
                                batch_size=recipe.batch_size, seed=seed, shuffle=True,
                                drop_remainder=len(x) % recipe.batch_size == 1)
        trainable.fit(dataset, epochs=recipe.epochs, shuffle=False, verbose=0)
    else:
        trainable.fit(x, y, batch_size=recipe.batch_size, epochs=recipe.epochs, shuffle=True,
                      verbose=0)
    return model


@pytest.mark.parametrize("defense", ["none", "mixup", "mmd", "mmd+mixup"])
def test_registry_entries_train_exactly_the_weights_of_the_old_code_path(defense):
    x, y = three_class(120, seed=0)
    ref = three_class(60, seed=1)
    # 120 % 16 == 8: the last batch is partial, as in real runs; mmd_weight 1 so
    # the MMD term moves the weights (a wrong reference would show).
    cfg = ExperimentConfig(split=SplitSizes(members=120, reference=60),
                           training=TrainingRecipe(epochs=2, batch_size=16),
                           mmd_weight=1.0, mmd_sigma=0.5)
    data = {"train": (x, y), "reference": ref}
    old = _old_train_keras_defense(defense, cfg, data, (8,), 3, "mlp_tanh", seed=7)
    new = train_keras_defense(defense, cfg, data, (8,), 3, "mlp_tanh", seed=7).model
    assert len(old.get_weights()) == len(new.get_weights()) > 0
    for a, b in zip(old.get_weights(), new.get_weights()):
        assert np.array_equal(a, b)
    # ... and the weights did move (a no-op trainer would pass the equality too).
    from keras_mi import models

    init = models.build_model("mlp_tanh", (8,), 3, seed=7).get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(init, new.get_weights()))


def test_names_errors_and_the_one_parser():
    assert defenses.defense_names()[:5] == ("none", "mixup", "mmd", "mmd+mixup", "dpsgd")
    assert {"label_smoothing", "confidence_penalty", "early_stopping"} <= set(
        defenses.defense_names())
    entry, eps = defenses.resolve_defense("dpsgd:2.5")
    assert entry.name == "dpsgd" and eps == 2.5 and entry.trains_in_subprocess
    assert entry.epsilon(ExperimentConfig(), eps) == 2.5
    assert entry.epsilon(ExperimentConfig(), None) == ExperimentConfig().dpsgd.epsilon
    assert defenses.get_defense("mmd+mixup").needs_reference
    assert defenses.get_defense("none").epsilon(ExperimentConfig()) is None
    with pytest.raises(ValueError, match=r"Unknown defense 'nope'; valid defenses: none, "
                                         r"mixup, mmd, mmd\+mixup, dpsgd"):
        defenses.get_defense("nope")
    with pytest.raises(ValueError, match="takes no argument"):
        defenses.get_defense("mixup:3")
    for bad in ("dpsgd:0", "dpsgd:-1", "dpsgd:inf", "dpsgd:abc"):
        with pytest.raises(ValueError, match="epsilon must be a positive number"):
            defenses.resolve_defense(bad)
    # The wrappers kept for one release.
    assert parse_defense("dpsgd:8") == ("dpsgd", 8.0)
    from keras_mi.experiment import DEFENSES

    assert DEFENSES == defenses.defense_names()


def test_register_refuses_duplicates_and_bad_entries():
    with pytest.raises(ValueError, match="already registered"):
        defenses.register_defense(DefenseEntry("mixup", lambda *a: None))
    with pytest.raises(ValueError, match="without ':'"):
        DefenseEntry("my:one", lambda *a: None)
    with pytest.raises(ValueError, match="needs a build"):
        DefenseEntry("no_builder")
    with pytest.raises(ValueError, match="train_outputs"):
        DefenseEntry("child", trains_in_subprocess=True)
    with pytest.raises(ValueError, match="settings and config_attr together"):
        DefenseEntry("half", lambda *a: None, settings=dict)
    with pytest.raises(ValueError, match="expects a DefenseEntry"):
        defenses.register_defense("none")


def test_a_user_entry_trains_through_the_experiment_trainer():
    import keras

    calls = []

    def build(model, config, data, num_classes, seed, argument):
        calls.append((num_classes, seed, argument, data["reference"] is not None))
        # A user's defense: plain CE with the last layer frozen.
        [layer for layer in model.layers if layer.weights][-1].trainable = False
        return FitPlan(model, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       data=data["train"])

    defenses.register_defense(DefenseEntry("frozen_first", build,
                                           validate=lambda config: ["frozen says no"]
                                           if config.seed == 99 else []))
    try:
        x, y = three_class(64, seed=2)
        cfg = ExperimentConfig(defenses=["none", "frozen_first"],
                               training=TrainingRecipe(epochs=1, batch_size=16))
        cfg.validate()
        with pytest.raises(ValueError, match="frozen says no"):
            ExperimentConfig(defenses=["frozen_first"], seed=99).validate()
        from keras_mi import models

        init = models.build_model("mlp_tanh", (8,), 3, seed=5).get_weights()
        trained = train_defense("frozen_first", cfg, {"train": (x, y), "reference": None},
                                (8,), 3, "mlp_tanh", seed=5).model
        assert calls == [(3, 5, None, False)]
        got = trained.get_weights()
        assert np.array_equal(got[-1], init[-1])  # the frozen layer kept its weights
        assert not np.array_equal(got[0], init[0])  # the others trained
    finally:
        defenses.unregister_defense("frozen_first")
    assert "frozen_first" not in defenses.defense_names()


def test_config_validation_goes_through_the_registry():
    cfg = ExperimentConfig.from_dict({
        "defenses": ["none", "nope", "mixup:3"],
        "label_smoothing": {"epsilon": 1.0}, "confidence_penalty": {"beta": 0.0},
        "early_stopping": {"patience": -1, "min_delta": -0.5}})
    with pytest.raises(ValueError) as info:
        cfg.validate()
    text = str(info.value)
    for part in ("Unknown defense 'nope'", "'mixup:3' takes no argument",
                 "label_smoothing.epsilon must lie in (0, 1); got 1.0",
                 "confidence_penalty.beta must lie in (0, 10]; got 0.0",
                 "early_stopping.patience must lie in 0..1000", "early_stopping.min_delta"):
        assert part in text, part
    with pytest.raises(ValueError, match=r"label_smoothing.epsilon must be float"):
        ExperimentConfig.from_dict({"label_smoothing": {"epsilon": "big"}})
    with pytest.raises(ValueError, match="Unknown key"):
        ExperimentConfig.from_dict({"early_stopping": {"patients": 3}})


def test_unused_defense_sections_leave_the_fingerprint_alone():
    base = ExperimentConfig(defenses=["none", "mixup"])
    other = base.with_overrides({"label_smoothing.epsilon": 0.2})
    assert base.fingerprint() == other.fingerprint()
    used = ExperimentConfig(defenses=["none", "label_smoothing"])
    assert used.fingerprint() != used.with_overrides({"label_smoothing.epsilon": 0.2}).fingerprint()
    from keras_mi.experiment.steps import bank_recipe

    assert bank_recipe(used, "label_smoothing") != bank_recipe(
        used.with_overrides({"label_smoothing.epsilon": 0.2}), "label_smoothing")
    assert bank_recipe(base, "mixup") == bank_recipe(other, "mixup")
