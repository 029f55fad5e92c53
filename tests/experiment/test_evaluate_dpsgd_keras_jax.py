"""dpsgd.implementation keras_jax: the dpsgd defense (target and bank) trained by
train_dpsgd_keras in a KERAS_BACKEND=jax child process."""

import importlib.util
import json
import pathlib

import pytest
from _experiment_data import three_class

from keras_mi.baselines import dpsgd, dpsgd_keras_subprocess
from keras_mi.baselines.accounting import default_delta
from keras_mi.experiment import (
    DPSGDSettings,
    ExperimentConfig,
    SplitSizes,
    TrainingRecipe,
    run_experiment,
)
from keras_mi.experiment.config import BankSettings, identity_dict


@pytest.mark.parametrize("overrides, message", [
    ({"dpsgd.implementation": "jax"}, "dpsgd.implementation 'jax' is not one of tf_privacy, "
                                      "keras_jax"),
    ({"dpsgd.implementation": "keras_jax", "dpsgd.num_microbatches": 8,
      "training.batch_size": 64}, "num_microbatches is a TF-Privacy option"),
])
def test_bad_implementation_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig().with_overrides(overrides).validate()


def test_default_implementation_keeps_folder_identity_and_keras_jax_changes_it():
    default = ExperimentConfig()
    assert default.dpsgd.implementation == "tf_privacy"
    assert "implementation" not in identity_dict(default)["dpsgd"]  # old hashes unchanged
    jax_cfg = default.with_overrides({"dpsgd.implementation": "keras_jax"})
    jax_cfg.validate()
    assert jax_cfg.fingerprint() != default.fingerprint()


@pytest.mark.slow
def test_keras_jax_dpsgd_trains_target_and_bank_and_reports_epsilon(tmp_path, monkeypatch):
    pytest.importorskip("jax")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    calls = []
    original = dpsgd._run_child  # every DP child starts here (dpsgd._run_worker, _run_worker_many)

    def recording(request_path, verbose, timeout, **kwargs):
        calls.append((kwargs["module"], kwargs["env_updates"]))
        return original(request_path, verbose, timeout, **kwargs)

    monkeypatch.setattr(dpsgd, "_run_child", recording)
    cfg = ExperimentConfig(
        dataset="synthetic",
        split=SplitSizes(members=60, non_members=60, reference=60, test=40, shadow=0),
        architecture="mlp_tanh", training=TrainingRecipe(epochs=1, batch_size=30),
        defenses=["none", "dpsgd"], attacks=["loss"], seed=0,
        # Softmax regression for the DP models: five models compile and
        # clip per example, and the MLP's size would only add time.
        dpsgd=DPSGDSettings(epsilon=4.0, implementation="keras_jax", architecture="linear"),
        bank=BankSettings(size=4))
    x, y = three_class(300, seed=1)
    report = run_experiment(cfg, tmp_path, data=(x, y), verbose=0)

    # The target in a JAX child of its own, the four bank models together in one.
    assert calls == [(dpsgd_keras_subprocess.WORKER, {"KERAS_BACKEND": "jax"})] * 2
    assert not (tmp_path / "banks" / "dpsgd_work").exists()  # its files are removed
    row = report["defenses"]["dpsgd"]
    assert 0 < row["epsilon"] <= 4.0
    training = row["training"]
    assert training["implementation"] == "keras_jax" and training["sampling"] == "poisson"
    assert training["sampling_assumption"].startswith("Poisson subsampling")
    assert "what the trainer does" in training["sampling_assumption"]
    assert training["noise_multiplier"] > 0
    assert (tmp_path / "models" / "dpsgd.keras").exists()
    assert not (tmp_path / "models" / "dpsgd_dpsgd").exists()  # the data copy is removed
    meta = json.loads((tmp_path / "meta" / "dpsgd.json").read_text())
    assert meta["implementation"] == "keras_jax"
    bank = row["bank"]["adaptive"]
    assert bank["num_models"] == 4 and bank["pairs"] == 4 * 120
    assert len(list((tmp_path / "banks" / "dpsgd").glob("shadow_*.npz"))) == 4
    # The audit: a lower bound from the pooled pairs, next to the accountant's ε.
    for protocol in ("adaptive", "non_adaptive"):
        audit = row["bank"][protocol]["empirical_epsilon"]
        # δ of a bank model: the default for its half of the 120-record pool.
        assert audit["accountant_epsilon"] == 4.0 and audit["delta"] == default_delta(60)
        assert 0.0 <= audit["epsilon"] <= audit["accountant_epsilon"]
        assert set(audit["per_attack"]) == set(row["bank"][protocol]["attacks"])
    assert "empirical_epsilon" not in report["defenses"]["none"]["bank"]["adaptive"]
    md = (tmp_path / "report.md").read_text()
    assert "ε" in md and "dpsgd, adaptive: empirical ε ≥" in md

    # bench/bank_interim.py on the finished run: the same audit, read from the bank alone.
    spec = importlib.util.spec_from_file_location(
        "bank_interim_under_test", pathlib.Path(__file__).resolve().parents[2] / "bench"
        / "bank_interim.py")
    interim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(interim)
    out = tmp_path / "interim.json"
    assert interim.main(["--run", str(tmp_path), "--out", str(out)]) == 0
    rows = {(r["defense"], r["protocol"]): r for r in json.loads(out.read_text())["rows"]}
    for protocol in ("adaptive", "non_adaptive"):
        want = row["bank"][protocol]["empirical_epsilon"]
        got = rows[("dpsgd", protocol)]["empirical_epsilon"]
        assert got["epsilon"] == pytest.approx(want["epsilon"], abs=1e-12)
        assert got["accountant_epsilon"] == want["accountant_epsilon"]
    assert rows[("none", "adaptive")]["empirical_epsilon"] is None
