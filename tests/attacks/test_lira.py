"""LiRA math against NumPy/scipy references, and the resumable shadow jobs."""


import types

import numpy as np
import pytest
from scipy import special, stats

from keras_mi.attacks import lira, shadow_jobs
from keras_mi.attacks.metrics import auc, roc_curve
from keras_mi.attacks.results import AttackType
from keras_mi.outputs import ModelOutputs


def _auc(scores, is_member):
    fpr, tpr, _ = roc_curve(scores[is_member], scores[~is_member])
    return auc(fpr, tpr)


def _paired_mask(num_shadows, n, rng):
    mask = np.zeros((num_shadows, n), dtype=bool)
    for i in range(0, num_shadows, 2):
        half = rng.random(n) < 0.5
        mask[i], mask[i + 1] = half, ~half
    return mask


def _gaussian_world(n, num_shadows, sigma, shift, seed):
    """phi_j ~ N(mu_j + shift_j * member, sigma_j^2), mu_j spread wide (N(0, 3^2))."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 3.0, n)
    mask = _paired_mask(num_shadows, n, rng)
    shadow = mu + shift * mask + sigma * rng.normal(size=(num_shadows, n))
    is_member = np.arange(n) < n // 2
    target = mu + shift * is_member + sigma * rng.normal(size=n)
    return target, shadow, mask, is_member


# --- the statistic -----------------------------------------------------------

def test_logit_confidence_matches_softmax_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(50, 7))
    labels = rng.integers(0, 7, 50)
    p = special.softmax(logits, axis=1)[np.arange(50), labels]
    np.testing.assert_allclose(lira.logit_confidence(logits, labels),
                               np.log(p) - np.log1p(-p), rtol=1e-9, atol=1e-9)
    # A leading shadow axis gives the same per-model values.
    stacked = lira.logit_confidence(np.stack([logits, 2 * logits]), labels)
    np.testing.assert_allclose(stacked[1], lira.logit_confidence(2 * logits, labels))


def test_logit_confidence_is_exact_where_softmax_saturates():
    # p_y = 1 - 2e-40 rounds to 1 in float64, so log(p / (1 - p)) would be inf.
    phi = lira.logit_confidence(np.array([[40.0, -52.0, 0.0, 0.0]]), np.array([0]))
    assert phi[0] == pytest.approx(40.0 - np.log(2.0 + np.exp(-52.0)), rel=1e-12)
    phi = lira.logit_confidence(np.array([[-60.0, 0.0]]), np.array([0]))
    assert phi[0] == pytest.approx(-60.0)


# --- the likelihood ratio against scipy.stats ---------------------------------

def _reference_scores(t, s, mask, online, fixed):
    """Per-example loop with scipy.stats.norm, written independently."""
    n = len(t)
    mu_in = np.array([s[mask[:, j], j].mean() for j in range(n)])
    mu_out = np.array([s[~mask[:, j], j].mean() for j in range(n)])
    if fixed:
        def pooled(side):
            dev = np.concatenate([s[side[:, j], j] - s[side[:, j], j].mean() for j in range(n)])
            return np.full(n, np.sqrt(np.sum(dev ** 2) / (len(dev) - n)))
        sd_in, sd_out = pooled(mask), pooled(~mask)
    else:
        sd_in = np.array([np.std(s[mask[:, j], j], ddof=1) for j in range(n)])
        sd_out = np.array([np.std(s[~mask[:, j], j], ddof=1) for j in range(n)])
    if online:
        return (stats.norm.logpdf(t, loc=mu_in, scale=sd_in)
                - stats.norm.logpdf(t, loc=mu_out, scale=sd_out))
    return stats.norm.cdf(t, loc=mu_out, scale=sd_out)  # Pr[Z < phi], Z ~ out


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("fixed", [True, False])
def test_lira_scores_match_scipy_reference(online, fixed):
    rng = np.random.default_rng(1)
    n, num_shadows = 40, 10
    mask = rng.random((num_shadows, n)) < 0.5
    mask[:3], mask[3:6] = True, False  # >= 3 in and 3 out per example
    s = rng.normal(size=(num_shadows, n)) * rng.uniform(0.5, 2, n) + 2.0 * mask
    t = rng.normal(size=n) + 1.0
    got = lira.lira_scores(t, s, mask, online=online, fixed_variance=fixed)
    want = _reference_scores(t, s, mask, online, fixed)
    if not online:
        got = stats.norm.cdf(got)  # the offline score is the z of that p-value
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_online_lira_auc_near_analytic_value():
    # Equal variances, shift 1, sigma 1: the optimal per-example test has
    # AUC = Phi(shift / (sigma * sqrt 2)); a global threshold on phi is far
    # worse because mu_j varies (sd 3) across examples.
    t, s, mask, member = _gaussian_world(4000, 64, 1.0, 1.0, seed=0)
    analytic = stats.norm.cdf(1.0 / np.sqrt(2.0))
    for fixed in (True, False):
        got = _auc(lira.lira_scores(t, s, mask, online=True, fixed_variance=fixed), member)
        assert abs(got - analytic) < 0.025, (fixed, got, analytic)
    assert _auc(t, member) < analytic - 0.1


def test_per_example_variance_wins_with_many_shadows_and_uneven_noise():
    rng = np.random.default_rng(5)
    sigma = np.where(rng.random(4000) < 0.5, 0.2, 5.0)
    t, s, mask, member = _gaussian_world(4000, 64, sigma, 1.5 * sigma, seed=6)
    per_example = _auc(lira.lira_scores(t, s, mask, fixed_variance=False), member)
    fixed = _auc(lira.lira_scores(t, s, mask, fixed_variance=True), member)
    assert per_example > fixed + 0.03
    assert abs(per_example - stats.norm.cdf(1.5 / np.sqrt(2.0))) < 0.03


def test_fixed_variance_wins_with_few_shadows():
    t, s, mask, member = _gaussian_world(4000, 4, 1.0, 1.0, seed=7)
    per_example = _auc(lira.lira_scores(t, s, mask, fixed_variance=False), member)
    fixed = _auc(lira.lira_scores(t, s, mask, fixed_variance=True), member)
    assert fixed > per_example + 0.05


@pytest.mark.parametrize("bad, match", [
    (dict(in_mask=np.ones((4, 6), dtype=int)), "boolean"),
    (dict(target_stat=np.full(5, 1.0)), "need target_stat"),
    (dict(target_stat=np.array([1, 2, np.nan, 4, 5, 6.0])), "NaN"),
    (dict(in_mask=np.array([[True] * 6, [False] * 6] * 2)[[0, 1, 1, 1]]), "fewer than 2 'in'"),
])
def test_lira_scores_rejects_bad_inputs(bad, match):
    args = dict(target_stat=np.zeros(6), shadow_stats=np.zeros((4, 6)),
                in_mask=np.array([[True] * 6, [False] * 6] * 2))
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        lira.lira_scores(**args)


def test_logit_confidence_rejects_bad_inputs():
    with pytest.raises(ValueError, match="labels must be integers"):
        lira.logit_confidence(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="NaN"):
        lira.logit_confidence(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(ValueError, match="classes>=2"):
        lira.logit_confidence(np.zeros((2, 1)), np.array([0, 0]))


# --- resumable, splittable shadow jobs ------------------------------------------

NUM_CLASSES = 4


def _pool(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.arange(n)[:, None], rng.normal(size=(n, 2))], axis=1)
    return x.astype(np.float32), rng.integers(0, NUM_CLASSES, n).astype(np.int64)


class _Memorizer:
    """Canned 'model': confident on the pool indices (x[:, 0]) it trained on."""

    def __init__(self, x, y, seed, y_pool):
        self.seen, self.seed, self.y_pool = set(x[:, 0].astype(int).tolist()), seed, y_pool

    def predict(self, x, batch_size=None, verbose=0):
        idx = x[:, 0].astype(int)
        rng = np.random.default_rng(self.seed)
        logits = rng.normal(size=(len(idx), NUM_CLASSES))
        seen = np.array([i in self.seen for i in idx])
        logits[np.arange(len(idx)), self.y_pool[idx]] += 1.0 + 4.0 * seen
        return logits


def _stub_train_fn(pool, calls=None):
    def train_fn(x, y, seed):
        if calls is not None:
            calls.append(seed)
        return _Memorizer(x, y, seed, pool[1])
    return train_fn


def _target(pool, n_members):
    model = _Memorizer(pool[0][:n_members], None, 12345, pool[1])
    logits = model.predict(pool[0])
    return ModelOutputs.from_arrays(members=(logits[:n_members], pool[1][:n_members]),
                                    non_members=(logits[n_members:], pool[1][n_members:]))


def test_shadow_membership_pairs_are_balanced_and_deterministic():
    masks = np.stack([shadow_jobs.shadow_membership(i, 101, seed=3) for i in range(8)])
    assert np.all(masks.sum(axis=0) == 4)  # every example in exactly half
    assert np.all(masks[0] ^ masks[1]) and not np.array_equal(masks[0], masks[2])
    np.testing.assert_array_equal(masks[5], shadow_jobs.shadow_membership(5, 101, seed=3))
    assert not np.array_equal(masks[0], shadow_jobs.shadow_membership(0, 101, seed=4))


def test_train_shadow_writes_file_and_resume_skips(tmp_path):
    pool, calls = _pool(), []
    train_fn = _stub_train_fn(pool, calls)
    paths = shadow_jobs.train_half_shadows(4, pool, train_fn, tmp_path, seed=1, verbose=0)
    assert len(calls) == 4
    with np.load(paths[2], allow_pickle=False) as d:
        np.testing.assert_array_equal(d["in_mask"], shadow_jobs.shadow_membership(2, 60, 1))
        assert d["logits"].shape == (60, NUM_CLASSES) and int(d["num_shadows"]) == 4
    stamp = paths[2].stat().st_mtime_ns
    shadow_jobs.train_half_shadows(4, pool, train_fn, tmp_path, seed=1, verbose=0)
    assert len(calls) == 4 and paths[2].stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="another run"):
        shadow_jobs.train_half_shadow(2, 4, pool, train_fn, tmp_path, seed=2, verbose=0)


def test_verbose_bank_says_how_many_models_are_left(tmp_path, capsys):
    pool = _pool()
    train_fn = _stub_train_fn(pool)
    shadow_jobs.train_half_shadow(3, 6, pool, train_fn, tmp_path, seed=1, verbose=0)
    capsys.readouterr()
    shadow_jobs.train_half_shadows(6, pool, train_fn, tmp_path, seed=1, verbose=1)
    lefts = [line for line in capsys.readouterr().out.splitlines() if "left" in line]
    # Model 3 was done before: it is neither trained nor counted as left.
    assert [line.split()[0] for line in lefts] == ["4", "3", "2", "1"]
    assert all(line.endswith("s at this pace") for line in lefts)
    shadow_jobs.train_half_shadows(6, pool, train_fn, tmp_path, seed=1, verbose=1)
    assert "left" not in capsys.readouterr().out  # nothing trained, nothing to estimate


def test_models_trained_ahead_are_left_out_of_the_estimate(tmp_path, capsys, monkeypatch):
    # A batched trainer: its first call "takes" 60 s and trains 3 of the 6
    # models (it then holds 2 ready), the others come out of later calls.
    pool = _pool()
    clock = {"now": 0.0, "ready": 0, "calls": 0}
    monkeypatch.setattr(shadow_jobs, "time", types.SimpleNamespace(
        perf_counter=lambda: clock["now"]))
    stub = _stub_train_fn(pool)

    def train_fn(x, y, seed):
        clock["calls"] += 1
        if clock["calls"] in (1, 4):  # each batch of 3 trains in one call
            clock["now"] += 60.0
            clock["ready"] = 2
        else:
            clock["ready"] -= 1
        return stub(x, y, seed)

    train_fn.trained_ahead = lambda: clock["ready"]
    shadow_jobs.train_half_shadows(6, pool, train_fn, tmp_path, seed=1, verbose=1)
    lefts = [line.strip() for line in capsys.readouterr().out.splitlines() if "left" in line]
    # 60 s bought 3 models: 20 s each for the 3 not trained yet; then the
    # second batch leaves none to estimate.
    assert lefts == ["5 model(s) left, about 60 s at this pace",
                     "4 model(s) left, about 60 s at this pace",
                     "3 model(s) left, about 60 s at this pace",
                     "2 model(s) left, trained already (one batch)",
                     "1 model(s) left, trained already (one batch)"]


@pytest.mark.parametrize("seconds, text", [(45.2, "45 s"), (720, "12 min"), (9000, "2.5 h")])
def test_duration_reads_in_the_unit_that_fits(seconds, text):
    assert shadow_jobs._duration(seconds) == text


def test_interrupted_write_never_counts(tmp_path, monkeypatch):
    pool = _pool()
    train_fn = _stub_train_fn(pool)
    shadow_jobs.train_half_shadow(0, 2, pool, train_fn, tmp_path, verbose=0)

    def killed_midway(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        shadow_jobs.train_half_shadow(1, 2, pool, train_fn, tmp_path, verbose=0)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shadow_0000.npz"]
    # A hard kill (no cleanup) leaves a temp file: ignored, the index is missing.
    (tmp_path / ".shadow_0001.x1y2.npz.tmp").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"missing .*\[1\]"):
        shadow_jobs.load_shadows(tmp_path)
    shadow_jobs.train_half_shadow(1, 2, pool, train_fn, tmp_path, verbose=0)
    assert shadow_jobs.load_shadows(tmp_path).num_shadows == 2


def test_damaged_final_file_is_retrained(tmp_path):
    pool, calls = _pool(), []
    train_fn = _stub_train_fn(pool, calls)
    path = shadow_jobs.train_half_shadow(0, 2, pool, train_fn, tmp_path, verbose=0)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="unreadable"):
        shadow_jobs.load_shadows(tmp_path)
    with pytest.warns(UserWarning, match="unreadable"):
        shadow_jobs.train_half_shadow(0, 2, pool, train_fn, tmp_path, verbose=0)
    assert len(calls) == 2


def test_two_machines_equal_one_machine(tmp_path):
    pool = _pool(80)
    target = _target(pool, 40)
    shared, single = tmp_path / "shared", tmp_path / "single"
    # Two "machines": own train_fn objects, disjoint indices, same folder.
    shadow_jobs.train_half_shadows(8, pool, _stub_train_fn(pool), shared, seed=9,
                              indices=[0, 3, 4, 7], verbose=0)
    shadow_jobs.train_half_shadows(8, pool, _stub_train_fn(pool), shared, seed=9,
                              indices=[6, 5, 2, 1], verbose=0)
    shadow_jobs.train_half_shadows(8, pool, _stub_train_fn(pool), single, seed=9, verbose=0)
    a = lira.aggregate_lira(shared, target, num_shadows=8, pool=pool, keep_scores=True)
    b = lira.aggregate_lira(single, target, num_shadows=8, pool=pool, keep_scores=True)
    assert [r.name for r in a] == [t.value for t, _, _ in lira.LIRA_VARIANTS]
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra.member_scores, rb.member_scores)
        np.testing.assert_array_equal(ra.non_member_scores, rb.non_member_scores)
    # The memorizing target is easy: every variant separates its members.
    assert min(r.auc for r in a) > 0.9
    assert a.metadata["num_shadows"] == 8


def test_aggregate_lists_missing_and_checks_the_run(tmp_path):
    pool = _pool()
    target = _target(pool, 30)
    shadow_jobs.train_half_shadows(6, pool, _stub_train_fn(pool), tmp_path, indices=[0, 1, 3],
                              verbose=0)
    with pytest.raises(ValueError, match=r"3 of 6 shadows are missing.*\[2, 4, 5\]"):
        lira.aggregate_lira(tmp_path, target)
    shadow_jobs.train_half_shadows(6, pool, _stub_train_fn(pool), tmp_path, indices=[2, 4, 5],
                              verbose=0)
    with pytest.raises(ValueError, match="holds a run of 6"):
        lira.aggregate_lira(tmp_path, target, num_shadows=8)
    with pytest.raises(ValueError, match="another pool"):
        lira.aggregate_lira(tmp_path, target, pool=_pool(seed=1))
    swapped = ModelOutputs.from_arrays(members=target.get("non_members"),
                                       non_members=target.get("members"))
    with pytest.raises(ValueError, match="labels differ"):
        lira.aggregate_lira(tmp_path, swapped)
    with pytest.raises(ValueError, match="no shadow files"):
        lira.aggregate_lira(tmp_path / "empty", target)
    report = lira.aggregate_lira(tmp_path, target, variants=["lira_offline_fixed_var"])
    assert [r.attack_type for r in report] == [AttackType.LIRA_OFFLINE_FIXED_VAR]


def test_train_shadow_rejects_bad_arguments(tmp_path):
    pool = _pool()
    with pytest.raises(ValueError, match="index must lie"):
        shadow_jobs.train_half_shadow(4, 4, pool, _stub_train_fn(pool), tmp_path)
    with pytest.raises(ValueError, match="one per input"):
        shadow_jobs.train_half_shadow(0, 4, (pool[0], pool[1][:-1]), _stub_train_fn(pool), tmp_path)
    with pytest.raises(ValueError, match="NaN"):
        shadow_jobs.train_half_shadow(0, 4, pool, lambda x, y, seed: (lambda v: np.full(
            (len(v), 4), np.nan)), tmp_path)


@pytest.mark.slow
def test_real_keras_shadows_overfit_their_half(tmp_path):
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = rng.integers(0, 3, 96)  # random labels: only memorization helps

    def make_model():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(128, activation="relu"),
                                  keras.layers.Dense(3)])
        model.compile(keras.optimizers.Adam(1e-2),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    train_fn = shadow_jobs.make_train_fn(make_model, {"epochs": 8, "batch_size": 8})
    shadow_jobs.train_half_shadows(2, (x, y), train_fn, tmp_path, seed=0, verbose=0)
    bank = shadow_jobs.load_shadows(tmp_path, pool=(x, y))
    phi = lira.logit_confidence(bank.logits, bank.labels)
    assert phi[bank.in_mask].mean() > phi[~bank.in_mask].mean() + 1.0


def test_run_reaches_lira_through_options(tmp_path):
    from keras_mi.attacks import run

    pool = _pool(80)
    target = _target(pool, 40)
    shadow_jobs.train_half_shadows(8, pool, _stub_train_fn(pool), tmp_path, verbose=0)
    report = run(target, ["lira"], options={"lira": {"shadow_dir": tmp_path}})
    direct = lira.aggregate_lira(shadow_jobs.load_shadows(tmp_path), target)
    assert [r.auc for r in report] == [r.auc for r in direct]
    with pytest.raises(ValueError, match="shadow_dir"):
        run(target, ["lira"])


def test_lira_attack_checks_the_member_mask():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(10, 3)), rng.integers(0, 3, 10)
    shadows, mask = rng.normal(size=(4, 10, 3)), _paired_mask(4, 10, rng)
    with pytest.raises(ValueError, match=r"\(10,\) bool mask"):
        lira.lira_attack(logits, labels, shadows, mask, np.ones(10, bool))
    with pytest.raises(ValueError, match=r"\(10,\) bool mask"):
        lira.lira_attack(logits, labels, shadows, mask, np.arange(8) < 4)
    with pytest.raises(ValueError, match="not LiRA variants"):
        lira.lira_attack(logits, labels, shadows, mask, np.arange(10) < 5, variants=["loss"])


def test_run_lira_trains_then_aggregates_and_warns_on_probabilities(tmp_path):
    pool = _pool(80)
    target = _target(pool, 40)
    calls = []
    report = lira.run_lira(target, pool, _stub_train_fn(pool, calls), 4, tmp_path, seed=2,
                           verbose=0)
    assert len(calls) == 4 and len(report) == 4
    assert report.get("lira_online_fixed_var").auc > 0.9
    lira.run_lira(target, pool, _stub_train_fn(pool, calls), 4, tmp_path, seed=2, verbose=0)
    assert len(calls) == 4  # nothing retrained

    def softmax_model(x, y, seed):
        return lambda v: special.softmax(_Memorizer(x, y, seed, pool[1]).predict(v), axis=1)

    with pytest.warns(UserWarning, match="probabilities"):
        shadow_jobs.train_half_shadow(0, 2, pool, softmax_model, tmp_path / "p", verbose=0)
