"""The always-valid sequential test, and how many users a test needs.

A fixed-horizon test is valid only if it is read once, at the planned sample size: looking at it
daily and stopping at the first significant result inflates the false positive rate several-fold.
The sequential test here replaces the confidence interval by an asymptotic confidence sequence,
an interval valid at every sample size simultaneously, so results may be watched daily (gbstats
``SequentialTwoSidedTTest``, to 1e-6). The price is a wider interval at any single look; the
``tuning`` parameter chooses the sample size at which it is narrowest.

References:
    Howard, Ramdas, McAuliffe, Sekhon (2021). Time-uniform, nonparametric, nonasymptotic
    confidence sequences. Annals of Statistics 49(2).
    Waudby-Smith, Arbour, Sinha, Kennedy, Ramdas (2023). Time-uniform central limit theory and
    asymptotic confidence sequences. arXiv:2103.06476 (v7), eq. 9, 155 and 161.
    GrowthBook, sequential testing: https://docs.growthbook.io/statistics/sequential
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from tastebud.experiments.stats import Effect, _effect, _estimate
from tastebud.experiments.summaries import Summary, _arr

__all__ = [
    "sample_size",
    "sequential",
    "sequential_sample_size",
]


def _rho2(alpha: float, tuning: float) -> float:
    # eq. 161: the mixture variance that makes the sequence tightest at N = tuning
    log_alpha = float(np.log(alpha))
    return (-2.0 * log_alpha + float(np.log(-2.0 * log_alpha + 1.0))) / tuning


def _multiplier(total: ArrayLike, alpha: float, tuning: float) -> NDArray[np.float64]:
    """Half-width of the confidence sequence in standard errors after ``total`` users (eq. 9)."""
    n = _arr(total)
    rho2 = _rho2(alpha, tuning)
    spread = n * rho2 + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.sqrt(2.0 * spread * np.log(np.sqrt(spread) / alpha) / (n * rho2)))


def sequential(
    control: Summary,
    treatment: Summary,
    *,
    alpha: float = 0.05,
    tuning: float = 5000.0,
    relative: bool = True,
) -> Effect:
    """Always-valid test of the lift by an asymptotic confidence sequence (gbstats default).

    With the effect Δ̂ and its standard error se of :func:`~tastebud.experiments.stats.frequentist`
    (delta method, CUPED if given), N = n_A + n_B users so far, and the mixture parameter
    ρ² = (−2 ln α + ln(1 − 2 ln α)) / tuning:

        CI  = Δ̂ ± se √( 2 (Nρ² + 1) / (N ρ²) · ln(√(Nρ² + 1) / α) )
        p   = min(1, 1/E),  E = exp(ρ² N z² / (2 (Nρ² + 1))) / √(Nρ² + 1),  z = Δ̂ / se

    E is the normal-mixture e-value (the Robbins mixture of Howard et al. 2021 applied to the
    asymptotically normal estimate), so under H0 P(∃ N: p_N ≤ α) ≤ α (Ville's inequality,
    asymptotically): the p-value is always valid, and p < α exactly when the sequence excludes
    0. The interval is narrowest relative to the fixed-horizon one near N = ``tuning``; pick
    roughly the total users expected at the end (gbstats default 5,000).

    Args:
        control: The control variant's summary (cumulative since the start).
        treatment: The treatment's summary.
        alpha: The error rate held over all looks.
        tuning: Total users at which the sequence is tightest.
        relative: Relative lift (default) or absolute difference.

    Returns:
        The effect, its confidence sequence at this look and the always-valid p-value; ``nan``
        where :func:`~tastebud.experiments.stats.frequentist` would be ``nan``.

    References:
        Waudby-Smith et al. (2023), eq. 9 (sequence), 155 (p-value), 161 (ρ); Howard et al.
        (2021), section 3.
    """
    est = _estimate(control, treatment, relative)
    total = est.control.n + est.treatment.n
    rho2 = _rho2(alpha, tuning)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        se = np.sqrt(est.variance)
        half = se * _multiplier(total, alpha, tuning)
        spread = total * rho2 + 1.0
        # log space: exp(ρ² N z² / ...) overflows for a strong effect, its inverse does not
        log_e = rho2 * total * est.diff**2 / est.variance / (2.0 * spread) - 0.5 * np.log(spread)
        p_value = np.exp(-np.maximum(log_e, 0.0))
        low, high = est.diff - half, est.diff + half
    return _effect(est, low, high, np.asarray(p_value))


def _lift_variances(
    baseline: ArrayLike, mde: ArrayLike, sd: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(V, U, mde): n × the variance the test assumes for the relative lift, n × the true
    variance of its numerator (both over μ_A²), and the lift, at the alternative."""
    mu, lift = np.broadcast_arrays(_arr(baseline), _arr(mde))
    treated = mu * (1.0 + lift)
    if sd is None:
        bad = (mu <= 0) | (mu >= 1) | (treated <= 0) | (treated >= 1)
        var_a, var_b = mu * (1.0 - mu), treated * (1.0 - treated)
    else:
        s = np.broadcast_to(_arr(sd), mu.shape)
        bad = (mu == 0) | (s <= 0) | ~np.isfinite(s)
        var_a = var_b = s * s
    bad |= (lift == 0) | (lift <= -1) | ~np.isfinite(lift) | ~np.isfinite(mu)
    if np.any(bad):
        kind = "a rate in (0, 1) whose treated rate stays in (0, 1)" if sd is None else "a mean"
        raise ValueError(f"sample size needs {kind}, a positive sd and a lift > -1, not 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        assumed = (var_b + var_a * (1.0 + lift) ** 2) / mu**2
        actual = (var_b + var_a) / mu**2
    return assumed, actual, lift


def _as_count(n: NDArray[np.float64]) -> int | NDArray[np.int64]:
    counts = np.ceil(n - 1e-9).astype(np.int64)
    return int(counts) if counts.ndim == 0 else counts


def _check(alpha: float, power: float) -> None:
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError("alpha and power must lie in (0, 1)")


def sample_size(
    baseline: ArrayLike,
    mde: ArrayLike,
    *,
    sd: ArrayLike | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int | NDArray[np.int64]:
    """Users per variant for the fixed-horizon test to detect a relative lift ``mde``.

    The relative test of :func:`~tastebud.experiments.stats.frequentist` is, multiplied through
    by μ_A, the difference D = μ̂_B − μ̂_A over √(W/n), W = σ²_B + σ²_A (1 + mde)² (its delta
    method at the alternative), while D itself has n Var(D) = σ²_A + σ²_B. So it detects the
    lift δ = μ_A · mde with probability ``power`` when

        √n = (z_{1−α/2} √W + z_{power} √(σ²_A + σ²_B)) / |δ|

    (two-sided, normal approximation, equal split, the far tail neglected; for lifts of 30 %
    and more the realised power runs a few points above ``power``). For a rate,
    σ²_A = p(1 − p) and σ²_B = p′(1 − p′) with p′ = p(1 + mde); for a mean, σ_A = σ_B = sd.

    Args:
        baseline: The control's conversion rate, or its mean when ``sd`` is given.
        mde: The minimum detectable relative lift (0.05 for +5 %; negative for a drop).
        sd: Standard deviation of the per-user metric, for a mean metric.
        alpha: Two-sided significance level.
        power: Chance of detecting a true lift of ``mde``.

    Returns:
        Users per variant, rounded up (an int for scalar input).

    Raises:
        ValueError: A rate outside (0, 1), a zero ``mde`` or mean, or alpha/power outside (0, 1).
    """
    _check(alpha, power)
    assumed, actual, lift = _lift_variances(baseline, mde, sd)
    z_alpha, z_power = special.ndtri(1.0 - alpha / 2.0), special.ndtri(power)
    root_n = (z_alpha * np.sqrt(assumed) + z_power * np.sqrt(actual)) / np.abs(lift)
    return _as_count(root_n**2)


def sequential_sample_size(
    baseline: ArrayLike,
    mde: ArrayLike,
    *,
    sd: ArrayLike | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    tuning: float = 5000.0,
) -> int | NDArray[np.int64]:
    """Users per variant for :func:`sequential` to detect ``mde`` by its last look.

    The smallest n with |δ| √n − c(2n) √W ≥ z_{power} √(σ²_A + σ²_B), with δ, W and σ² as in
    :func:`sample_size` and c(N) the half-width of the confidence sequence in standard errors
    after N users in total. Looks before n can only stop earlier, so this is an upper bound on
    the users a watched test needs for ``power`` (found by bisection, vectorised).

    Args:
        baseline: The control's conversion rate, or its mean when ``sd`` is given.
        mde: The minimum detectable relative lift.
        sd: Standard deviation of the per-user metric, for a mean metric.
        alpha: The error rate held over all looks.
        power: Chance of detecting a true lift of ``mde`` by n.
        tuning: The sequential test's tuning parameter (total users).

    Returns:
        Users per variant, rounded up.

    Raises:
        ValueError: As :func:`sample_size`.
    """
    _check(alpha, power)
    assumed, actual, lift = _lift_variances(baseline, mde, sd)
    target = special.ndtri(power) * np.sqrt(actual)
    low = np.full(lift.shape, np.log(2.0))
    high = np.full(lift.shape, np.log(1e13))
    for _ in range(80):  # bisection on log n: the margin grows with n (√n against √log n)
        mid = 0.5 * (low + high)
        n = np.exp(mid)
        margin = np.abs(lift) * np.sqrt(n) - _multiplier(2.0 * n, alpha, tuning) * np.sqrt(assumed)
        above = margin >= target
        high, low = np.where(above, mid, high), np.where(above, low, mid)
    return _as_count(np.exp(high))
