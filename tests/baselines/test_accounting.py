"""Accounting: ε agrees with independent computations; bad inputs are refused."""

import math

import numpy as np
import pytest

dp_accounting = pytest.importorskip("dp_accounting")

from keras_mi._compat import import_tf_privacy  # noqa: E402
from keras_mi.baselines import (  # noqa: E402
    compute_epsilon,
    default_delta,
    noise_multiplier_for_epsilon,
    privacy_report,
)


def _rdp_epsilon(n, batch, sigma, epochs, delta):
    # Built directly from dp_accounting, independent of keras_mi's code path.
    q = batch / n
    steps = math.ceil(epochs * n / batch)
    accountant = dp_accounting.rdp.RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    accountant.compose(event, count=steps)  # `count` instead of SelfComposedDpEvent
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize("n,batch,sigma,epochs,delta", [
    (2505, 64, 1.0, 20, 1e-4), (1000, 100, 0.8, 3, 1e-5), (60000, 256, 1.1, 2, 1e-5)])
def test_epsilon_matches_dp_accounting_rdp(n, batch, sigma, epochs, delta):
    expected = _rdp_epsilon(n, batch, sigma, epochs, delta)
    assert compute_epsilon(n, batch, sigma, epochs, delta) == pytest.approx(expected, rel=1e-9)


def test_full_batch_epsilon_matches_numpy_rdp_formula():
    # q = 1: each step is a Gaussian mechanism with RDP alpha / (2 sigma^2);
    # RDP -> (eps, delta) by Canonne-Kamath-Steinke (2020), Prop. 12.
    n, sigma, epochs, delta = 500, 3.0, 4, 1e-4
    orders = np.asarray(dp_accounting.rdp.rdp_privacy_accountant.DEFAULT_RDP_ORDERS, float)
    orders = orders[orders > 1.01]
    rdp = epochs * orders / (2 * sigma ** 2)
    eps = rdp + np.log1p(-1 / orders) - np.log(delta * orders) / (orders - 1)
    assert compute_epsilon(n, n, sigma, epochs, delta) == pytest.approx(eps.min(), rel=1e-9)


def test_epsilon_matches_tf_privacy_statement_including_microbatches():
    lib = import_tf_privacy("privacy.analysis.compute_dp_sgd_privacy_lib")
    n, batch, sigma, epochs, delta = 2505, 64, 1.2, 10, 1e-4
    for microbatches, used in [(None, False), (16, True)]:
        tfp = lib._compute_dp_sgd_example_privacy(  # pylint: disable=protected-access
            epochs, sigma, delta, used_microbatching=used,
            poisson_subsampling_probability=batch / n)
        ours = compute_epsilon(n, batch, sigma, epochs, delta, num_microbatches=microbatches)
        assert ours == pytest.approx(tfp, rel=1e-9)
    # Microbatching halves the effective noise, so it costs privacy.
    assert compute_epsilon(n, batch, sigma, epochs, delta, num_microbatches=16) > \
        compute_epsilon(n, batch, sigma, epochs, delta)


def test_pld_is_no_looser_than_rdp():
    rdp = compute_epsilon(2505, 64, 1.0, 5, 1e-4, accountant="rdp")
    pld = compute_epsilon(2505, 64, 1.0, 5, 1e-4, accountant="pld")
    assert 0 < pld <= rdp


def test_epsilon_shrinks_with_noise_and_grows_with_epochs():
    assert compute_epsilon(2505, 64, 2.0, 10, 1e-4) < compute_epsilon(2505, 64, 1.0, 10, 1e-4)
    assert compute_epsilon(2505, 64, 1.0, 20, 1e-4) > compute_epsilon(2505, 64, 1.0, 10, 1e-4)
    assert compute_epsilon(2505, 64, 0.0, 10, 1e-4) == math.inf


def test_noise_multiplier_for_epsilon_inverts_compute_epsilon():
    sigma = noise_multiplier_for_epsilon(2.0, 2505, 64, 10, delta=1e-4, steps=300)
    assert compute_epsilon(2505, 64, sigma, 10, 1e-4, steps=300) <= 2.0 < \
        compute_epsilon(2505, 64, sigma * 0.99, 10, 1e-4, steps=300)
    for target in (1.0, 8.0):
        sigma = noise_multiplier_for_epsilon(target, 2505, 64, 10, delta=1e-4)
        eps = compute_epsilon(2505, 64, sigma, 10, 1e-4)
        assert eps <= target
        assert compute_epsilon(2505, 64, sigma * 0.99, 10, 1e-4) > target * 0.995


def test_default_delta_is_below_one_over_n():
    for n in (10, 999, 1000, 1001, 2505, 60000):
        d = default_delta(n)
        assert d < 1 / n <= 10 * d * 1.0000001 or d * 10 == pytest.approx(1 / n)


def test_report_states_assumptions():
    r = privacy_report(2505, 64, 1.0, 2, delta=1e-4)
    assert r.steps == math.ceil(2 * 2505 / 64) and r.sampling_probability == 64 / 2505
    assert "Poisson" in r.sampling_assumption and r.accountant == "rdp"


@pytest.mark.parametrize("kwargs,match", [
    (dict(noise_multiplier=-0.1), "noise_multiplier"),
    (dict(delta=1e-3), "delta"),
    (dict(delta=0.0), "delta"),
    (dict(batch_size=2000), "batch_size"),
    (dict(num_microbatches=7), "divisible"),
    (dict(accountant="moments"), "accountant"),
    (dict(epochs=0), "epochs"),
])
def test_bad_arguments(kwargs, match):
    args = dict(num_examples=1000, batch_size=64, noise_multiplier=1.0, epochs=2,
                delta=1e-5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        privacy_report(**args)


def test_unreachable_epsilon_raises():
    with pytest.raises(ValueError, match="target_epsilon"):
        noise_multiplier_for_epsilon(0.0, 1000, 64, 2)
