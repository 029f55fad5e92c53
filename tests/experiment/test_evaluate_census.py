"""Bad input to `keras-mi evaluate`: a clear error, exit 2, no traceback, nothing written.

Each case changes one thing of a small valid command on the real Location
data; none of them trains (every check runs before the output folder is
claimed), so the whole census is cheap.
"""

import json

import pytest

from keras_mi import cli

# A valid command (checked by test_the_base_command_is_valid): small sizes, one epoch.
BASE = ["--defenses", "none", "--attacks", "loss", "--epochs", "1",
        "--set", "split.members=100", "--set", "split.non_members=100",
        "--set", "split.reference=100", "--set", "split.test=100", "--set", "split.shadow=0"]

# (extra arguments, a part of the message). Later arguments win over BASE's.
CASES = {
    # 9: refused before the folder is claimed (these used to write config.json first)
    "reference_zero": (["--set", "split.reference=0"], "split.reference must be at least 1"),
    "reference_below_classes_mmd": (["--defenses", "mmd", "--set", "split.reference=20"],
                                    "at least the number of classes (30)"),
    "reference_missing_a_class": (["--set", "split.reference=5"],
                                  "appear in the members but not in the reference"),
    "crop_flip_on_tabular": (["--set", "training.augmentation=crop_flip"], "needs images"),
    "negative_epsilon": (["--defenses", "dpsgd", "--set", "dpsgd.epsilon=-1"],
                         "dpsgd.epsilon must be positive"),
    "nan_learning_rate": (["--set", "training.learning_rate=.nan"], "must be a finite number"),
    "classwise_without_shadows": (["--attacks", "loss_class"], "need shadow models"),
    "shadow_nn_without_models": (["--attacks", "shadow_nn", "--set", "split.shadow=100",
                                  "--set", "num_shadow_models=0"], "need shadow models"),
    "shadow_pool_too_small": (["--attacks", "loss_class", "--set", "split.shadow=3",
                               "--set", "num_shadow_models=2"], "too small for 2 shadow"),
    "default_attacks_tiny_shadow_pool": (["--set", "attacks=null", "--set", "split.shadow=3"],
                                         "too small for 2 shadow"),
    "image_architecture_on_tabular": (["--set", "architecture=alexnet"],
                                      "needs channels-last images"),
    "dpsgd_batch_above_members": (["--defenses", "dpsgd", "--set", "dpsgd.batch_size=500"],
                                  "must not exceed the number of training examples"),
    # The preset's full batch (1,000 members) does not split into 7 microbatches;
    # microbatches are a TF-Privacy option (the preset trains with keras_jax).
    "dpsgd_microbatches_not_a_divisor": (["--defenses", "dpsgd",
                                          "--set", "dpsgd.implementation=tf_privacy",
                                          "--set", "dpsgd.num_microbatches=7"], "divisor"),
    "dpsgd_delta_too_large": (["--defenses", "dpsgd", "--set", "dpsgd.delta=0.5"],
                              "dpsgd.delta must lie in (0, 1/members)"),
    "dpsgd_unreachable_epsilon": (["--defenses", "dpsgd:1e-12", "--set", "dpsgd.batch_size=50",
                                   "--set", "dpsgd.epochs=1000"], "needs a noise multiplier above"),
    "dpsgd_infinite_epsilon": (["--defenses", "dpsgd:inf"], "epsilon must be a positive number"),
    "lr_boundary_after_the_last_epoch": (["--set", "training.lr_schedule=step",
                                          "--set", "training.lr_boundaries=[3]"],
                                         "at or after the last epoch"),
    "dpsgd_zero_clip": (["--set", "dpsgd.l2_norm_clip=0"], "l2_norm_clip must be positive"),
    "dpsgd_zero_epochs": (["--set", "dpsgd.epochs=0"], "dpsgd.epochs must be at least 1"),
    "split_larger_than_pool": (["--set", "split.members=5000"], "Split sizes need"),
    # 10: say what is missing
    "missing_data_dir": (["--data-dir", "/nonexistent/keras-mi-data"],
                         "Data directory /nonexistent/keras-mi-data (data_dir argument / "
                         "--data-dir) does not exist"),
    # 12: every field typed and bounded
    "bool_as_word": (["--set", "mmd_per_class=maybe"], "must be true or false"),
    "bool_as_number": (["--set", "bank.non_adaptive=2"], "must be true or false"),
    "momentum_above_one": (["--set", "training.momentum=1.5"], "training.momentum must lie"),
    "negative_momentum_dp": (["--set", "dpsgd.momentum=-0.1"], "dpsgd.momentum must lie"),
    "negative_weight_decay": (["--set", "training.weight_decay=-1"], "weight_decay must lie"),
    "lr_factor_above_one": (["--set", "training.lr_factor=2"], "lr_factor"),
    "lr_factor_zero": (["--set", "training.lr_factor=0"], "lr_factor"),
    "step_without_boundaries": (["--set", "training.lr_schedule=step"],
                                "needs training.lr_boundaries"),
    "boundaries_without_step": (["--set", "training.lr_boundaries=[5]"],
                                "only apply with training.lr_schedule 'step'"),
    "boundary_not_an_int": (["--set", "training.lr_schedule=step",
                             "--set", "training.lr_boundaries=[a]"],
                            "lr_boundaries[0] must be int"),
    "boundary_repeated": (["--set", "training.lr_schedule=step",
                           "--set", "training.lr_boundaries=[3,3]"], "distinct epochs"),
    "negative_seed": (["--seed", "-1"], "seed must lie in"),
    "infinite_sigma": (["--set", "mmd_sigma=.inf"], "must be a finite number"),
    "nan_mixup_alpha": (["--set", "mixup_alpha=.nan"], "must be a finite number"),
    "nan_rmia_gamma": (["--set", "bank.rmia_gamma=.nan"], "must be a finite number"),
    "defense_not_a_string": (["--set", "defenses=[1]"], "defenses[0] must be str"),
    "attack_listed_twice": (["--attacks", "loss", "loss"], "attacks lists a name twice"),
    "negative_shadow_count": (["--set", "num_shadow_models=-1"], "must not be negative"),
    "negative_lira_count": (["--set", "num_lira_shadows=-2"], "must not be negative"),
    "zero_epochs": (["--epochs", "0"], "must be positive"),
    "split_not_a_mapping": (["--set", "split=5"], "must be a mapping"),
}


def _evaluate(capsys, out, argv):
    """Runs the command; an exception escaping main is reported as a traceback."""
    try:
        code = cli.main(["evaluate", "--out", str(out), "--quiet", *argv])
    except BaseException as err:  # noqa: BLE001  (the census counts tracebacks)
        pytest.fail(f"traceback instead of an error message: {type(err).__name__}: {err}")
    captured = capsys.readouterr()
    return code, captured.err


def test_the_base_command_is_valid(tmp_path, data_dir):
    from keras_mi.experiment import runner

    args = cli._parser().parse_args(["evaluate", "--data-dir", str(data_dir), *BASE])
    runner.prepare(cli.build_config(args), tmp_path / "run")  # raises on a bad input
    assert not (tmp_path / "run").exists()  # the checks write nothing


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_a_clear_error_and_writes_nothing(name, tmp_path, capsys, data_dir):
    extra, message = CASES[name]
    out = tmp_path / "run"
    argv = BASE + (extra if "--data-dir" in extra else ["--data-dir", str(data_dir), *extra])
    code, err = _evaluate(capsys, out, argv)
    assert code == cli.EXIT_BAD_INPUT, err
    assert err.startswith("keras-mi evaluate: error: ") and message in err, err
    assert "Traceback" not in err
    assert not out.exists(), sorted(p.name for p in out.iterdir())


def test_missing_data_dir_from_the_environment_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KERAS_MI_DATA_DIR", str(tmp_path / "no-such-data"))
    out = tmp_path / "run"
    code, err = _evaluate(capsys, out, BASE)
    assert code == cli.EXIT_BAD_INPUT
    assert f"Data directory {tmp_path / 'no-such-data'} ($KERAS_MI_DATA_DIR) does not exist" in err
    assert not out.exists()


@pytest.mark.parametrize("suffix, text, message", [
    (".yaml", "dataset: location\ntraining:\n  epochs: [1\n", "is not valid YAML"),
    (".yaml", "dataset: location\n  seed: 1\n", "is not valid YAML"),
    (".json", '{"dataset": "location",}', "is not valid JSON"),
    (".yaml", "- just\n- a list\n", "must hold a mapping"),
    (".json", json.dumps({"training": {"epochs": 1, "momentum": float("nan")}}),
     "must be a finite number"),
])
def test_config_file_errors_name_the_file_and_the_place(tmp_path, capsys, suffix, text,
                                                       message):
    path = tmp_path / f"run{suffix}"
    path.write_text(text)
    out = tmp_path / "run"
    code, err = _evaluate(capsys, out, ["--config", str(path)])
    assert code == cli.EXIT_BAD_INPUT and message in err and str(path) in err, err
    if "valid" in message:
        assert "line" in err  # where the syntax error is
    assert not out.exists()


def test_a_refused_input_does_not_lock_the_folder(tmp_path, capsys, data_dir):
    """Item 9: the corrected command must not be refused as "a different config"."""
    from keras_mi.experiment import runner, store

    out = tmp_path / "run"
    code, _ = _evaluate(capsys, out, BASE + ["--data-dir", str(data_dir),
                                             "--set", "split.reference=0"])
    assert code == cli.EXIT_BAD_INPUT and not out.exists()
    args = cli._parser().parse_args(["evaluate", "--data-dir", str(data_dir), *BASE])
    config = cli.build_config(args)
    runner.prepare(config, out)
    store.claim(out, config)  # no ConfigMismatchError, no --overwrite needed
    assert (out / "config.sha256").read_text().strip() == config.fingerprint()


@pytest.mark.parametrize("extra, message", [
    (["--shadow-index", "0"], "the config asks for neither"),
    (["--bank", "4", "--shadow-index", "4"], "Shadow index [4] out of range: valid 0..3"),
    (["--bank", "4", "--shadow-index", "0", "--set", "split.reference=0"],
     "split.reference must be at least 1"),
    (["--bank", "4", "--shadow-index", "0", "--set", "training.augmentation=crop_flip"],
     "needs images"),
])
def test_bad_shadow_jobs_are_clear_errors_and_write_nothing(tmp_path, capsys, data_dir, extra,
                                                           message):
    out = tmp_path / "run"
    try:
        code = cli.main(["shadow", "--out", str(out), "--quiet", "--data-dir", str(data_dir),
                         *BASE, *extra])
    except BaseException as err:  # noqa: BLE001
        pytest.fail(f"traceback instead of an error message: {type(err).__name__}: {err}")
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT and err.startswith("keras-mi shadow: error: ")
    assert message in err, err
    assert not out.exists()


@pytest.mark.slow
def test_a_tampered_run_folder_through_the_command_line(tmp_path, capsys, data_dir):
    """Item 11 end to end: a damaged file is named and redone, a stale one refused (exit 2)."""
    out = tmp_path / "run"
    argv = BASE + ["--data-dir", str(data_dir)]
    code, _ = _evaluate(capsys, out, argv)
    assert code == 0
    report = (out / "report.json").read_bytes()
    attacks = out / "attacks" / "none.json"
    attacks.write_text(attacks.read_text()[:100])
    code, err = _evaluate(capsys, out, argv)
    assert code == 0 and f"{attacks} is damaged" in err
    assert (out / "report.json").read_bytes() == report
    meta = out / "meta" / "none.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "seed": 12345}))
    code, err = _evaluate(capsys, out, argv)
    assert code == cli.EXIT_BAD_INPUT and "Traceback" not in err
    assert err.startswith(f"keras-mi evaluate: error: {meta} does not match this run's config")
    assert "seed 12345" in err and "delete" in err
