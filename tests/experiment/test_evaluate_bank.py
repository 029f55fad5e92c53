"""The bank protocol inside keras-mi evaluate: adaptive banks, cluster jobs, bad input."""

import json

import pytest
from _experiment_data import three_class

from keras_mi import cli
from keras_mi.experiment import ExperimentConfig, SplitSizes, TrainingRecipe, run_experiment
from keras_mi.experiment.config import BankSettings

pytestmark = pytest.mark.slow




def _config(**bank):
    return ExperimentConfig(
        dataset="synthetic",
        split=SplitSizes(members=60, non_members=60, reference=60, test=40, shadow=0),
        architecture="mlp_tanh", training=TrainingRecipe(epochs=1, batch_size=30),
        defenses=["none", "mmd"], attacks=["loss"], mmd_weight=1.0, mmd_sigma=0.1, seed=0,
        bank=BankSettings(**{"size": 4, **bank}))


def test_verbose_bank_models_report_epochs_and_what_is_left(tmp_path, monkeypatch, capsys):
    from keras_mi.experiment import steps

    monkeypatch.setattr(steps, "BANK_HEARTBEAT_S", 1e-9)
    x, y = three_class(300, seed=1)
    cfg = _config().with_overrides({"defenses": ["none"], "training.epochs": 2})
    run_experiment(cfg, tmp_path, data=(x, y), verbose=1)
    out = capsys.readouterr().out
    # Two lines per bank model (its two epochs), none from the target's own fit.
    assert out.count("  none: epoch 1/2, loss ") == 4
    assert out.count("  none: epoch 2/2, loss ") == 4
    assert [line.split()[0] for line in out.splitlines()
            if line.endswith("at this pace")] == ["3", "2", "1"]


def test_adaptive_bank_trains_with_the_defense_and_resumes(tmp_path, monkeypatch):
    import keras_mi.training as training

    built = []
    original = training.MMDModel

    class CountingMMDModel(original):
        def __init__(self, *args, **kwargs):
            built.append(kwargs.get("weight"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(training, "MMDModel", CountingMMDModel)
    x, y = three_class(300, seed=1)
    seen = []
    report = run_experiment(_config(), tmp_path, data=(x, y), verbose=0, on_step_saved=seen.append)
    # One MMD target + four MMD bank models; the none bank builds none.
    assert built == [1.0] * 5
    assert seen == ["none", "mmd", "attacks/none", "attacks/mmd", "banks/none", "banks/mmd"]
    for defense in ("none", "mmd"):
        assert len(list((tmp_path / "banks" / defense).glob("shadow_*.npz"))) == 4
    mmd = report["defenses"]["mmd"]["bank"]
    assert mmd["adaptive"]["num_models"] == 4 and mmd["adaptive"]["pairs"] == 4 * 120
    assert "non_adaptive" in mmd and "non_adaptive" not in report["defenses"]["none"]["bank"]
    best = mmd["adaptive"]["strongest_attack"]
    assert best["n_members"] == best["n_non_members"] == 240
    assert not best["low_fpr"]["0.001"]["resolved"]  # 240 non-member pairs
    assert len(best["per_target"]["auc"]["values"]) == 4
    bank_files = json.loads((tmp_path / "attacks" / "bank_mmd_non_adaptive.json").read_text())
    assert bank_files["metadata"]["shadow_recipe"].startswith("none ")
    assert bank_files["metadata"]["recipe"].startswith("mmd ")
    md = (tmp_path / "report.md").read_text()
    assert "## Bank protocol" in md and "non-adaptive" in md

    # Losing one bank model: only it is trained again, the report is identical.
    before = (tmp_path / "report.json").read_bytes()
    (tmp_path / "banks" / "mmd" / "shadow_0002.npz").unlink()
    (tmp_path / "attacks" / "bank_mmd.json").unlink()
    (tmp_path / "attacks" / "bank_mmd_non_adaptive.json").unlink()
    built.clear()
    seen.clear()
    run_experiment(_config(), tmp_path, data=(x, y), verbose=0, on_step_saved=seen.append)
    assert built == [1.0] and seen == ["banks/mmd"]
    assert (tmp_path / "report.json").read_bytes() == before


def test_bank_jobs_per_index_then_evaluate_only_aggregates(tmp_path, monkeypatch):
    from keras_mi.experiment import runner

    x, y = three_class(300, seed=2)
    cfg = _config()
    runner.train_lira_shadows(cfg, tmp_path, [0, 1], data=(x, y), verbose=0)
    runner.train_lira_shadows(cfg, tmp_path, [2, 3], data=(x, y), verbose=0)
    for defense in ("none", "mmd"):
        assert len(list((tmp_path / "banks" / defense).glob("shadow_*.npz"))) == 4

    def no_training(*_a, **_k):
        raise AssertionError("evaluate must only aggregate the bank")

    seen = []
    monkeypatch.setattr("keras_mi.attacks.shadow_jobs.predict_logits", no_training)
    run_experiment(cfg, tmp_path, data=(x, y), verbose=0, on_step_saved=seen.append)
    assert not any(s.startswith("banks/") for s in seen)
    with pytest.raises(ValueError, match="out of range"):
        runner.train_lira_shadows(cfg, tmp_path, [4], data=(x, y), verbose=0)


@pytest.mark.parametrize("overrides, message", [
    (["--bank", "5"], "even number from 4 to 256"),
    (["--bank", "2"], "even number from 4 to 256"),
    (["--bank", "4", "--set", "split.members=10", "--set", "split.non_members=10"],
     "bank pool"),
    (["--bank", "4", "--set", "bank.rmia_gamma=0"], "rmia_gamma"),
    (["--bank", "4", "--set", "bank.queries=flip_shift", "--defenses", "none"], "needs images"),
    (["--bank", "4", "--set", "split.test=0"], "population"),
    (["--bank", "4", "--set", "bank.non_adaptive=maybe"], "true or false"),
])
def test_bad_bank_settings_fail_before_the_folder_is_claimed(tmp_path, capsys, data_dir,
                                                             overrides, message):
    out = tmp_path / "run"
    code = cli.main(["evaluate", "--out", str(out), "--data-dir", str(data_dir),
                     "--epochs", "1", "--quiet", *overrides])
    assert code == cli.EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("implementation, batched", [("tf_privacy", False),
                                                     ("keras_jax", True)])
def test_dp_bank_batches_only_where_one_child_can_train_many(implementation, batched,
                                                             tmp_path, monkeypatch):
    """keras_jax: the first bank model's call trains every pending model at once;
    tf_privacy: each model is trained (and so saved) by its own call."""
    import types

    import numpy as np

    from keras_mi.attacks import shadow_jobs
    from keras_mi.defenses import dpsgd as dp_entry
    from keras_mi.experiment import steps

    rng = np.random.default_rng(0)
    roles = {r: (rng.normal(size=(n, 3)).astype("float32"), np.arange(n) % 2)
             for r, n in (("members", 10), ("non_members", 10), ("test", 6))}
    cfg = ExperimentConfig(dataset="synthetic", defenses=["dpsgd"]).with_overrides(
        {"dpsgd.implementation": implementation, "bank.size": 4})
    singles, batches = [], []

    def outputs():
        return types.SimpleNamespace(logits={"non_members": np.zeros((20, 2)),
                                             "test": np.zeros((6, 2))})

    monkeypatch.setattr(steps, "train_dpsgd_defense",
                        lambda *a, **kw: singles.append(a[-1]) or types.SimpleNamespace(
                            outputs=outputs()))
    monkeypatch.setattr(dp_entry, "_keras_jax_job", lambda *a: {})
    monkeypatch.setattr("keras_mi.baselines.dpsgd_keras_subprocess."
                        "train_dpsgd_keras_subprocess_many",
                        lambda jobs, work, **kw: batches.append(len(jobs)) or [
                            types.SimpleNamespace(outputs=outputs(), epsilon=1.0, delta=1e-3,
                                                  noise_multiplier=1.0, l2_norm_clip=1.0,
                                                  epochs=1, batch_size=10, accountant="rdp",
                                                  privacy=types.SimpleNamespace(
                                                      sampling_assumption="Poisson"))
                            for _ in jobs])
    facts = types.SimpleNamespace(input_shape=(3,), num_classes=2, architecture="linear")
    fn = steps.bank_train_fn("dpsgd", cfg, facts, roles, tmp_path, todo=[0, 1, 2, 3],
                             bank_seed=5)
    pool_x = np.concatenate([roles["members"][0], roles["non_members"][0]])
    pool_y = np.concatenate([roles["members"][1], roles["non_members"][1]])
    for i in range(4):
        mask = shadow_jobs.shadow_membership(i, 20, 5)
        fn(pool_x[mask], pool_y[mask], shadow_jobs.shadow_seed(i, 5))
    if batched:
        assert batches == [4] and singles == []
    else:
        assert batches == [] and singles == [shadow_jobs.shadow_seed(i, 5) for i in range(4)]
