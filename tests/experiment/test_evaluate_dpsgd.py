"""The DP-SGD defense inside keras-mi evaluate (TF-Privacy in a child process)."""

import json

import numpy as np
import pytest

from keras_mi.experiment import (
    DPSGDSettings,
    ExperimentConfig,
    SplitSizes,
    TrainingRecipe,
    run_experiment,
)
from keras_mi.outputs import ModelOutputs

pytestmark = pytest.mark.slow


def test_dpsgd_meets_its_epsilon_and_keeps_only_the_model(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 8)).astype("float32")
    y = (x[:, 0] > 0).astype(np.int64)
    cfg = ExperimentConfig(
        dataset="synthetic",
        split=SplitSizes(members=100, non_members=100, reference=100, test=100, shadow=0),
        architecture="mlp_tanh", training=TrainingRecipe(epochs=2, batch_size=25),
        defenses=["dpsgd:8", "dpsgd:1"], attacks=["gap", "loss"],
        # The DP model is softmax regression: what is checked is the accounting and
        # the files, and per-example clipping of the 1M-weight MLP only costs time.
        dpsgd=DPSGDSettings(learning_rate=0.1, architecture="linear"), seed=0)
    report = run_experiment(cfg, tmp_path, data=(x, y), verbose=0)
    eps = {d: report["defenses"][d]["epsilon"] for d in cfg.defenses}
    assert 0 < eps["dpsgd:8"] <= 8.0 and 0 < eps["dpsgd:1"] <= 1.0
    assert eps["dpsgd:1"] < eps["dpsgd:8"]
    for defense, tag in (("dpsgd:8", "dpsgd_eps8"), ("dpsgd:1", "dpsgd_eps1")):
        meta = json.loads((tmp_path / "meta" / f"{tag}.json").read_text())
        assert meta["target_epsilon"] == float(defense.split(":")[1])
        assert meta["noise_multiplier"] > 0
        assert (tmp_path / "models" / f"{tag}.h5").exists()
        assert not (tmp_path / "models" / f"{tag}_dpsgd").exists()  # data copy removed
        out = ModelOutputs.load_npz(tmp_path / "outputs" / f"{tag}.npz")
        assert set(out.logits) == {"members", "non_members", "reference", "test"}
        acc = float(np.mean(out.logits["test"].argmax(1) == out.labels["test"]))
        assert report["defenses"][defense]["test_accuracy"] == pytest.approx(acc)
    assert "ε" in (tmp_path / "report.md").read_text()
