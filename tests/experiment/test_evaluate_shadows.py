"""Shadow-model and LiRA attacks inside keras-mi evaluate (tiny, resumable)."""

import json

import numpy as np
import pytest

from keras_mi.experiment import ExperimentConfig, SplitSizes, TrainingRecipe, run_experiment

pytestmark = pytest.mark.slow


def _synthetic(n, seed):
    """A noisy binary task on 8 Gaussian features (label from the first)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    return x, y


def test_shadow_and_lira_attacks_run_and_resume(tmp_path):
    x, y = _synthetic(600, seed=1)
    cfg = ExperimentConfig(
        dataset="synthetic",
        split=SplitSizes(members=100, non_members=100, reference=100, test=100, shadow=200),
        architecture="mlp_tanh", training=TrainingRecipe(epochs=1, batch_size=50),
        defenses=["none"], attacks=["loss", "loss_class", "shadow_nn", "lira"],
        num_shadow_models=2, num_lira_shadows=4, seed=0)
    seen = []
    report = run_experiment(cfg, tmp_path, data=(x, y), verbose=0, on_step_saved=seen.append)
    names = set(report["defenses"]["none"]["attacks"])
    assert {"loss", "loss_class", "shadow_nn"} <= names
    assert any(n.startswith("lira") for n in names)
    assert sorted(p.name for p in (tmp_path / "shadows").glob("shadow_*.npz")) == [
        "shadow_00.npz", "shadow_01.npz"]
    assert len(list((tmp_path / "shadows" / "lira").glob("shadow_*.npz"))) == 4
    assert seen == ["none", "attacks/none"]

    # Losing the attack results and one LiRA shadow: only those are redone,
    # and the report comes back identical.
    before = (tmp_path / "report.json").read_bytes()
    (tmp_path / "attacks" / "none.json").unlink()
    next((tmp_path / "shadows" / "lira").glob("shadow_*.npz")).unlink()
    seen.clear()
    run_experiment(cfg, tmp_path, data=(x, y), verbose=0, on_step_saved=seen.append)
    assert seen == ["attacks/none"]
    assert (tmp_path / "report.json").read_bytes() == before
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert "shadows/train_s" in timings and "shadows/lira_s" in timings


def test_lira_shadows_split_across_tasks_give_the_same_report(tmp_path):
    """Two 'cluster tasks' train disjoint shadow indices; evaluate then only aggregates."""
    from keras_mi.experiment.runner import train_lira_shadows

    x, y = _synthetic(400, seed=2)
    cfg = ExperimentConfig(
        dataset="synthetic",
        split=SplitSizes(members=100, non_members=100, reference=100, test=100, shadow=0),
        architecture="mlp_tanh", training=TrainingRecipe(epochs=1, batch_size=50),
        defenses=["none"], attacks=["loss", "lira"], num_lira_shadows=4, seed=0)
    one_machine = run_experiment(cfg, tmp_path / "one", data=(x, y), verbose=0)

    shared = tmp_path / "shared"
    assert train_lira_shadows(cfg, shared, [0, 1], data=(x, y), verbose=0) == [0, 1]
    assert train_lira_shadows(cfg, shared, [3, 2], data=(x, y), verbose=0) == [3, 2]
    assert len(list((shared / "shadows" / "lira").glob("shadow_*.npz"))) == 4
    files = sorted((shared / "shadows" / "lira").glob("shadow_*.npz"))
    stamps = [f.stat().st_mtime_ns for f in files]
    split_run = run_experiment(cfg, shared, data=(x, y), verbose=0)
    assert split_run == one_machine
    assert [f.stat().st_mtime_ns for f in files] == stamps  # aggregated, not retrained
    with pytest.raises(ValueError, match="out of range"):
        train_lira_shadows(cfg, shared, [4], data=(x, y), verbose=0)
    with pytest.raises(ValueError, match="lira"):
        train_lira_shadows(cfg.with_overrides({"attacks": ["loss"]}), tmp_path / "x", [0],
                           data=(x, y), verbose=0)


def test_shadow_command_without_lira_is_refused_before_training(tmp_path, capsys):
    from keras_mi.cli import main

    code = main(["shadow", "--attacks", "loss", "--out", str(tmp_path / "run"),
                 "--shadow-index", "0", "--quiet"])
    assert code == 2
    assert "lira" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
