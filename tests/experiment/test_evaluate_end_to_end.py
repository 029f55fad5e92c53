"""End to end on a tiny synthetic pool: numbers, resume, reproducibility, identity.

One uninterrupted run (module fixture) is the reference; a second run in
another folder is interrupted right after its first model is saved (a hook
raises KeyboardInterrupt, as Ctrl-C would) and then re-run: it must skip the
saved model and write a byte-identical report.json.
"""

import json
import os

import numpy as np
import pytest

from keras_mi.experiment import (
    ConfigMismatchError,
    ExperimentConfig,
    SplitSizes,
    TrainingRecipe,
    run_experiment,
)
from keras_mi.outputs import ModelOutputs

pytestmark = pytest.mark.slow

DEFENSES = ["none", "mmd+mixup"]
ATTACKS = ["gap", "loss", "confidence", "modified_entropy"]


def _pool(n=1000, d=16, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    w = rng.normal(size=(d, classes))
    y = np.argmax(x @ w + 2.0 * rng.normal(size=(n, classes)), axis=1).astype(np.int64)
    return x, y


def _config(**changes):
    cfg = ExperimentConfig(
        dataset="synthetic",
        split=SplitSizes(members=200, non_members=200, reference=200, test=200, shadow=0),
        architecture="mlp_tanh", training=TrainingRecipe(epochs=2, batch_size=32),
        defenses=list(DEFENSES), attacks=list(ATTACKS), seed=3)
    return cfg.with_overrides(changes) if changes else cfg


@pytest.fixture(scope="module")
def pool():
    return _pool()


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, pool):
    out = tmp_path_factory.mktemp("full")
    report = run_experiment(_config(), out, data=pool, verbose=0)
    return out, report


def test_writes_every_artifact(full_run):
    out, report = full_run
    for name in ("report.json", "report.md", "roc.png", "privacy_utility.png", "timings.json",
                 "split.json", "config.json", "config.sha256"):
        assert (out / name).stat().st_size > 0, name
    for defense in DEFENSES:
        assert (out / "models" / f"{defense}.keras").exists()
        assert (out / "outputs" / f"{defense}.npz").exists()
    assert json.loads((out / "report.json").read_text()) == report
    assert list(report["defenses"]) == DEFENSES  # config order is kept
    md = (out / "report.md").read_text()
    assert all(f"| {d} |" in md for d in DEFENSES)


def test_numbers_are_consistent_with_the_saved_outputs(full_run):
    out, report = full_run
    for defense, row in report["defenses"].items():
        o = ModelOutputs.load_npz(out / "outputs" / f"{defense}.npz")
        acc = {s: float(np.mean(o.logits[s].argmax(1) == o.labels[s]))
               for s in ("members", "non_members", "test")}
        assert row["train_accuracy"] == pytest.approx(acc["members"])
        assert row["test_accuracy"] == pytest.approx(acc["test"])
        assert row["generalization_gap"] == pytest.approx(acc["members"] - acc["test"])
        attacks = row["attacks"]
        assert set(attacks) == set(ATTACKS)
        # Balanced sets: the gap attack's accuracy is 0.5 + (acc_in - acc_out) / 2 ...
        assert attacks["gap"]["best_accuracy"] == pytest.approx(
            0.5 + (acc["members"] - acc["non_members"]) / 2)
        for name, a in attacks.items():
            # ... and a threshold attack can always pick the gap attack's
            # operating point, so its best accuracy is never lower.
            assert a["best_accuracy"] >= attacks["gap"]["best_accuracy"] - 1e-12, name
            assert a["best_accuracy"] == pytest.approx(0.5 + a["advantage"] / 2)
            assert 0.0 <= a["tpr_at_fpr"]["0.001"] <= a["tpr_at_fpr"]["0.01"] <= 1.0
        best = row["strongest_attack"]
        assert best["advantage"] == max(a["advantage"] for a in attacks.values())
        assert row["epsilon"] is None


def test_interrupted_run_resumes_to_the_same_report(full_run, pool, tmp_path):
    out_full, _ = full_run
    out = tmp_path / "resumed"
    first = DEFENSES[0]

    def interrupt(tag):
        if tag == first:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(_config(), out, data=pool, verbose=0, on_step_saved=interrupt)
    saved = out / "models" / f"{first}.keras"
    assert saved.exists() and (out / "outputs" / f"{first}.npz").exists()
    assert not (out / "outputs" / f"{DEFENSES[1]}.npz").exists()
    assert not (out / "report.json").exists()
    stamp = saved.stat().st_mtime_ns

    run_experiment(_config(), out, data=pool, verbose=0)
    assert saved.stat().st_mtime_ns == stamp  # skipped, not retrained
    # Same seed + config, one run interrupted and resumed, one not: same bytes.
    assert (out / "report.json").read_bytes() == (out_full / "report.json").read_bytes()
    for defense in DEFENSES:
        a = ModelOutputs.load_npz(out / "outputs" / f"{defense}.npz")
        b = ModelOutputs.load_npz(out_full / "outputs" / f"{defense}.npz")
        np.testing.assert_array_equal(a.logits["members"], b.logits["members"])
    timings = json.loads((out / "timings.json").read_text())
    assert f"train/{first}_s" in timings and f"train/{DEFENSES[1]}_s" in timings


def test_rerun_of_a_finished_run_trains_nothing(full_run, pool):
    out, _ = full_run
    before = (out / "report.json").read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "models").iterdir()}

    def fail(tag):
        raise AssertionError(f"{tag} was redone")

    # The hook only sees steps that ran; every step is done, so none may.
    run_experiment(_config(), out, data=pool, verbose=0, on_step_saved=fail)
    assert {p: p.stat().st_mtime_ns for p in (out / "models").iterdir()} == stamps
    assert (out / "report.json").read_bytes() == before


def test_changed_config_is_refused_without_overwrite(full_run, pool):
    out, _ = full_run
    before = (out / "config.sha256").read_text()
    with pytest.raises(ConfigMismatchError, match="--overwrite"):
        run_experiment(_config(**{"training.epochs": 3}), out, data=pool, verbose=0)
    assert (out / "config.sha256").read_text() == before
    assert sorted(os.listdir(out / "models")) == sorted(f"{d}.keras" for d in DEFENSES)


def test_different_seed_changes_the_report(full_run, pool, tmp_path):
    _, report = full_run
    other = run_experiment(_config(seed=4, defenses="[none]"), tmp_path, data=pool, verbose=0)
    assert other["split_fingerprint"] != report["split_fingerprint"]
    assert other["defenses"]["none"] != report["defenses"]["none"]
