"""Several Keras 3 / JAX DP-SGD models in one child process (a bank).

``train_dpsgd_keras_subprocess_many`` must give each model exactly what
``train_dpsgd_keras_subprocess`` gives it alone, resume a finished job
without training it again, and refuse a bad job before any child starts.
"""

import json

import numpy as np
import pytest

from keras_mi.baselines import dpsgd
from keras_mi.baselines.dpsgd_keras_subprocess import (
    train_dpsgd_keras_subprocess,
    train_dpsgd_keras_subprocess_many,
)

pytest.importorskip("dp_accounting")


def _pair(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.normal(size=(n, 5)) + 2.0 * np.eye(3, 5)[y] + shift).astype("float32")
    return x, y


def _job(seed, members_seed):
    return dict(members=_pair(40, members_seed), non_members=_pair(30, 99),
                test=_pair(20, 98), input_shape=(5,), num_classes=3, architecture="linear",
                target_epsilon=8.0, l2_norm_clip=1.0, batch_size=20, epochs=3,
                learning_rate=0.5, seed=seed)


def _count_children(monkeypatch):
    calls = []
    original = dpsgd._run_child

    def counting(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(dpsgd, "_run_child", counting)
    return calls


@pytest.mark.slow
def test_one_child_trains_each_model_as_a_child_of_its_own_would(tmp_path, monkeypatch):
    pytest.importorskip("jax")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    jobs = [_job(seed=3, members_seed=1), _job(seed=11, members_seed=2)]
    # The second model alone: in the shared child it trains after the first,
    # so anything the first leaves behind (weights, seeds, traces) would show.
    one = train_dpsgd_keras_subprocess(**jobs[1], verbose=0)
    calls = _count_children(monkeypatch)
    together = train_dpsgd_keras_subprocess_many(jobs, tmp_path / "bank",
                                                 names=["seed_3", "seed_11"], verbose=0)
    assert len(calls) == 1
    assert len(together) == 2
    many = together[1]
    for split in ("members", "non_members", "test"):
        np.testing.assert_allclose(many.outputs.logits[split], one.outputs.logits[split],
                                   rtol=1e-6, atol=1e-6)
    assert many.epsilon == one.epsilon and many.noise_multiplier == one.noise_multiplier
    assert many.privacy.steps == one.privacy.steps
    # The two models differ (their seeds and halves do): not one model handed out twice.
    assert not np.allclose(together[0].outputs.logits["test"],
                           together[1].outputs.logits["test"])
    assert (tmp_path / "bank" / "seed_11" / "out" / "model.keras").exists()

    # Again with the same jobs: both are done, no child starts.
    stamps = [(tmp_path / "bank" / n / "out" / "result.json").stat().st_mtime_ns
              for n in ("seed_3", "seed_11")]
    again = train_dpsgd_keras_subprocess_many(jobs, tmp_path / "bank",
                                              names=["seed_3", "seed_11"], verbose=0)
    assert len(calls) == 1
    assert [(tmp_path / "bank" / n / "out" / "result.json").stat().st_mtime_ns
            for n in ("seed_3", "seed_11")] == stamps
    np.testing.assert_array_equal(again[1].outputs.logits["test"],
                                  together[1].outputs.logits["test"])

    # Other data under a finished job's name: that job trains again, the other does not.
    changed = [jobs[0], dict(jobs[1], members=_pair(40, 5))]
    redone = train_dpsgd_keras_subprocess_many(changed, tmp_path / "bank",
                                               names=["seed_3", "seed_11"], verbose=0)
    assert len(calls) == 2
    new_stamps = [(tmp_path / "bank" / n / "out" / "result.json").stat().st_mtime_ns
                  for n in ("seed_3", "seed_11")]
    assert new_stamps[0] == stamps[0] and new_stamps[1] != stamps[1]
    assert not np.allclose(redone[1].outputs.logits["test"],
                           together[1].outputs.logits["test"])
    saved = json.loads((tmp_path / "bank" / "seed_11" / "out" / "result.json").read_text())
    assert saved["request"]["data_sha256"] != json.loads(
        (tmp_path / "bank" / "seed_3" / "out" / "result.json").read_text()
    )["request"]["data_sha256"]


@pytest.mark.parametrize("jobs, names, match", [
    ([_job(0, 1), dict(_job(1, 2), target_epsilon=-1.0)], None, "DP-SGD job 1: "),
    ([_job(0, 1), dict(_job(1, 2), l2_norm_clip=0.0)], None, "DP-SGD job 1: .*clip"),
    ([dict(_job(0, 1), work_dir="x")], None, r"DP-SGD job 0: \['work_dir'\] are arguments "
                                             "of the whole call"),
    ([dict(_job(0, 1), batch_size=41)], None, "DP-SGD job 0: "),
    ([dict(_job(0, 1), clip=1.0)], None, "DP-SGD job 0: .*unexpected keyword argument 'clip'"),
    ([{"members": _pair(40, 1)}], None, "DP-SGD job 0: .*missing a required argument"),
    ([_job(0, 1), _job(1, 2)], ["a", "a"], "2 distinct folder names"),
    ([_job(0, 1)], ["../up"], "1 distinct folder names"),
    ([_job(0, 1), _job(1, 2)], ["a"], "2 distinct folder names"),
])
def test_a_bad_job_is_refused_before_any_child_starts(jobs, names, match, tmp_path,
                                                       monkeypatch):
    def no_child(*args, **kwargs):
        raise AssertionError("a child started")

    monkeypatch.setattr(dpsgd, "_run_child", no_child)
    with pytest.raises(ValueError, match=match):
        train_dpsgd_keras_subprocess_many(jobs, tmp_path / "bank", names=names, verbose=0)
    assert not (tmp_path / "bank").exists()  # nothing written
