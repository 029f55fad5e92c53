"""The new defenses through the main job: ``run_experiment`` and ``keras-mi evaluate``."""

import json

import keras
import numpy as np
import pytest

from keras_mi import cli
from keras_mi.experiment import ExperimentConfig, SplitSizes, TrainingRecipe, run_experiment
from keras_mi.experiment.train import model_seed, train_keras_defense
from keras_mi.outputs import ModelOutputs


def _pool(n=500, d=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    w = rng.normal(size=(d, classes))
    y = np.argmax(x @ w + rng.normal(size=(n, classes)), axis=1).astype(np.int64)
    return x, y


@pytest.mark.slow
def test_run_experiment_trains_two_new_defenses_as_the_trainer_does(tmp_path):
    pool = _pool()
    cfg = ExperimentConfig(
        dataset="synthetic",
        split=SplitSizes(members=100, non_members=100, reference=100, test=100, shadow=0),
        architecture="linear", training=TrainingRecipe(epochs=3, batch_size=20),
        defenses=["confidence_penalty", "early_stopping"], attacks=["loss", "confidence"],
        seed=2).with_overrides({"confidence_penalty.beta": 0.5,
                                "early_stopping.patience": 1})
    out = tmp_path / "run"
    report = run_experiment(cfg, out, data=pool, verbose=0)
    assert list(report["defenses"]) == ["confidence_penalty", "early_stopping"]
    from keras_mi.experiment.steps import plan_split

    split = plan_split(cfg, *pool)
    roles = {r: (pool[0][getattr(split, r)], pool[1][getattr(split, r)])
             for r in ("members", "reference")}
    for defense in cfg.defenses:
        row = report["defenses"][defense]
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert row["strongest_attack"]["name"] in ("loss", "confidence")
        # The run's target is exactly the model the trainer builds for this
        # defense and seed (settings from the config sections were applied).
        direct = train_keras_defense(defense, cfg, {"train": roles["members"],
                                                    "reference": roles["reference"]},
                                     (8,), 3, "linear", model_seed(cfg.seed, defense)).model
        saved = keras.saving.load_model(out / "models" / f"{defense}.keras")
        for a, b in zip(saved.get_weights(), direct.get_weights()):
            np.testing.assert_array_equal(a, b)
        outputs = ModelOutputs.load_npz(out / "outputs" / f"{defense}.npz")
        np.testing.assert_allclose(outputs.logits["members"],
                                   direct.predict(roles["members"][0], verbose=0), atol=1e-5)
    # beta changed the target: another beta trains other weights.
    other = train_keras_defense("confidence_penalty", cfg.with_overrides(
        {"confidence_penalty.beta": 2.0}), {"train": roles["members"]}, (8,), 3, "linear",
        model_seed(cfg.seed, "confidence_penalty")).model
    saved = keras.saving.load_model(out / "models" / "confidence_penalty.keras")
    assert not np.array_equal(other.get_weights()[0], saved.get_weights()[0])


def test_cli_accepts_the_new_defense_names_and_their_settings(capsys):
    code = cli.main(["evaluate", "--defenses", "none", "label_smoothing", "confidence_penalty",
                     "early_stopping", "mmd+mixup", "--set", "confidence_penalty.beta=0.3",
                     "--set", "early_stopping.patience=3", "--print-config"])
    cfg = json.loads(capsys.readouterr().out)
    assert code == 0
    assert cfg["defenses"] == ["none", "label_smoothing", "confidence_penalty",
                               "early_stopping", "mmd+mixup"]
    assert cfg["confidence_penalty"]["beta"] == 0.3 and cfg["early_stopping"]["patience"] == 3
    assert cfg["label_smoothing"]["epsilon"] == 0.1  # the default


def test_cli_refuses_an_out_of_range_setting_before_any_work(capsys, tmp_path):
    out = tmp_path / "out"
    code = cli.main(["evaluate", "--defenses", "label_smoothing", "--set",
                     "label_smoothing.epsilon=1.5", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert "label_smoothing.epsilon must lie in (0, 1); got 1.5" in err
    assert not out.exists()


@pytest.mark.slow
def test_keras_mi_evaluate_runs_the_new_defenses_on_location(capsys, tmp_path, data_dir):
    out = tmp_path / "loc"
    code = cli.main(["evaluate", "--defenses", "none", "label_smoothing", "confidence_penalty",
                     "early_stopping", "mmd+mixup", "--attacks", "loss", "--epochs", "1",
                     "--data-dir", str(data_dir), "--set", "split.members=100",
                     "--set", "split.non_members=100", "--set", "split.reference=100",
                     "--set", "split.test=100", "--set", "split.shadow=0",
                     "--set", "num_shadow_models=0", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert list(report["defenses"]) == ["none", "label_smoothing", "confidence_penalty",
                                        "early_stopping", "mmd+mixup"]
    md = (out / "report.md").read_text()
    assert all(f"| {d} |" in md for d in report["defenses"])
