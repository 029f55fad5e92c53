"""bench/bank_interim.py: an interim look at a run's banks gives evaluate's numbers."""

import json
import pathlib
import shutil
import sys

import pytest
from _bench_module import load_bench_module

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "experiment"))
from _experiment_data import three_class  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def interim():
    return load_bench_module("bank_interim")


def test_interim_of_a_finished_bank_is_evaluates_bank_and_part_of_one_is_refused(
        interim, tmp_path, capsys):
    from keras_mi.experiment import ExperimentConfig, SplitSizes, TrainingRecipe, run_experiment
    from keras_mi.experiment.config import BankSettings

    cfg = ExperimentConfig(
        dataset="synthetic",
        split=SplitSizes(members=60, non_members=60, reference=60, test=40, shadow=0),
        architecture="mlp_tanh", training=TrainingRecipe(epochs=2, batch_size=30),
        defenses=["none", "mmd"], attacks=["loss"], mmd_weight=1.0, mmd_sigma=0.1, seed=0,
        bank=BankSettings(size=4))
    report = run_experiment(cfg, tmp_path / "run", data=three_class(300, seed=1), verbose=0)
    out = tmp_path / "interim.json"
    assert interim.main(["--run", str(tmp_path / "run"), "--out", str(out)]) == 0
    rows = {(r["defense"], r["protocol"]): r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {("none", "adaptive"), ("mmd", "adaptive"), ("mmd", "non_adaptive")}
    for (defense, protocol), row in rows.items():
        bank = report["defenses"][defense]["bank"][protocol]
        best = bank["strongest_attack"]
        assert row["strongest"] == best["name"] and row["pairs"] == bank["pairs"]
        assert row["auc"] == pytest.approx(best["auc"], abs=1e-12)
        assert row["tpr_at_1pct"] == pytest.approx(best["tpr_at_fpr"]["0.01"], abs=1e-12)
        assert row["accuracy_median"] == pytest.approx(
            report["defenses"][defense]["bank"]["accuracy"]["population"]["median"])
    assert "| mmd | non_adaptive |" in capsys.readouterr().out
    # The none bank of another run on the same split as the non-adaptive shadows.
    across = tmp_path / "across.json"
    assert interim.main(["--run", str(tmp_path / "run"), "--defenses", "mmd", "--none-from",
                         str(tmp_path / "run"), "--out", str(across)]) == 0
    (row,) = [r for r in json.loads(across.read_text())["rows"]
              if r["protocol"] == "non_adaptive"]
    assert row["auc"] == rows[("mmd", "non_adaptive")]["auc"]

    # One model of mmd's bank lost: one complete pair, fewer than a bank needs. Asked
    # for, mmd is refused; by default it is left out, and said so.
    (tmp_path / "run" / "banks" / "mmd" / "shadow_0002.npz").unlink()
    with pytest.raises(SystemExit, match="'mmd': 2"):
        interim.main(["--run", str(tmp_path / "run"), "--defenses", "none", "mmd"])
    capsys.readouterr()
    assert interim.main(["--run", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert "mmd: 2 complete models (pairs), fewer than a bank needs: left out" in \
        capsys.readouterr().out
    assert [r["defense"] for r in json.loads(out.read_text())["rows"]] == ["none"]
    with pytest.raises(SystemExit, match=r"\['mixup'\] are not defenses of this run"):
        interim.main(["--run", str(tmp_path / "run"), "--defenses", "mixup"])
    shutil.rmtree(tmp_path / "run" / "banks")
    with pytest.raises(SystemExit, match="need an even number >= 4"):
        interim.main(["--run", str(tmp_path / "run"), "--defenses", "none"])
