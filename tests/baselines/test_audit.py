"""Empirical ε lower bounds (keras_mi.baselines.audit) against a brute-force reference."""

import math

import numpy as np
import pytest
from scipy import stats

from keras_mi.attacks.metrics import clopper_pearson
from keras_mi.baselines.audit import empirical_epsilon, split_halves


def _reference_bound(members, non_members, threshold, delta, confidence):
    """Both forms at one threshold, from the project's two-sided CP interval."""
    tp = int(np.sum(members >= threshold))
    fp = int(np.sum(non_members >= threshold))
    # A two-sided interval at `confidence` has one-sided sides at 1 - (1-c)/2.
    tpr_lo, _ = clopper_pearson(tp, len(members), confidence)
    _, fpr_hi = clopper_pearson(fp, len(non_members), confidence)
    forms = []
    for num, den in ((tpr_lo - delta, fpr_hi), (1 - fpr_hi - delta, 1 - tpr_lo)):
        forms.append(math.log(num / den) if num > 0 and den > 0 else -math.inf)
    return forms, tpr_lo, fpr_hi


def _reference_best(members, non_members, delta, confidence):
    best = (-math.inf, None)
    for t in np.append(np.unique(np.concatenate([members, non_members])), np.inf):
        forms, _, _ = _reference_bound(members, non_members, t, delta, confidence)
        best = max(best, (max(forms), t), key=lambda b: b[0])
    return best


def test_unsplit_bound_matches_a_brute_force_search():
    rng = np.random.default_rng(1)
    members, non_members = rng.normal(1.5, 1, 60), rng.normal(0, 1, 50)
    r = empirical_epsilon(members, non_members, delta=1e-3, split=False)
    eps, t = _reference_best(members, non_members, 1e-3, 0.95)
    assert r.epsilon == pytest.approx(max(eps, 0.0), rel=1e-9)
    assert r.threshold == t
    forms, tpr_lo, fpr_hi = _reference_bound(members, non_members, t, 1e-3, 0.95)
    assert r.tpr_low == pytest.approx(tpr_lo) and r.fpr_high == pytest.approx(fpr_hi)
    assert r.tpr == np.mean(members >= t) and r.fpr == np.mean(non_members >= t)
    assert (r.num_members, r.num_non_members) == (60, 50)


def test_split_bound_picks_on_one_half_and_evaluates_on_the_other():
    rng = np.random.default_rng(2)
    members, non_members = rng.normal(2.0, 1, 81), rng.normal(0, 1, 70)
    r = empirical_epsilon(members, non_members, delta=0.0, seed=7)
    halves = np.random.default_rng(7)
    m_sel, m_eval = split_halves(81, halves)
    n_sel, n_eval = split_halves(70, halves)
    _, t = _reference_best(members[m_sel], non_members[n_sel], 0.0, 0.95)
    assert r.threshold == t
    forms, _, _ = _reference_bound(members[m_eval], non_members[n_eval], t, 0.0, 0.95)
    assert r.epsilon == pytest.approx(max(max(forms), 0.0), rel=1e-9)
    assert (r.num_members, r.num_non_members) == (len(m_eval), len(n_eval))
    assert r.split and r.epsilon > 0.5  # the shift is large enough to show


def test_identical_distributions_give_no_bound_at_the_stated_rate():
    # True ε = 0: any positive split bound is a false claim, allowed with
    # probability at most 1 - confidence.
    rng = np.random.default_rng(3)
    false_claims = sum(empirical_epsilon(rng.normal(size=100), rng.normal(size=100),
                                         seed=s).epsilon > 0 for s in range(100))
    assert false_claims <= 12  # 5% expected; binomial(100, 0.05) exceeds 12 w.p. < 0.001
    unsplit = empirical_epsilon(rng.normal(size=2000), rng.normal(size=2000), split=False)
    assert unsplit.epsilon < 0.25


def test_gaussian_scores_never_beat_the_true_epsilon_of_a_mu_gdp_pair():
    # N(mu, 1) vs N(0, 1) is mu-GDP: delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2).
    mu, delta = 2.0, 1e-3

    def delta_of(eps):
        return (stats.norm.cdf(-eps / mu + mu / 2)
                - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2))

    from scipy.optimize import brentq
    true_eps = brentq(lambda e: delta_of(e) - delta, 0.0, 50.0)
    rng = np.random.default_rng(4)
    bounds = [empirical_epsilon(rng.normal(mu, 1, 3000), rng.normal(0, 1, 3000),
                                delta=delta, seed=s).epsilon for s in range(10)]
    assert max(bounds) <= true_eps
    assert min(bounds) > 0.3 * true_eps  # and the bound has power (n limits it)


def test_perfect_separation_is_finite_and_grows_like_log_n():
    values = []
    for n in (100, 1000, 10000):
        r = empirical_epsilon(np.ones(n), np.zeros(n))
        # n/2 evaluated per group, all correct: TPR_lo = a^(2/n), FPR_hi = 1 - a^(2/n).
        a = 0.025
        expected = math.log(a ** (2 / n) / (1 - a ** (2 / n)))
        assert math.isfinite(r.epsilon) and r.epsilon == pytest.approx(expected, rel=1e-6)
        values.append(r.epsilon)
    steps = np.diff(values)
    assert np.allclose(steps, math.log(10), atol=0.05)  # log(n)-ish growth


def test_higher_confidence_and_larger_delta_only_lower_the_bound():
    rng = np.random.default_rng(5)
    members, non_members = rng.normal(2, 1, 400), rng.normal(0, 1, 400)
    base = empirical_epsilon(members, non_members, split=False).epsilon
    assert empirical_epsilon(members, non_members, confidence=0.999, split=False).epsilon < base
    assert empirical_epsilon(members, non_members, delta=0.05, split=False).epsilon < base


@pytest.mark.parametrize("kwargs, match", [
    (dict(member_scores=[1.0], non_member_scores=[0.0, 1.0]), "at least 2"),
    (dict(member_scores=[1.0, np.nan], non_member_scores=[0.0, 1.0]), "NaN"),
    (dict(member_scores=[1.0, 2.0, 3.0], non_member_scores=[0.0, 1.0, 2.0]), "at least 4"),
    (dict(member_scores=[1.0, 2.0], non_member_scores=[0.0, 1.0], delta=1.0,
          split=False), "delta"),
    (dict(member_scores=[1.0, 2.0], non_member_scores=[0.0, 1.0], confidence=1.0,
          split=False), "confidence"),
])
def test_bad_input_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        empirical_epsilon(**kwargs)


def test_best_of_several_attacks_is_bonferroni_corrected():
    from keras_mi.baselines.audit import empirical_epsilon_of_attacks

    rng = np.random.default_rng(6)
    scores = {"strong": (rng.normal(3, 1, 400), rng.normal(0, 1, 400)),
              "weak": (rng.normal(0.5, 1, 400), rng.normal(0, 1, 400)),
              "none": (rng.normal(0, 1, 400), rng.normal(0, 1, 400))}
    out = empirical_epsilon_of_attacks(scores, delta=1e-4, seed=3)
    each = {k: empirical_epsilon(m, n, delta=1e-4, confidence=1 - 0.05 / 3, seed=3).epsilon
            for k, (m, n) in scores.items()}
    assert out["attack"] == "strong" and out["epsilon"] == pytest.approx(each["strong"])
    assert {k: v["epsilon"] for k, v in out["per_attack"].items()} == pytest.approx(each)
    # The correction costs something: one attack alone at 95 % gives more.
    alone = empirical_epsilon(*scores["strong"], delta=1e-4, seed=3).epsilon
    assert alone > out["epsilon"]
