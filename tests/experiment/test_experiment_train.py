"""The shared training recipe: optimizer, step schedule, augmentation, seeds."""

import numpy as np
import pytest

from keras_mi.experiment import ExperimentConfig, SplitSizes, TrainingRecipe
from keras_mi.experiment.train import make_optimizer, model_seed, train_keras_defense


def test_step_schedule_divides_at_the_epoch_boundaries():
    recipe = TrainingRecipe(optimizer="sgd", learning_rate=0.01, momentum=0.9,
                            weight_decay=1e-5, lr_schedule="step", lr_boundaries=[80, 120],
                            lr_factor=0.1)
    opt = make_optimizer(recipe, steps_per_epoch=100)
    schedule = opt.learning_rate if callable(opt.learning_rate) else opt._learning_rate
    got = [float(schedule(step)) for step in (0, 7999, 8001, 11999, 12001, 20000)]
    np.testing.assert_allclose(got, [0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001], rtol=1e-6)
    assert float(opt.momentum) == pytest.approx(0.9)
    assert float(opt.weight_decay) == pytest.approx(1e-5)


def test_model_seed_depends_on_seed_and_tag_only():
    seeds = {model_seed(s, t) for s in (0, 1) for t in ("none", "mixup", "mmd+mixup")}
    assert len(seeds) == 6
    assert model_seed(5, "none") == model_seed(5, "none")


@pytest.mark.slow
def test_crop_flip_augmentation_trains_images_and_returns_the_plain_model():
    rng = np.random.default_rng(0)
    x = rng.random((64, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 3, 64)
    cfg = ExperimentConfig(
        split=SplitSizes(members=64), architecture="small_cnn",
        training=TrainingRecipe(epochs=1, batch_size=16, augmentation="crop_flip"))
    a = train_keras_defense("mmd+mixup", cfg, {"train": (x, y), "reference": (x, y)},
                            (32, 32, 3), 3, "small_cnn", seed=1).model
    b = train_keras_defense("mmd+mixup", cfg, {"train": (x, y), "reference": (x, y)},
                            (32, 32, 3), 3, "small_cnn", seed=1).model
    # The saved model is the bare classifier (no augmentation, no MMD wrapper) ...
    assert a.input_shape == (None, 32, 32, 3) and a.output_shape == (None, 3)
    assert not any("random" in layer.name for layer in a.layers)
    # ... and the same seed trains the same weights.
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_crop_flip_wrapper_is_the_plain_model_at_inference():
    from keras_mi.experiment.train import _with_augmentation
    from keras_mi.models import build_model

    model = build_model("small_cnn", (32, 32, 3), 3, seed=0)
    wrapper = _with_augmentation(model, (32, 32, 3), seed=1)
    x = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(wrapper(x, training=False)),
                                  np.asarray(model(x, training=False)))
    trained = np.asarray(wrapper(x, training=True))
    assert trained.shape == (4, 3) and not np.allclose(trained, np.asarray(model(x)))
