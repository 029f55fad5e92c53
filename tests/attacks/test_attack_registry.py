"""The registry is the one source of an attack's needs; one softmax; old names still work."""

import importlib
import sys

import numpy as np
import pytest
from scipy import special

from keras_mi import attacks
from keras_mi.attacks import lira, runner, scores, shadow, shadow_jobs
from keras_mi.attacks.results import AttackType, evaluate_scores
from keras_mi.outputs import ModelOutputs


def test_needs_shadow_comes_from_the_attack_type_for_every_registered_attack():
    names = attacks.available_attacks()  # loads the shadow and LiRA plug-ins too
    assert {"gap", "loss_class", "shadow_nn", "shadow_top3", "lira"} <= set(names)
    for name in names:
        spec = attacks.ATTACKS[name]
        kind = attacks.results.attack_type_of(name)
        want = kind.needs_shadow if kind is not AttackType.CUSTOM else False
        assert spec.needs_shadow is want, name
    # Hand-checked facts, not the same table read twice.
    assert AttackType.LOSS_CLASS.needs_shadow and AttackType.RMIA_OFFLINE.needs_shadow
    assert not AttackType.LOSS.needs_shadow and not AttackType.TFP_THRESHOLD.needs_shadow
    assert not AttackType.GAP.needs_shadow and not AttackType.CUSTOM.needs_shadow


def test_register_refuses_a_needs_shadow_that_contradicts_the_attack_type():
    with pytest.raises(ValueError, match="needs_shadow"):
        runner.register_attack("loss_class", lambda *a, **k: None, needs_shadow=False)
    with pytest.raises(ValueError, match="unknown score"):
        runner.register_attack("my_thing", lambda *a, **k: None, score="lossy")
    assert attacks.ATTACKS["loss_class"].needs_shadow  # the built-in is untouched


def test_each_threshold_attack_names_the_function_that_scores_it(make_outputs):
    out = make_outputs(reference=True)
    report = attacks.run(out, ["gap", *scores.SCORE_NAMES])
    for name in scores.SCORE_NAMES:
        fn = scores.SCORES[attacks.ATTACKS[name].score]
        assert fn.__name__ == f"{name}_score"
        direct = evaluate_scores(fn(*out.get("members")), fn(*out.get("non_members")), name=name)
        assert report.get(name).auc == direct.auc
        assert report.get(name).tpr_at_fpr == direct.tpr_at_fpr
    assert scores.SCORES[attacks.ATTACKS["gap"].score] is scores.correctness
    assert attacks.ATTACKS["loss_class"].score == "loss"
    assert attacks.ATTACKS["shadow_nn"].score is None


def test_the_one_softmax_matches_numpy_and_scipy():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=30.0, size=(50, 7))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(scores.softmax(z), e / e.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(scores.softmax(z), special.softmax(z, axis=1), rtol=1e-10,
                               atol=1e-300)
    np.testing.assert_allclose(np.exp(scores.log_softmax(z)), special.softmax(z, axis=1),
                               rtol=1e-10, atol=1e-300)
    masked = np.where(np.arange(7) == 3, -np.inf, z)
    np.testing.assert_allclose(scores.logsumexp(masked), special.logsumexp(masked, axis=1),
                               rtol=1e-12)
    assert shadow.softmax is scores.softmax
    # LiRA's statistic through the shared logsumexp: log p_y - log(1 - p_y).
    y = rng.integers(0, 7, 50)
    p = special.softmax(z, axis=1)[np.arange(50), y]
    mid = (p > 1e-6) & (p < 1 - 1e-6)
    assert mid.sum() >= 10
    np.testing.assert_allclose(lira.logit_confidence(z, y)[mid],
                               np.log(p[mid] / (1 - p[mid])), rtol=1e-6)


def test_summarize_is_deprecated_and_still_summarizes(make_outputs):
    report = attacks.run(make_outputs(), ["loss"])
    with pytest.deprecated_call(match="report.summary"):
        text = attacks.summarize(report)
    assert text == report.summary()
    with pytest.deprecated_call():
        assert attacks.summarize(report, by="auc") == report.summary(by="auc")


def _pool(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype(np.float32), (np.arange(n) % 2).astype(np.int64)


def _train_fn(x, y, seed):
    w = np.random.default_rng(seed).normal(size=(x.shape[1], 2))
    return lambda v: np.asarray(v) @ w


def test_old_shadow_names_warn_and_do_what_the_new_ones_do(tmp_path):
    pool = _pool()
    with pytest.deprecated_call(match="train_half_shadow"):
        old = shadow_jobs.train_shadow(0, 4, pool, _train_fn, tmp_path / "old", verbose=0)
    new = shadow_jobs.train_half_shadow(0, 4, pool, _train_fn, tmp_path / "new", verbose=0)
    with np.load(old) as a, np.load(new) as b:
        np.testing.assert_array_equal(a["logits"], b["logits"])
        np.testing.assert_array_equal(a["in_mask"], b["in_mask"])
    with pytest.deprecated_call(match="train_half_shadows"):
        paths = shadow_jobs.train_shadows(4, pool, _train_fn, tmp_path / "old", verbose=0)
    assert [p.name for p in paths] == [f"shadow_000{i}.npz" for i in range(4)]
    assert attacks.train_shadows is shadow_jobs.train_shadows  # still reachable from attacks

    x, y = pool
    with pytest.deprecated_call(match="train_disjoint_shadows"):
        old = attacks.train_shadow_models(x, y, _train_fn, num_shadows=2, verbose=0)
    new = shadow.train_disjoint_shadows(x, y, _train_fn, num_shadows=2, verbose=0)
    for a, b in zip(old, new):
        for split in ("members", "non_members"):
            np.testing.assert_array_equal(a.logits[split], b.logits[split])


def test_old_monitor_module_warns_and_gives_the_same_class():
    pytest.importorskip("keras")
    from keras_mi.attacks.monitor import AttackMonitor

    sys.modules.pop("keras_mi.attacks.callback", None)
    with pytest.deprecated_call(match="keras_mi.attacks.monitor"):
        old = importlib.import_module("keras_mi.attacks.callback")
    assert old.AttackMonitor is AttackMonitor is attacks.AttackMonitor


def test_new_names_are_public_and_old_ones_are_not_advertised():
    for name in ("train_half_shadow", "train_half_shadows", "train_disjoint_shadows", "SCORES",
                 "softmax", "logsumexp", "predict_logits"):
        assert name in attacks.__all__ and getattr(attacks, name) is not None
    for name in ("summarize", "train_shadow", "train_shadows", "train_shadow_models"):
        assert name not in attacks.__all__
    assert isinstance(attacks.ModelOutputs.from_arrays(
        members=(np.eye(2), [0, 1]), non_members=(np.eye(2), [1, 0])), ModelOutputs)
