"""Reading a run folder back: damaged files are named and recomputed, stale ones refused.

One small finished run (synthetic data, one epoch, two shadow models, a
bank of 4) is copied for each case, one of its files is damaged or changed,
and the same run is started again.
"""

import json
import shutil

import numpy as np
import pytest
from _experiment_data import three_class

from keras_mi.experiment import ExperimentConfig, SplitSizes, TrainingRecipe, run_experiment
from keras_mi.experiment.config import BankSettings
from keras_mi.outputs import ModelOutputs

pytestmark = pytest.mark.slow




def _config():
    return ExperimentConfig(
        dataset="synthetic",
        split=SplitSizes(members=60, non_members=60, reference=60, test=40, shadow=40),
        architecture="mlp_tanh", training=TrainingRecipe(epochs=1, batch_size=30),
        defenses=["none"], attacks=["loss", "loss_class"], num_shadow_models=2, seed=0,
        bank=BankSettings(size=4))


DATA = three_class(300, seed=3)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished")
    run_experiment(_config(), folder, data=DATA, verbose=0)
    return folder


@pytest.fixture
def run_dir(finished, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    return folder


def _rerun(folder):
    seen = []
    run_experiment(_config(), folder, data=DATA, verbose=0, on_step_saved=seen.append)
    return seen


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_indices(path):
    split = json.loads(path.read_text())
    del split["indices"]
    path.write_text(json.dumps(split))


@pytest.mark.parametrize("name, damage, retrained", [
    ("outputs/none.npz", _truncate, ["none"]),
    ("meta/none.json", _truncate, ["none"]),
    ("attacks/none.json", _truncate, ["attacks/none"]),
    ("split.json", _drop_indices, []),
    ("split.json", _truncate, []),
    ("banks/none/shadow_0001.npz", _truncate, ["banks/none"]),
    ("shadows/shadow_01.npz", _truncate, []),
    ("attacks/bank_none.json", _truncate, []),
    ("timings.json", _truncate, []),
])
def test_a_damaged_file_is_named_and_computed_again(finished, run_dir, capsys, name, damage,
                                                    retrained):
    damage(run_dir / name)
    seen = _rerun(run_dir)
    err = capsys.readouterr().err
    assert f"{run_dir / name} is damaged" in err and "computing it again" in err
    assert seen == retrained  # only the damaged step ran again
    # Every step is seeded from (seed, tag): recomputing gives what was there.
    assert (run_dir / "report.json").read_bytes() == (finished / "report.json").read_bytes()
    if name.endswith(".json") and name != "timings.json":
        assert _timeless(run_dir / name) == _timeless(finished / name)
    if name.endswith(".npz"):  # same arrays (zip timestamps may differ)
        with np.load(run_dir / name) as new, np.load(finished / name) as old:
            assert sorted(new.files) == sorted(old.files)
            assert all(np.array_equal(new[k], old[k]) for k in old.files if k != "train_seconds")


def _timeless(path):
    """A JSON file's content without its wall times (the only field a rerun changes)."""
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "wall_time_s"}
        return [strip(v) for v in node] if isinstance(node, list) else node
    return strip(json.loads(path.read_text()))


def _other_defense(folder):
    meta = json.loads((folder / "meta/none.json").read_text())
    meta["defense"] = "mixup"
    (folder / "meta/none.json").write_text(json.dumps(meta))


def _fewer_members(folder):
    outputs = ModelOutputs.load_npz(folder / "outputs/none.npz")
    logits, labels = dict(outputs.logits), dict(outputs.labels)
    logits["members"], labels["members"] = logits["members"][:50], labels["members"][:50]
    ModelOutputs(logits, labels).save_npz(folder / "outputs/none.npz")


def _other_split(folder):
    split = json.loads((folder / "split.json").read_text())
    idx = split["indices"]
    idx["members"][0], idx["test"][0] = idx["test"][0], idx["members"][0]
    (folder / "split.json").write_text(json.dumps(split))


def _other_attack_sizes(folder):
    report = json.loads((folder / "attacks/none.json").read_text())
    for row in report["results"]:
        row["n_members"] = 7
    (folder / "attacks/none.json").write_text(json.dumps(report))


@pytest.mark.parametrize("name, change, message", [
    ("meta/none.json", _other_defense, "records defense 'mixup'"),
    ("outputs/none.npz", _fewer_members, "its 'members' split (50 records)"),
    ("split.json", _other_split, "sets are not the config's split"),
    ("attacks/none.json", _other_attack_sizes, "scored 7 members"),
])
def test_a_finished_step_that_no_longer_matches_the_config_is_refused(run_dir, name, change,
                                                                      message):
    change(run_dir)
    before = (run_dir / name).read_bytes()
    with pytest.raises(ValueError) as err:
        _rerun(run_dir)
    text = str(err.value)
    assert str(run_dir / name) in text and message in text and "delete" in text
    assert (run_dir / name).read_bytes() == before  # refused, not silently replaced


def test_a_split_of_other_data_is_refused(run_dir):
    x, y = DATA
    with pytest.raises(ValueError, match="made for a different dataset.*delete"):
        run_experiment(_config(), run_dir, data=(x[::-1].copy(), y[::-1].copy()), verbose=0)
