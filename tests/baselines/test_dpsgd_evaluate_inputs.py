"""DP-SGD's bad-input list through `keras-mi evaluate`: refused before anything trains.

The issue's list (ε <= 0, δ >= 1/n, a clip <= 0, BatchNorm in a DP model, a
batch larger than the data) holds for the trainers themselves
(tests/baselines/test_dpsgd_keras.py, test_dpsgd.py); here it is checked
through the command line, for both implementations, on the real Location
data: exit 2, a message naming the field, no traceback, no output folder.
"""

import numpy as np
import pytest

from keras_mi import cli

BASE = ["--defenses", "dpsgd", "--attacks", "loss", "--epochs", "1",
        "--set", "split.members=100", "--set", "split.non_members=100",
        "--set", "split.reference=100", "--set", "split.test=100", "--set", "split.shadow=0",
        "--set", "dpsgd.batch_size=50", "--set", "dpsgd.epochs=2",
        "--set", "dpsgd.implementation=tf_privacy"]  # the location preset's is keras_jax
JAX = ["--set", "dpsgd.implementation=keras_jax"]

CASES = {
    "epsilon_zero_in_the_name": (["--defenses", "dpsgd:0"], "epsilon must be a positive number"),
    "epsilon_negative_in_the_name": (["--defenses", "dpsgd:-4"],
                                     "epsilon must be a positive number"),
    "epsilon_zero_setting": (["--set", "dpsgd.epsilon=0"], "dpsgd.epsilon must be positive"),
    "delta_exactly_one_over_n": (["--set", "dpsgd.delta=0.01"],
                                 "dpsgd.delta must lie in (0, 1/members)"),
    "delta_above_one_over_n_jax": (JAX + ["--set", "dpsgd.delta=0.02"],
                                   "dpsgd.delta must lie in (0, 1/members)"),
    "delta_negative": (["--set", "dpsgd.delta=-0.00001"], "dpsgd.delta must lie in (0, 1/members)"),
    "clip_negative": (["--set", "dpsgd.l2_norm_clip=-1"], "l2_norm_clip must be positive"),
    "clip_zero_jax": (JAX + ["--set", "dpsgd.l2_norm_clip=0"], "l2_norm_clip must be positive"),
    "batch_above_members_jax": (JAX + ["--set", "dpsgd.batch_size=101"],
                                "dpsgd on split.members (100 records)"),
    # Members 100, non-members 60: a bank model trains on 80, below the batch of 90.
    "batch_above_a_bank_half": (JAX + ["--bank", "4", "--set", "split.non_members=60",
                                       "--set", "dpsgd.batch_size=90"],
                                "dpsgd on a bank model's half (80 records)"),
    "batch_an_unknown_word": (["--set", "dpsgd.batch_size=half"],
                              "dpsgd.batch_size must be at least 1, 'full'"),
    "batch_zero": (["--set", "dpsgd.batch_size=0"], "dpsgd.batch_size must be at least 1"),
    # A full batch is the training set: 100 members do not split into 7 microbatches.
    "full_batch_not_divisible_into_microbatches": (
        ["--set", "dpsgd.batch_size=full", "--set", "dpsgd.num_microbatches=7"],
        "dpsgd on split.members (100 records)"),
    "unknown_dp_architecture": (["--set", "dpsgd.architecture=resnet50"],
                                "dpsgd.architecture 'resnet50' is not one of"),
    "dp_architecture_needs_images": (["--set", "dpsgd.architecture=small_cnn"],
                                     "dpsgd.architecture 'small_cnn' on inputs (446,)"),
    "dp_architecture_not_a_string": (["--set", "dpsgd.architecture=[1]"],
                                     "dpsgd.architecture must be"),
    "unknown_tf_privacy_optimizer": (["--set", "dpsgd.tf_privacy_optimizer=ghost"],
                                     "dpsgd.tf_privacy_optimizer 'ghost' is not one of"),
    "tf_privacy_optimizer_with_keras_jax": (JAX + ["--set",
                                                   "dpsgd.tf_privacy_optimizer=vectorized"],
                                            "dpsgd.tf_privacy_optimizer is a TF-Privacy option"),
}


def _evaluate(capsys, out, argv):
    try:
        code = cli.main(["evaluate", "--out", str(out), "--quiet", *argv])
    except BaseException as err:  # noqa: BLE001
        pytest.fail(f"traceback instead of an error message: {type(err).__name__}: {err}")
    return code, capsys.readouterr().err


@pytest.mark.parametrize("impl", [[], JAX], ids=["tf_privacy", "keras_jax"])
def test_the_base_command_is_valid(impl, tmp_path, data_dir):
    from keras_mi.experiment import runner

    args = cli._parser().parse_args(["evaluate", "--data-dir", str(data_dir), *BASE, *impl,
                                     "--set", "dpsgd.architecture=linear"])
    runner.prepare(cli.build_config(args), tmp_path / "run")  # raises on a bad input
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_dp_input_is_a_clear_error_and_writes_nothing(name, tmp_path, capsys, data_dir):
    extra, message = CASES[name]
    out = tmp_path / "run"
    code, err = _evaluate(capsys, out, BASE + ["--data-dir", str(data_dir), *extra])
    assert code == cli.EXIT_BAD_INPUT, err
    assert err.startswith("keras-mi evaluate: error: ") and message in err, err
    assert "Traceback" not in err
    assert not out.exists()


def test_every_registered_architecture_is_accepted_by_the_dp_model_check():
    """``dpsgd.architecture`` may name any registered architecture, so none may hold
    BatchNorm: the DP trainers' check passes on each (and refuses a BatchNorm
    model, so this would fail if one were added)."""
    import keras

    from keras_mi.baselines.dpsgd_keras import check_dp_model
    from keras_mi.models import available_architectures, build_model

    shapes = {"alexnet": (32, 32, 3), "small_cnn": (32, 32, 3)}
    for name in available_architectures():
        check_dp_model(build_model(name, shapes.get(name, (446,)), 10, seed=0))
    with_bn = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(name="bn"),
                                keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="'bn' is a BatchNormalization"):
        check_dp_model(with_bn)


class _Captured(Exception):
    """Raised by the stand-in trainers with the keyword arguments they got."""


def _capture(**kwargs):
    raise _Captured(kwargs)


@pytest.mark.parametrize("impl, target", [
    ("keras_jax", "keras_mi.baselines.dpsgd_keras_subprocess.train_dpsgd_keras_subprocess"),
    ("tf_privacy", "keras_mi.baselines.train_dpsgd")])
def test_dp_architecture_and_tf_privacy_path_reach_the_trainer(impl, target, monkeypatch):
    """``dpsgd.architecture`` replaces the run's architecture for the DP model only, and
    ``dpsgd.tf_privacy_optimizer`` reaches TF-Privacy's trainer."""
    from keras_mi.defenses import dpsgd as dp_entry
    from keras_mi.experiment import ExperimentConfig

    module, name = target.rsplit(".", 1)
    monkeypatch.setattr(module + "." + name, lambda *a, **kw: _capture(**kw))
    overrides = {"dpsgd.implementation": impl, "dpsgd.architecture": "linear",
                 "dpsgd.batch_size": 10, "dpsgd.epochs": 2}
    if impl == "tf_privacy":
        overrides["dpsgd.tf_privacy_optimizer"] = "fast_clipping"
    cfg = ExperimentConfig().with_overrides(overrides)
    pair = (np.zeros((20, 4), "float32"), np.arange(20) % 2)
    data = {"eval": {"members": pair, "non_members": pair}, "work_dir": None}
    with pytest.raises(_Captured) as got:
        dp_entry.train_outputs(cfg, data, (4,), 2, "mlp_tanh", 0, 0, 4.0)
    kwargs = got.value.args[0]
    assert kwargs["architecture"] == "linear"
    assert kwargs["batch_size"] == 10 and kwargs["target_epsilon"] == 4.0
    if impl == "tf_privacy":
        assert kwargs["tf_privacy_optimizer"] == "fast_clipping"
    # null keeps the run's architecture
    cfg = cfg.with_overrides({"dpsgd.architecture": None})
    with pytest.raises(_Captured) as got:
        dp_entry.train_outputs(cfg, data, (4,), 2, "mlp_tanh", 0, 0, 4.0)
    assert got.value.args[0]["architecture"] == "mlp_tanh"


def test_location_preset_dpsgd_row_is_the_tuned_keras_jax_linear_setting():
    from keras_mi.experiment import get_preset
    from keras_mi.experiment.config import identity_dict

    cfg = get_preset("location")
    cfg.validate()
    dp = cfg.dpsgd
    assert (dp.implementation, dp.architecture, dp.batch_size) == ("keras_jax", "linear", "full")
    assert dp.batch_for(cfg.split.members, cfg.training.batch_size) == 1000  # epochs are steps
    # the new fields count in the run's identity once they leave their defaults
    assert identity_dict(cfg)["dpsgd"]["architecture"] == "linear"
    assert identity_dict(cfg)["dpsgd"]["accountant"] == "pld"


@pytest.mark.parametrize("members", [20, 13])
def test_full_batch_is_each_dp_models_training_set(members, monkeypatch):
    """``dpsgd.batch_size="full"`` reaches the trainer as the size of the training set
    it is given (the members for a target, a half for a bank model), not a number
    fixed in the config; steps then equal ``dpsgd.epochs``."""
    from keras_mi.defenses import dpsgd as dp_entry
    from keras_mi.experiment import ExperimentConfig

    monkeypatch.setattr("keras_mi.baselines.dpsgd_keras_subprocess."
                        "train_dpsgd_keras_subprocess", lambda *a, **kw: _capture(**kw))
    cfg = ExperimentConfig().with_overrides({
        "dpsgd.implementation": "keras_jax", "dpsgd.batch_size": "full", "dpsgd.epochs": 3,
        "training.batch_size": 4})
    pair = (np.zeros((members, 4), "float32"), np.arange(members) % 2)
    data = {"eval": {"members": pair, "non_members": pair}, "work_dir": None}
    with pytest.raises(_Captured) as got:
        dp_entry.train_outputs(cfg, data, (4,), 2, "linear", 0, 0, 4.0)
    assert got.value.args[0]["batch_size"] == members
    assert got.value.args[0]["epochs"] == 3


def test_tf_privacy_banks_are_not_batched(monkeypatch):
    """TF-Privacy's child trains one model: ``train_outputs_many`` declines (None), so a
    bank trains and saves each model on its own, and no trainer is called here."""
    from keras_mi.defenses import dpsgd as dp_entry
    from keras_mi.experiment import ExperimentConfig

    monkeypatch.setattr("keras_mi.baselines.train_dpsgd", lambda *a, **kw: _capture(**kw))
    cfg = ExperimentConfig().with_overrides({"dpsgd.implementation": "tf_privacy"})
    pair = (np.zeros((20, 4), "float32"), np.arange(20) % 2)
    data = {"eval": {"members": pair, "non_members": pair}, "work_dir": None}
    assert dp_entry.train_outputs_many(cfg, [data, data], (4,), 2, "linear", [1, 2], 0, 4.0,
                                       "unused") is None
