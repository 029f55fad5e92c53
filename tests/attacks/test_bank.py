"""The bank protocol: leave-one-out pooling, RMIA, low-FPR reporting, bad input."""

import itertools

import numpy as np
import pytest
from scipy import stats

from keras_mi.attacks import bank as kbank
from keras_mi.attacks import metrics, rmia, shadow_jobs
from keras_mi.attacks.results import AttackReport, evaluate_scores, format_low_fpr

# ---------------------------------------------------------------- helpers

def _synthetic_bank(n_models=8, n_pool=60, n_pop=40, classes=3, leak=1.5, seed=0, queries=1):
    """A bank whose models are more confident on their members (no training)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n_pool)
    pop_labels = rng.integers(0, classes, n_pop)
    mask = np.stack([shadow_jobs.shadow_membership(i, n_pool, seed) for i in range(n_models)])
    difficulty = rng.normal(size=n_pool)
    logits = rng.normal(size=(n_models, queries, n_pool, classes))
    bonus = leak * mask[:, None, :] + difficulty[None, None, :]
    logits[..., np.arange(n_pool), labels] += bonus
    pop = rng.normal(size=(n_models, queries, n_pop, classes))
    pop[..., np.arange(n_pop), pop_labels] += rng.normal(size=n_pop)
    return shadow_jobs.ShadowBank(
        logits=logits[:, 0], in_mask=mask, labels=labels, fingerprint="f", seed=seed,
        recipe="synthetic", query_logits=logits if queries > 1 else None,
        population_logits=pop, population_labels=pop_labels)


def _brute_auc(pos, neg):
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def _brute_tpr_at_fpr(pos, neg, target):
    best = 0.0
    for thr in sorted(set(pos) | set(neg) | {np.inf}):
        fpr = np.mean(np.asarray(neg) >= thr)
        if fpr <= target:
            best = max(best, float(np.mean(np.asarray(pos) >= thr)))
    return best


def _np_softmax_true(logits, labels):
    out = np.empty(logits.shape[:-1])
    for idx in itertools.product(*[range(d) for d in logits.shape[:-1]]):
        row = logits[idx]
        e = np.exp(row - row.max())
        out[idx] = e[labels[idx[-1]]] / e.sum()
    return out


def _np_lira_fixed_online(t_stat, s_stat, s_mask):
    """LiRA online, fixed variance, mean centre: an independent loop transcription."""
    n = len(t_stat)
    mu_in, mu_out = np.empty(n), np.empty(n)
    dev_in, dev_out, c_in, c_out = 0.0, 0.0, 0, 0
    for j in range(n):
        ins = [s_stat[k, j] for k in range(len(s_stat)) if s_mask[k, j]]
        outs = [s_stat[k, j] for k in range(len(s_stat)) if not s_mask[k, j]]
        mu_in[j], mu_out[j] = np.mean(ins), np.mean(outs)
        dev_in += sum((v - mu_in[j]) ** 2 for v in ins)
        dev_out += sum((v - mu_out[j]) ** 2 for v in outs)
        c_in += len(ins) - 1
        c_out += len(outs) - 1
    sd_in, sd_out = np.sqrt(dev_in / c_in), np.sqrt(dev_out / c_out)
    return (stats.norm.logpdf(t_stat, mu_in, sd_in) - stats.norm.logpdf(t_stat, mu_out, sd_out))


def _np_rmia(tx, rx, r_in, tz, rz, online, a, gamma):
    """RMIA, transcribed from the paper's formula with plain loops."""
    n, m, k = len(tx), len(tz), len(rx)
    out = np.empty(n)
    pz = []
    for j in range(m):
        mean = sum(rz[i, j] for i in range(k)) / k
        pz.append(mean if online else (1 + a) / 2 * mean + (1 - a) / 2)
    for j in range(n):
        outs = [rx[i, j] for i in range(k) if not r_in[i, j]]
        ins = [rx[i, j] for i in range(k) if r_in[i, j]]
        if online:
            px = (np.mean(ins) + np.mean(outs)) / 2
        else:
            px = (1 + a) / 2 * np.mean(outs) + (1 - a) / 2
        count = 0
        for q in range(m):
            if (tx[j] / px) / (tz[q] / pz[q]) > gamma:
                count += 1
        out[j] = count / m
    return out


# ---------------------------------------------------------------- pooling

def test_pooled_leave_one_out_equals_brute_force():
    bank = _synthetic_bank(n_models=6, n_pool=30, seed=3)
    report = kbank.attack_bank(bank, attacks=["lira_online_fixed_var", "loss"],
                               lira_center="mean", keep_scores=True)
    phi = np.log(_np_softmax_true(bank.logits, bank.labels))
    phi = phi - np.log1p(-np.exp(phi))
    pos, neg = [], []
    for t in range(6):
        others = [k for k in range(6) if k != t]
        s = _np_lira_fixed_online(phi[t], phi[others], bank.in_mask[others])
        pos += list(s[bank.in_mask[t]])
        neg += list(s[~bank.in_mask[t]])
    lira = report.get("lira_online_fixed_var")
    np.testing.assert_allclose(np.sort(lira.member_scores), np.sort(pos), rtol=1e-9, atol=1e-9)
    assert lira.n_members == len(pos) == 90 and lira.n_non_members == len(neg) == 90
    assert lira.auc == pytest.approx(_brute_auc(pos, neg), abs=1e-12)
    for target in (0.01, 0.1, 0.3):
        assert metrics.tpr_at_fpr(lira.fpr, lira.tpr, target) == pytest.approx(
            _brute_tpr_at_fpr(pos, neg, target))
    # The loss attack pools -loss over every (model, record) pair.
    loss = report.get("loss")
    brute = [-np.log(_np_softmax_true(bank.logits[t], bank.labels)) for t in range(6)]
    pos = [-v for t in range(6) for v in brute[t][bank.in_mask[t]]]
    neg = [-v for t in range(6) for v in brute[t][~bank.in_mask[t]]]
    assert loss.auc == pytest.approx(_brute_auc(pos, neg), abs=1e-9)
    assert loss.members_above_all == sum(p > max(neg) for p in pos)
    per = report.metadata["per_target"]["loss"]
    assert len(per["auc"]["values"]) == 6
    assert per["auc"]["min"] <= per["auc"]["median"] <= per["auc"]["max"]


def test_leaky_bank_is_found_and_a_leak_free_bank_is_chance():
    leaky = kbank.attack_bank(_synthetic_bank(leak=3.0, n_pool=200), lira_center="mean")
    clean = kbank.attack_bank(_synthetic_bank(leak=0.0, n_pool=200), lira_center="mean")
    for name in ("lira_online", "lira_offline_fixed_var", "rmia_online", "rmia_offline"):
        assert leaky.get(name).auc > 0.8, name
        assert abs(clean.get(name).auc - 0.5) < 0.08, name
    assert leaky.metadata["pairs"] == 8 * 200
    assert len(leaky.metadata["rmia_offline_a"]) == 8


def test_non_adaptive_uses_the_other_bank_as_shadows():
    target = _synthetic_bank(leak=3.0, seed=1, n_pool=100)
    # The attacker's bank: same pool and halves, but the records it sees
    # as "in" are no more confident (a defense that changed the signal).
    weak = _synthetic_bank(leak=0.0, seed=1, n_pool=100)
    weak.labels = target.labels
    adaptive = kbank.attack_bank(target, attacks=["lira_online"])
    non_adaptive = kbank.attack_bank(target, shadow_bank=weak, attacks=["lira_online"])
    assert non_adaptive.metadata["protocol"] == "non-adaptive"
    assert adaptive.get("lira_online").auc > non_adaptive.get("lira_online").auc + 0.1


def test_queries_average_per_view_scores():
    bank = _synthetic_bank(queries=3, n_pool=40)
    report = kbank.attack_bank(bank, attacks=["lira_online_fixed_var"], keep_scores=True)
    from keras_mi.attacks import lira
    phi = np.moveaxis(lira.logit_confidence(bank.query_logits, bank.labels), 1, -1)
    per_view = [lira.lira_scores(phi[0][:, q], phi[1:, :, q], bank.in_mask[1:], fixed_variance=True,
                                 center="median") for q in range(3)]
    # With a fixed variance the per-view variances differ from the joint
    # fit, so compare the one-view case exactly and the mean's ranking.
    joint = lira.lira_scores(phi[0], phi[1:], bank.in_mask[1:], fixed_variance=True,
                             center="median")
    single = lira.lira_scores(phi[0][:, :1], phi[1:, :, :1], bank.in_mask[1:],
                              fixed_variance=True, center="median")
    np.testing.assert_allclose(single, per_view[0], rtol=1e-12)
    assert joint.shape == (40,)
    assert np.corrcoef(joint, np.mean(per_view, axis=0))[0, 1] > 0.95
    first = report.get("lira_online_fixed_var").member_scores[:int(bank.in_mask[0].sum())]
    np.testing.assert_allclose(first, joint[bank.in_mask[0]], rtol=1e-12)


def test_median_centre_matches_numpy():
    rng = np.random.default_rng(5)
    shadow = rng.normal(size=(7, 9))
    shadow[0, 0] = 40.0  # an outlying shadow moves the mean, not the median
    mask = np.stack([shadow_jobs.shadow_membership(i, 9, 0) for i in range(7)])
    target = rng.normal(size=9)
    from keras_mi.attacks import lira
    got = lira.lira_scores(target, shadow, mask, online=True, center="median")
    want = []
    for j in range(9):
        ins, outs = shadow[mask[:, j], j], shadow[~mask[:, j], j]
        mi, mo = np.median(ins), np.median(outs)
        si = np.sqrt(np.sum((ins - mi) ** 2) / (len(ins) - 1))
        so = np.sqrt(np.sum((outs - mo) ** 2) / (len(outs) - 1))
        want.append(stats.norm.logpdf(target[j], mi, si) - stats.norm.logpdf(target[j], mo, so))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    with pytest.raises(ValueError, match="center"):
        lira.lira_scores(target, shadow, mask, center="mode")


# ---------------------------------------------------------------- RMIA

def test_rmia_matches_the_numpy_transcription():
    rng = np.random.default_rng(7)
    k, n, m = 7, 50, 30
    rx, rz = rng.uniform(0.01, 1, (k, n)), rng.uniform(0.01, 1, (k, m))
    r_in = rng.random((k, n)) < 0.5
    r_in[0], r_in[1] = True, False  # every record has an in and an out model
    tx, tz = rng.uniform(0.01, 1, n), rng.uniform(0.01, 1, m)
    for online, a, gamma in [(True, 0.0, 1.0), (False, 0.3, 1.0), (False, 0.7, 2.0),
                             (True, 0.0, 0.5), (False, 1.0, 1.0)]:
        got = rmia.rmia_scores(tx, rx, r_in, tz, rz, online=online, offline_a=a, gamma=gamma,
                               chunk=7)
        want = _np_rmia(tx, rx, r_in, tz, rz, online, a, gamma)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_rmia_hand_computed_case():
    # Offline, a = 0: Pr(x) = (Pr_out(x) + 1) / 2.
    # x0: Pr_out = 0.5 -> Pr(x) = 0.75, r = 0.6 / 0.75 = 0.8
    # z : Pr(z) = (0.4 + 1) / 2 = 0.7 and (0.8 + 1) / 2 = 0.9; r(z) = 0.35/0.7 = 0.5, 0.9/0.9 = 1
    # x0 / z: 1.6 > 1, 0.8 < 1 -> score 0.5; gamma = 0.7: both -> 1.0
    args = (np.array([0.6]), np.array([[0.5]]), np.array([[False]]), np.array([0.35, 0.9]),
            np.array([[0.4, 0.8]]))
    assert rmia.rmia_scores(*args, online=False, offline_a=0.0).tolist() == [0.5]
    assert rmia.rmia_scores(*args, online=False, offline_a=0.0, gamma=0.7).tolist() == [1.0]


def test_rmia_offline_a_is_tuned_on_the_paired_model():
    bank = _synthetic_bank(leak=2.0, n_pool=120)
    sig = rmia.rmia_signal(bank.query_logits if bank.query_logits is not None
                           else bank.logits[:, None], bank.labels)
    sig_z = rmia.rmia_signal(bank.population_logits, bank.population_labels)
    rest = np.arange(2, 8)
    a = rmia.tune_offline_a(sig[1], sig[rest], bank.in_mask[rest], bank.in_mask[1], sig_z[1],
                            sig_z[rest])
    aucs = {}
    for cand in rmia.OFFLINE_A_GRID:
        s = rmia.rmia_scores(sig[1], sig[rest], bank.in_mask[rest], sig_z[1], sig_z[rest],
                             online=False, offline_a=cand)
        aucs[cand] = _brute_auc(s[bank.in_mask[1]], s[~bank.in_mask[1]])
    assert aucs[a] == pytest.approx(max(aucs.values()), abs=1e-12)


def test_rmia_bad_input():
    ok = (np.full(2, 0.5), np.full((2, 2), 0.5), np.array([[True, False], [False, True]]),
          np.full(3, 0.5), np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="gamma"):
        rmia.rmia_scores(*ok, gamma=0)
    with pytest.raises(ValueError, match="offline_a"):
        rmia.rmia_scores(*ok, online=False, offline_a=1.5)
    with pytest.raises(ValueError, match="'out' reference"):
        rmia.rmia_scores(ok[0], ok[1], np.ones((2, 2), bool), ok[3], ok[4], online=False)


# ---------------------------------------------------------------- low FPR

def test_clopper_pearson_has_its_defining_tail_probabilities():
    for k, n in [(3, 40), (17, 1000), (0, 25), (25, 25)]:
        lo, hi = metrics.clopper_pearson(k, n)
        if k > 0:
            assert stats.binom.sf(k - 1, n, lo) == pytest.approx(0.025, rel=1e-6)
        else:
            assert lo == 0.0
        if k < n:
            assert stats.binom.cdf(k, n, hi) == pytest.approx(0.025, rel=1e-6)
        else:
            assert hi == 1.0
        assert lo <= k / n <= hi


def test_low_fpr_figures_are_na_below_resolution_and_carry_an_interval_above():
    rng = np.random.default_rng(0)
    small = evaluate_scores(rng.normal(1, 1, 1000), rng.normal(0, 1, 1000))
    large = evaluate_scores(rng.normal(1, 1, 20000), rng.normal(0, 1, 20000))
    p_small, p_large = small.low_fpr[0.001], large.low_fpr[0.001]
    assert not p_small["resolved"] and p_small["negatives_needed"] == 10000
    assert format_low_fpr(p_small).startswith("n/a (needs 10000 negatives, has 1000)")
    assert small.low_fpr[0.01]["resolved"]
    assert p_large["resolved"]
    lo, hi = p_large["ci"]
    assert lo < p_large["tpr"] < hi and hi - lo < 0.02
    assert "[" in format_low_fpr(p_large)
    # The interval of a figure from fewer positives is wider.
    lo_s, hi_s = small.low_fpr[0.01]["ci"]
    lo_l, hi_l = large.low_fpr[0.01]["ci"]
    assert hi_s - lo_s > hi_l - lo_l


def test_both_boundary_rules_are_stored():
    # Non-members 0..999: at FPR exactly 0.01 (10 false positives) the "<="
    # rule may use the threshold that admits them, the "<" rule may not.
    neg = np.arange(1000.0)
    pos = np.array([995.5, 989.5, 500.0])
    r = evaluate_scores(pos, neg)
    p = r.low_fpr[0.01]
    assert p["tpr"] == pytest.approx(2 / 3) and p["tpr_strict"] == pytest.approx(1 / 3)
    back = type(r).from_dict(r.to_dict())
    assert back.low_fpr[0.01]["tpr_strict"] == pytest.approx(1 / 3)
    assert back.members_above_all == 0


def test_strongest_by_low_fpr_prefers_the_tail():
    rng = np.random.default_rng(1)
    neg = rng.normal(0, 1, 20000)
    broad = evaluate_scores(rng.normal(1.0, 1, 20000), neg, name="loss")
    tail = evaluate_scores(np.concatenate([rng.normal(0, 1, 18000), rng.normal(6, 0.1, 2000)]),
                           neg, name="lira_online")
    report = AttackReport([broad, tail])
    assert report.strongest(by="auc").name == "loss"
    assert report.strongest(by="low_fpr").name == "lira_online"


# ---------------------------------------------------------------- files, bad input

class _MeanModel:
    """A "model" whose logits favour the classes of its training records' nearest mean."""

    def __init__(self, x, y, classes=3):
        self.means = np.stack([x[y == c].mean(axis=0) if np.any(y == c) else np.zeros(x.shape[1])
                               for c in range(classes)])

    def predict(self, x, batch_size=None, verbose=0):
        return -((x[:, None, :] - self.means[None]) ** 2).sum(-1)


def _pool(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return rng.normal(size=(n, 4)) + y[:, None], y


def test_train_bank_writes_one_file_per_model_and_resumes(tmp_path):
    pool, pop = _pool(), _pool(12, seed=1)
    calls = []

    def train_fn(x, y, seed):
        calls.append(seed)
        return _MeanModel(x, y)

    kbank.train_bank(train_fn, pool, tmp_path, num_models=4, population=pop, recipe="r",
                     indices=[0, 1], verbose=0)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="missing"):
        kbank.load_bank(tmp_path)
    kbank.train_bank(train_fn, pool, tmp_path, num_models=4, population=pop, recipe="r",
                     verbose=0)
    assert len(calls) == 4  # the first two were not trained again
    bank = kbank.load_bank(tmp_path, num_models=4, pool=pool, recipe="r")
    assert bank.population_logits.shape == (4, 1, 12, 3)
    assert np.all(bank.in_mask.sum(axis=0) == 2)
    acc = kbank.model_accuracies(bank)
    assert 0 <= acc["population"]["min"] <= acc["population"]["max"] <= 1
    with pytest.raises(ValueError, match="recipe"):
        kbank.load_bank(tmp_path, recipe="other")


def test_only_first_is_the_bank_those_models_would_form(tmp_path):
    pool, pop = _pool(), _pool(12, seed=1)
    fn = lambda x, y, seed: _MeanModel(x, y)  # noqa: E731
    # Models 0-5 of a bank of 8 are done; 6 and 7 are still training.
    kbank.train_bank(fn, pool, tmp_path / "big", num_models=8, population=pop, recipe="r",
                     indices=range(6), verbose=0)
    kbank.train_bank(fn, pool, tmp_path / "small", num_models=4, population=pop, recipe="r",
                     verbose=0)
    interim = kbank.load_bank(tmp_path / "big", only_first=4, pool=pool, recipe="r")
    small = kbank.load_bank(tmp_path / "small", num_models=4)
    assert interim.num_models == 4
    np.testing.assert_array_equal(interim.in_mask, small.in_mask)
    np.testing.assert_allclose(interim.logits, small.logits)
    np.testing.assert_allclose(interim.population_logits, small.population_logits)
    assert kbank.load_bank(tmp_path / "big", only_first=6).num_models == 6
    for bad, match in [(8, "missing"), (3, "even number of models from 2 to 8"),
                       (10, "from 2 to 8"), (2, "a bank needs an even number of models from 4")]:
        with pytest.raises(ValueError, match=match):
            kbank.load_bank(tmp_path / "big", only_first=bad)


def test_mixed_recipes_in_one_folder_are_refused(tmp_path):
    pool = _pool()
    fn = lambda x, y, seed: _MeanModel(x, y)  # noqa: E731
    kbank.train_bank(fn, pool, tmp_path, num_models=4, recipe="none", indices=[0], verbose=0)
    with pytest.raises(ValueError, match="another run"):
        kbank.train_bank(fn, pool, tmp_path, num_models=4, recipe="mmd", indices=[0], verbose=0)
    kbank.train_bank(fn, pool, tmp_path, num_models=4, recipe="mmd", indices=[1], verbose=0)
    with pytest.raises(ValueError, match="disagree on recipe"):
        kbank.load_bank(tmp_path)


@pytest.mark.parametrize("num_models", [2, 5, 0, 258, 3.0, True])
def test_bad_bank_sizes_fail_before_training(tmp_path, num_models):
    def train_fn(*_args, **_kw):
        raise AssertionError("must not train")
    with pytest.raises(ValueError, match="even number of models from 4 to 256"):
        kbank.train_bank(train_fn, _pool(), tmp_path, num_models=num_models, verbose=0)
    assert not any(tmp_path.iterdir())


def test_small_pool_and_overlapping_population_fail_before_training(tmp_path):
    def train_fn(*_args, **_kw):
        raise AssertionError("must not train")
    x, y = _pool(40)
    with pytest.raises(ValueError, match="needs at least 12 records"):
        kbank.train_bank(train_fn, (x[:10], y[:10]), tmp_path, num_models=4, verbose=0)
    with pytest.raises(ValueError, match="3 population records also appear in the pool"):
        kbank.train_bank(train_fn, (x, y), tmp_path, num_models=4,
                         population=(np.concatenate([x[:3], x[:2] + 100]), y[:5]), verbose=0)
    assert not any(tmp_path.iterdir())


def test_flip_shift_queries_views():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3))
    views = kbank.flip_shift_queries(2)(x)
    assert len(views) == 18
    np.testing.assert_array_equal(views[0], x)
    np.testing.assert_array_equal(views[9], x[:, :, ::-1])  # flipped, no shift
    # A shift by (dy, dx) = (-2, -2) moves content down-right, zero-filling.
    np.testing.assert_array_equal(views[1][:, 2:, 2:], x[:, :4, :4])
    assert np.all(views[1][:, :2] == 0)
    with pytest.raises(ValueError, match="images"):
        kbank.flip_shift_queries(1)(np.zeros((3, 4)))


def test_image_bank_stores_every_query_view_and_lira_uses_them(tmp_path):
    rng = np.random.default_rng(3)
    y = np.arange(48) % 3
    x = rng.normal(size=(48, 6, 6, 1)) + y[:, None, None, None]
    pop = (rng.normal(size=(12, 6, 6, 1)) + 5.0, np.arange(12) % 3)

    class FlatMean(_MeanModel):
        def __init__(self, xs, ys):
            super().__init__(xs.reshape(len(xs), -1), ys)

        def predict(self, xs, batch_size=None, verbose=0):
            return super().predict(np.asarray(xs).reshape(len(xs), -1))

    kbank.train_bank(lambda xs, ys, seed: FlatMean(xs, ys), (x, y), tmp_path, num_models=6,
                     population=pop, queries=kbank.flip_shift_queries(1), verbose=0)
    bank = kbank.load_bank(tmp_path)
    assert bank.query_logits.shape == (6, 18, 48, 3)
    assert bank.population_logits.shape == (6, 18, 12, 3)
    np.testing.assert_array_equal(bank.query_logits[:, 0], bank.logits)
    # The flipped view is a different input, so its logits differ.
    assert not np.allclose(bank.query_logits[:, 9], bank.logits)
    one_view = shadow_jobs.ShadowBank(bank.logits, bank.in_mask, bank.labels, bank.fingerprint,
                                      bank.seed)
    full = kbank.attack_bank(bank, attacks=["lira_online_fixed_var"], keep_scores=True)
    plain = kbank.attack_bank(one_view, attacks=["lira_online_fixed_var"], keep_scores=True)
    assert not np.allclose(full.results[0].member_scores, plain.results[0].member_scores)


def test_true_class_probability_matches_numpy_and_checks_labels():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(2, 3, 5, 4))
    y = rng.integers(0, 4, 5)
    np.testing.assert_allclose(rmia.true_class_probability(z, y), _np_softmax_true(z, y),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="labels must be integers"):
        rmia.true_class_probability(z, np.array([0, 1, 2, 3, 4]))


def test_non_adaptive_needs_the_same_pool_size_and_population():
    target = _synthetic_bank(n_pool=60, seed=1)
    other = _synthetic_bank(n_pool=60, seed=1)
    other.population_labels = (other.population_labels + 1) % 3
    with pytest.raises(ValueError, match="another population"):
        kbank.attack_bank(target, shadow_bank=other)
    smaller = _synthetic_bank(n_models=6, n_pool=60, seed=1)
    with pytest.raises(ValueError, match="same size"):
        kbank.attack_bank(target, shadow_bank=smaller)
