"""Privacy accounting for the DP-SGD baseline (ε for a δ, and the inverse).

The guarantee is example-level (add-or-remove-one adjacency) for the whole
training run, including every intermediate model. It is computed with
``dp_accounting`` (Google's accounting library that TF-Privacy itself
wraps) as ``steps`` self-compositions of a Poisson-subsampled Gaussian
mechanism with sampling rate ``q = batch_size / num_examples``.

Honest caveats, also returned in :class:`PrivacyReport`:

* **Sampling mismatch.** The trainer draws shuffled, fixed-size batches
  (one pass per epoch), not Poisson samples. The reported ε is the standard
  Poisson-sampling number (what TF-Privacy's own tutorials report); it is
  not a proven bound for shuffled batches.
* **Microbatches.** With per-example clipping (``num_microbatches ==
  batch_size``, the default) one example moves one clipped gradient. With
  fewer microbatches, one example can change a whole clipped microbatch
  mean in a way that TF-Privacy accounts for by doubling the sensitivity,
  i.e. halving the effective noise multiplier; we do the same.
* **δ.** δ must be below ``1/n`` (otherwise "release one random record"
  satisfies the guarantee). The default is the largest power of ten
  strictly below ``1/n`` (``n=2505`` gives ``1e-4``; ``n=1000`` gives
  ``1e-4``).

``dp_accounting`` is imported lazily (it is in the ``tf`` extra).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

ACCOUNTANTS = ("rdp", "pld")


@dataclasses.dataclass(frozen=True)
class PrivacyReport:
    """The (ε, δ) of one DP-SGD run and every input it depends on.

    Example:
      >>> r = privacy_report(1000, 100, 1.1, 10)  # doctest: +SKIP
      >>> round(r.epsilon, 2), r.delta  # doctest: +SKIP
    """

    epsilon: float
    delta: float
    noise_multiplier: float
    num_examples: int
    batch_size: int
    epochs: float
    steps: int
    sampling_probability: float
    num_microbatches: int
    accountant: str
    sampling_assumption: str = (
        "Poisson subsampling with q = batch_size / num_examples; training uses "
        "shuffled fixed-size batches, so the value is the conventional estimate, "
        "not a proof for the sampler actually used")
    adjacency: str = "add-or-remove one example"


def default_delta(num_examples: int) -> float:
    """Largest power of ten strictly below ``1 / num_examples``.

    Example:
      >>> default_delta(2505), default_delta(1000)
      (0.0001, 0.0001)
    """
    _check_positive_int(num_examples, "num_examples")
    exponent = math.floor(math.log10(1.0 / num_examples))
    delta = 10.0 ** exponent
    if delta >= 1.0 / num_examples:
        delta /= 10.0
    return float(f"{delta:.0e}")


def _check_positive_int(value, name):
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def validate_dp_arguments(num_examples: int, batch_size: int, noise_multiplier: float,
                          epochs: float, delta: Optional[float] = None,
                          l2_norm_clip: float = 1.0,
                          num_microbatches: Optional[int] = None,
                          accountant: str = "rdp") -> float:
    """Checks DP-SGD hyperparameters; returns the δ to use.

    Raises:
      ValueError: with what to change, for a negative or non-finite noise
        multiplier, a clip norm <= 0, a batch larger than the data or not
        divisible into the microbatches, epochs <= 0, δ outside (0, 1/n),
        or an unknown accountant.

    Example:
      >>> validate_dp_arguments(1000, 100, 1.0, 5)
      0.0001
    """
    _check_positive_int(num_examples, "num_examples")
    _check_positive_int(batch_size, "batch_size")
    if batch_size > num_examples:
        raise ValueError(f"batch_size ({batch_size}) must not exceed the number of "
                         f"training examples ({num_examples}).")
    if not math.isfinite(noise_multiplier) or noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be a finite number >= 0 "
                         f"(0 = no noise), got {noise_multiplier}.")
    if not math.isfinite(l2_norm_clip) or l2_norm_clip <= 0:
        raise ValueError(f"l2_norm_clip must be > 0, got {l2_norm_clip}.")
    if not epochs > 0:
        raise ValueError(f"epochs must be > 0, got {epochs}.")
    if num_microbatches is not None:
        _check_positive_int(num_microbatches, "num_microbatches")
        if batch_size % num_microbatches:
            raise ValueError(
                f"batch_size ({batch_size}) must be divisible by num_microbatches "
                f"({num_microbatches}); use a divisor of the batch size, or None "
                f"for per-example clipping.")
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got '{accountant}'.")
    if delta is None:
        return default_delta(num_examples)
    if not 0 < delta < 1.0 / num_examples:
        raise ValueError(
            f"delta must lie in (0, 1/n) = (0, {1.0 / num_examples:.3g}) for "
            f"n={num_examples} training examples, got {delta}; a delta of 1/n or "
            f"more permits leaking a whole record. Use e.g. "
            f"{default_delta(num_examples)} (the default).")
    return float(delta)


def _epsilon(noise_multiplier, q, steps, delta, accountant):
    import dp_accounting  # pylint: disable=import-outside-toplevel
    if noise_multiplier == 0:
        return math.inf
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(
            sampling_probability=q,
            event=dp_accounting.GaussianDpEvent(noise_multiplier)),
        steps)
    if accountant == "rdp":
        acc = dp_accounting.rdp.RdpAccountant()
    else:
        acc = dp_accounting.pld.PLDAccountant()
    return float(acc.compose(event).get_epsilon(delta))


def privacy_report(num_examples: int, batch_size: int, noise_multiplier: float,
                   epochs: float, delta: Optional[float] = None,
                   accountant: str = "rdp", num_microbatches: Optional[int] = None,
                   steps: Optional[int] = None) -> PrivacyReport:
    """ε and its assumptions for DP-SGD on ``num_examples`` records.

    Args:
      num_examples: training set size ``n``.
      batch_size: examples per step.
      noise_multiplier: noise stddev / clipping norm.
      epochs: passes over the data; ``steps`` defaults to
        ``ceil(epochs * n / batch_size)``.
      delta: target δ, in ``(0, 1/n)``; default :func:`default_delta`.
      accountant: ``"rdp"`` (Rényi DP, TF-Privacy's default) or ``"pld"``
        (privacy loss distributions; tighter, slower).
      num_microbatches: ``None`` or ``batch_size`` for per-example clipping;
        fewer halves the effective noise (see module docstring).
      steps: the number of optimizer steps actually taken, if known.

    Example:
      >>> privacy_report(60000, 256, 1.1, 60, delta=1e-5).epsilon  # doctest: +SKIP
    """
    delta = validate_dp_arguments(num_examples, batch_size, noise_multiplier, epochs,
                                  delta, num_microbatches=num_microbatches,
                                  accountant=accountant)
    microbatches = batch_size if num_microbatches is None else int(num_microbatches)
    effective_noise = noise_multiplier if microbatches == batch_size else noise_multiplier / 2
    q = batch_size / num_examples
    if steps is None:
        steps = int(math.ceil(epochs * num_examples / batch_size))
    _check_positive_int(steps, "steps")
    eps = _epsilon(effective_noise, q, int(steps), delta, accountant)
    return PrivacyReport(epsilon=eps, delta=delta, noise_multiplier=float(noise_multiplier),
                         num_examples=int(num_examples), batch_size=int(batch_size),
                         epochs=float(epochs), steps=int(steps), sampling_probability=q,
                         num_microbatches=microbatches, accountant=accountant)


def compute_epsilon(num_examples: int, batch_size: int, noise_multiplier: float,
                    epochs: float, delta: Optional[float] = None,
                    accountant: str = "rdp",
                    num_microbatches: Optional[int] = None,
                    steps: Optional[int] = None) -> float:
    """ε of DP-SGD for δ (``inf`` when ``noise_multiplier == 0``).

    See :func:`privacy_report` for the arguments and assumptions.

    Example:
      >>> eps = compute_epsilon(2505, 64, 1.0, 20, delta=1e-4)  # doctest: +SKIP
    """
    return privacy_report(num_examples, batch_size, noise_multiplier, epochs, delta,
                          accountant, num_microbatches, steps).epsilon


def noise_multiplier_for_epsilon(target_epsilon: float, num_examples: int,
                                 batch_size: int, epochs: float,
                                 delta: Optional[float] = None, accountant: str = "rdp",
                                 num_microbatches: Optional[int] = None,
                                 rtol: float = 1e-3, max_noise: float = 1e4,
                                 steps: Optional[int] = None) -> float:
    """Smallest noise multiplier (up to ``rtol``) whose ε is <= ``target_epsilon``.

    Bisection in log space: ε decreases as the noise grows. The returned
    value is the upper end of the final bracket, so its ε never exceeds the
    target. ``steps`` (optimizer steps actually taken) overrides the default
    ``ceil(epochs * n / batch_size)``.

    Raises:
      ValueError: ``target_epsilon <= 0``, or not reachable below
        ``max_noise``.

    Example:
      >>> sigma = noise_multiplier_for_epsilon(4.0, 2505, 64, 20)  # doctest: +SKIP
    """
    if not target_epsilon > 0 or not math.isfinite(target_epsilon):
        raise ValueError(f"target_epsilon must be a finite number > 0, got {target_epsilon}.")
    delta = validate_dp_arguments(num_examples, batch_size, 1.0, epochs, delta,
                                  num_microbatches=num_microbatches, accountant=accountant)

    def eps(sigma):
        return compute_epsilon(num_examples, batch_size, sigma, epochs, delta,
                               accountant, num_microbatches, steps)

    lo, hi = 0.0, 1.0
    while eps(hi) > target_epsilon:
        lo, hi = hi, hi * 2.0
        if hi > max_noise:
            raise ValueError(f"epsilon={target_epsilon} needs a noise multiplier above "
                             f"{max_noise}; train fewer epochs or use a smaller batch.")
    while hi - lo > rtol * hi:
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2.0
        if eps(mid) > target_epsilon:
            lo = mid
        else:
            hi = mid
    return hi
