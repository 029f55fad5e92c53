"""The command line: config building and clear errors before any training."""

import json

import pytest

from keras_mi import cli
from keras_mi.experiment import store


def _run(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_print_config_applies_preset_flags_and_overrides(capsys):
    code, out, _ = _run(capsys, "evaluate", "--preset", "paper-cifar10", "--defenses", "none",
                        "dpsgd:2", "--epochs", "7", "--seed", "5", "--set", "split.members=123",
                        "--set", "training.lr_boundaries=[3,5]", "--print-config")
    assert code == 0
    cfg = json.loads(out)
    assert cfg["dataset"] == "cifar10" and cfg["architecture"] == "alexnet"
    assert cfg["defenses"] == ["none", "dpsgd:2"] and cfg["seed"] == 5
    assert cfg["training"]["epochs"] == 7 and cfg["training"]["lr_boundaries"] == [3, 5]
    assert cfg["split"]["members"] == 123


def test_default_is_the_location_preset(capsys):
    code, out, _ = _run(capsys, "evaluate", "--print-config")
    cfg = json.loads(out)
    assert code == 0 and cfg["dataset"] == "location"
    assert cfg["defenses"] == ["none", "mixup", "mmd", "mmd+mixup", "mmd+early_stopping", "dpsgd"]


def test_config_file_is_read(capsys, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: location\ntraining:\n  epochs: 4\ndefenses: [none]\n")
    code, out, _ = _run(capsys, "evaluate", "--config", str(path), "--print-config")
    assert code == 0 and json.loads(out)["training"]["epochs"] == 4


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "nope"], "Unknown dataset 'nope'; valid datasets: "),
    (["--defenses", "none", "dropout"], "Unknown defense 'dropout'; valid defenses: none, mixup"),
    (["--attacks", "loss", "telepathy"], "Unknown attack(s) ['telepathy']; valid attacks: "),
    (["--preset", "nope"], "valid presets: location"),
    (["--set", "training.epochs"], "--set expects KEY=VALUE"),
    (["--set", "bogus=1"], "Unknown config key 'bogus'"),
])
def test_bad_names_fail_before_any_work(capsys, tmp_path, argv, message):
    out_dir = tmp_path / "out"
    code, _, err = _run(capsys, "evaluate", "--out", str(out_dir), *argv)
    assert code == cli.EXIT_BAD_INPUT
    assert message in err
    assert not out_dir.exists()  # nothing written, nothing trained


def test_output_folder_that_is_a_file_is_refused(capsys, tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("not a folder")
    code, _, err = _run(capsys, "evaluate", "--out", str(target), "--defenses", "none")
    assert code == cli.EXIT_BAD_INPUT and "is a file" in err
    assert target.read_text() == "not a folder"


def test_output_folder_that_cannot_be_created_is_refused(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = _run(capsys, "evaluate", "--out", str(tmp_path / "file" / "sub"),
                        "--defenses", "none")
    assert code == cli.EXIT_BAD_INPUT and "not writable" in err


def test_split_larger_than_the_pool_is_refused(capsys, tmp_path, data_dir):
    code, _, err = _run(capsys, "evaluate", "--out", str(tmp_path / "o"), "--data-dir",
                        str(data_dir), "--set", "split.members=4000")
    assert code == cli.EXIT_BAD_INPUT
    assert "Split sizes need 8000 records" in err and "has 5010" in err
    assert not (tmp_path / "o" / "config.json").exists()


def test_overwrite_deletes_only_our_files(tmp_path):
    from keras_mi.experiment import ExperimentConfig

    store.claim(tmp_path, ExperimentConfig(seed=1))
    (tmp_path / "models" / "none.keras").write_text("old model")
    stale = tmp_path / "models" / ".mixup.keras.abc123.tmp.keras"  # a kill during a save
    stale.write_text("half a model")
    store.claim(tmp_path, ExperimentConfig(seed=1))  # resuming the same run
    assert not stale.exists() and (tmp_path / "models" / "none.keras").exists()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(store.ConfigMismatchError):
        store.claim(tmp_path, ExperimentConfig(seed=2))
    store.claim(tmp_path, ExperimentConfig(seed=2), overwrite=True)
    assert not (tmp_path / "models" / "none.keras").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert ((tmp_path / "config.sha256").read_text().strip()
            == ExperimentConfig(seed=2).fingerprint())


def test_ctrl_c_exits_130_and_says_how_to_resume(capsys, tmp_path, monkeypatch):
    from keras_mi.experiment import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_experiment", interrupted)
    code, _, err = _run(capsys, "evaluate", "--out", str(tmp_path), "--defenses", "none")
    assert code == cli.EXIT_INTERRUPTED
    assert "run the same command again to resume" in err and str(tmp_path) in err
