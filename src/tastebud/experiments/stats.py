"""Pure statistics of A/B tests: fixed-horizon tests of one variant against another.

The tests take the per-variant summaries of :mod:`tastebud.experiments.summaries` (sufficient
statistics: counts, sums, sums of squares and of products), so an experiment of any size is
analysed from a handful of numbers. Every field may be a Python float or a numpy array: all
functions broadcast, so one call analyses thousands of simulated experiments (or 30 daily looks
× 2,000 experiments) at once. Scalars in give Python floats out; arrays give arrays.

The formulas match ``gbstats`` 0.8.0 exactly (``tests/test_gbstats.py`` checks them to 1e-6):
Welch's t with the Welch-Satterthwaite degrees of freedom, the delta-method variance of the
relative lift, CUPED with the pooled coefficient, and the Bayesian effect model with a flat prior.
Where ``gbstats`` returns a placeholder (lift 0, p-value 1) for data it cannot analyse, this module
returns ``nan``: no users or one user in a variant, a zero variance, or a control mean of zero for
a relative lift. No input raises or warns. Besides the A/B tests: the sample ratio mismatch check
(:func:`srm_p_value`), Holm's adjustment (:func:`holm`) and the interleaving preference test
(:func:`preference_test`).

The always-valid sequential test is in :mod:`tastebud.experiments.sequential`.

References:
    GrowthBook statistics: https://docs.growthbook.io/statistics/overview and the source of
    ``gbstats`` (github.com/growthbook/growthbook, packages/stats).
    Deng, Knoblich, Lu (2018). Applying the delta method in metric analytics. KDD.
    Deng, Xu, Kohavi, Walker (2013). Improving the sensitivity of online controlled experiments by
    utilizing pre-experiment data (CUPED). WSDM.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special
from scipy import stats as sps

from tastebud.experiments.summaries import (
    _F,
    Adjusted,
    Floats,
    Ratio,
    Summary,
    _arr,
    _out,
    _sm_mean,
    _sm_variance,
    _where,
    pooled_theta,
)

__all__ = [
    "BayesianEffect",
    "Effect",
    "bayesian",
    "frequentist",
    "holm",
    "preference_test",
    "srm_p_value",
]


@dataclass(frozen=True)
class Effect:
    """A frequentist (or sequential) comparison of treatment with control.

    ``lift`` is relative, (treatment − control) / control, unless the test was called with
    ``relative=False`` (then it is the absolute difference). Degenerate inputs give ``nan``.
    """

    control_mean: Floats
    """The control's metric (for CUPED, the unadjusted post-exposure mean)."""
    treatment_mean: Floats
    """The treatment's metric (for CUPED, the unadjusted post-exposure mean)."""
    lift: Floats
    """Point estimate of the (relative) effect."""
    ci_low: Floats
    """Lower bound of the confidence interval (or sequence) at level 1 − alpha."""
    ci_high: Floats
    """Upper bound."""
    std_error: Floats
    """Standard error of ``lift``."""
    p_value: Floats
    """Two-sided p-value (always valid for the sequential test)."""

    @property
    def significant(self) -> bool | NDArray[np.bool_]:
        """The interval excludes 0 (``False`` where the effect is ``nan``)."""
        low, high = _arr(self.ci_low), _arr(self.ci_high)
        flag = (low > 0) | (high < 0)
        return bool(flag) if flag.ndim == 0 else flag


@dataclass(frozen=True)
class BayesianEffect:
    """The posterior of the (relative) effect Δ of treatment over control.

    Degenerate inputs give ``nan``.
    """

    lift: Floats
    """Posterior mean of Δ."""
    ci_low: Floats
    """Lower bound of the central credible interval at level 1 − alpha."""
    ci_high: Floats
    """Upper bound."""
    std_error: Floats
    """Posterior standard deviation of Δ."""
    chance_to_beat: Floats
    """P(treatment better than control): P(Δ > 0), or P(Δ < 0) for an inverse metric."""
    risk_control: Floats
    """Expected loss of shipping control, E[max(Δ, 0)] (inverse metric: E[max(−Δ, 0)])."""
    risk_treatment: Floats
    """Expected loss of shipping treatment, E[max(−Δ, 0)] (inverse metric: E[max(Δ, 0)])."""


@dataclass(frozen=True)
class _Moments:
    n: _F
    mean: _F  # adjusted for CUPED
    raw_mean: _F  # unadjusted: the denominator of the relative lift
    variance: _F


@dataclass(frozen=True)
class _Estimate:
    control: _Moments
    treatment: _Moments
    diff: _F
    variance: _F  # of diff
    ok: NDArray[np.bool_]


def _moments(s: Summary) -> _Moments:
    if isinstance(s, Adjusted):
        return _Moments(_arr(s.n), _arr(s.mean), _sm_mean(s.post), _arr(s.variance))
    if isinstance(s, Ratio):
        return _Moments(_arr(s.n), _arr(s.mean), _arr(s.mean), _arr(s.variance))
    mean = _sm_mean(s)
    return _Moments(_arr(s.n), mean, mean, _sm_variance(s))


def _pair(control: Summary, treatment: Summary) -> tuple[Summary, Summary]:
    if isinstance(control, Adjusted) != isinstance(treatment, Adjusted):
        raise TypeError("CUPED needs an Adjusted summary for both control and treatment")
    if isinstance(control, Adjusted) and isinstance(treatment, Adjusted):
        theta_c, theta_t = _arr(control.theta), _arr(treatment.theta)
        unset = np.isnan(theta_c) | np.isnan(theta_t)
        if np.any(unset):
            pooled = _arr(pooled_theta(control, treatment))
            control = replace(control, theta=_out(np.where(unset, pooled, theta_c)))
            treatment = replace(treatment, theta=_out(np.where(unset, pooled, theta_t)))
    return control, treatment


def _estimate(control: Summary, treatment: Summary, relative: bool) -> _Estimate:
    """The effect and its variance (gbstats ``frequentist_diff`` / ``frequentist_variance``)."""
    a, b = (_moments(s) for s in _pair(control, treatment))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if relative:
            diff = (b.mean - a.mean) / a.raw_mean
            var = b.variance / (a.raw_mean**2 * b.n) + a.variance * b.raw_mean**2 / (
                a.raw_mean**4 * a.n
            )
        else:
            diff = b.mean - a.mean
            var = b.variance / b.n + a.variance / a.n
        ok = (a.n >= 2) & (b.n >= 2) & np.isfinite(diff) & np.isfinite(var) & (var > 0)
        if relative:
            # As gbstats: a relative lift needs a spread in both arms and a control mean.
            ok &= (a.variance > 0) & (b.variance > 0) & (a.raw_mean != 0)
        else:
            # An absolute difference needs a spread in one arm only: a guardrail rate that is
            # 0 in control (no errors) and rises in the treatment is exactly what to detect.
            ok &= (a.variance >= 0) & (b.variance >= 0)
    return _Estimate(a, b, np.asarray(diff), np.asarray(var), np.asarray(ok))


def _welch_df(est: _Estimate) -> _F:
    """Welch-Satterthwaite degrees of freedom, on the per-user variances as gbstats."""
    a, b = est.control, est.treatment
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        va, vb = a.variance / a.n, b.variance / b.n
        return np.asarray(
            (va + vb) ** 2 / (vb**2 / (b.n - 1.0) + va**2 / (a.n - 1.0)), dtype=np.float64
        )


def _effect(est: _Estimate, low: _F, high: _F, p_value: _F) -> Effect:
    ok = est.ok
    with np.errstate(invalid="ignore"):
        std_error = np.sqrt(np.where(ok, est.variance, np.nan))
    return Effect(
        control_mean=_out(est.control.raw_mean),
        treatment_mean=_out(est.treatment.raw_mean),
        lift=_out(_where(ok, est.diff)),
        ci_low=_out(_where(ok, low)),
        ci_high=_out(_where(ok, high)),
        std_error=_out(std_error),
        p_value=_out(_where(ok, p_value)),
    )


def frequentist(
    control: Summary, treatment: Summary, *, alpha: float = 0.05, relative: bool = True
) -> Effect:
    """Welch's t-test of the relative lift, with the delta method (gbstats ``TwoSidedTTest``).

    With means μ_A, μ_B (CUPED-adjusted for :class:`Adjusted`; the denominator μ*_A stays the
    unadjusted control mean), per-user variances σ² and users n:

        lift = (μ_B − μ_A) / μ*_A
        se²  = σ²_B / (μ*_A² n_B) + σ²_A μ*_B² / (μ*_A⁴ n_A)          (delta method)
        df   = (σ²_A/n_A + σ²_B/n_B)² / (σ⁴_A/(n_A²(n_A−1)) + σ⁴_B/(n_B²(n_B−1)))
        CI   = lift ± t_{1−α/2, df} se,   p = 2 P(T_df > |lift| / se)

    With ``relative=False`` the effect is μ_B − μ_A with se² = σ²_A/n_A + σ²_B/n_B (Welch's
    test; scipy ``ttest_ind(equal_var=False)`` gives the same t and p on raw data).

    Args:
        control: The control variant's summary.
        treatment: The treatment's summary (same kind; both :class:`Adjusted` for CUPED, whose
            unset θ is pooled from the pair).
        alpha: One minus the confidence level.
        relative: Relative lift (default) or absolute difference.

    Returns:
        The effect; ``nan`` fields where n < 2, a variance is zero or the control mean is 0.

    References:
        Welch (1947), Biometrika 34; Satterthwaite (1946), Biometrics Bulletin 2.
        GrowthBook, frequentist engine: https://docs.growthbook.io/statistics/details
    """
    est = _estimate(control, treatment, relative)
    df = _welch_df(est)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(est.variance)
        half = sps.t.ppf(1.0 - alpha / 2.0, df) * se
        p_value = 2.0 * sps.t.sf(np.abs(est.diff / se), df)
        low, high = est.diff - half, est.diff + half
    return _effect(est, low, high, np.asarray(p_value))


def bayesian(
    control: Summary,
    treatment: Summary,
    *,
    alpha: float = 0.05,
    relative: bool = True,
    inverse: bool = False,
    prior_mean: float = 0.0,
    prior_sd: float | None = None,
) -> BayesianEffect:
    """Bayesian effect model, as gbstats ``EffectBayesianABTest``.

    The data give Δ̂ and se² of :func:`frequentist` (normal likelihood). With the default flat
    (improper) prior the posterior is Δ ~ N(Δ̂, se²); with a proper prior N(m, s²) it is
    N(μ, τ²), τ⁻² = se⁻² + s⁻², μ = τ² (Δ̂/se² + m/s²). Then, with z = μ/τ:

        chance_to_beat = Φ(z)
        risk_control   = E[max(Δ, 0)]  = μ Φ(z) + τ φ(z)     (loss if control is kept)
        risk_treatment = E[max(−Δ, 0)] = −μ Φ(−z) + τ φ(z)   (loss if treatment is shipped)
        credible interval = μ ± τ Φ⁻¹(1 − α/2)

    For an ``inverse`` metric (lower is better: latency, errors) the chance is Φ(−z) and the two
    risks swap.

    Args:
        control: The control variant's summary.
        treatment: The treatment's summary.
        alpha: One minus the credibility of the interval.
        relative: Relative lift (default) or absolute difference.
        inverse: Lower values are better.
        prior_mean: Mean of a proper prior on Δ (same scale as the effect).
        prior_sd: Its standard deviation; ``None`` for the flat prior (gbstats' default).

    Returns:
        The posterior summary; ``nan`` fields for degenerate inputs, as :func:`frequentist`.

    References:
        GrowthBook, Bayesian engine: https://docs.growthbook.io/statistics/details
    """
    est = _estimate(control, treatment, relative)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if prior_sd is None:
            mean, sd = est.diff, np.sqrt(est.variance)
        else:
            precision = 1.0 / est.variance + 1.0 / prior_sd**2
            mean = (est.diff / est.variance + prior_mean / prior_sd**2) / precision
            sd = np.sqrt(1.0 / precision)
        z = mean / sd
        density = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
        gain = mean * special.ndtr(z) + sd * density
        loss = -mean * special.ndtr(-z) + sd * density
        q = special.ndtri(1.0 - alpha / 2.0)
    chance = special.ndtr(-z) if inverse else special.ndtr(z)
    risk_control, risk_treatment = (loss, gain) if inverse else (gain, loss)
    ok = est.ok
    return BayesianEffect(
        lift=_out(_where(ok, mean)),
        ci_low=_out(_where(ok, mean - q * sd)),
        ci_high=_out(_where(ok, mean + q * sd)),
        std_error=_out(_where(ok, sd)),
        chance_to_beat=_out(_where(ok, chance)),
        risk_control=_out(_where(ok, risk_control)),
        risk_treatment=_out(_where(ok, risk_treatment)),
    )


def srm_p_value(counts: ArrayLike, weights: ArrayLike) -> Floats:
    """Sample ratio mismatch: Pearson's chi-square of users per variant against the weights.

    With N users in all, expected counts E_i = N w_i / Σw and X² = Σ (O_i − E_i)² / E_i, the
    p-value is P(χ²_{k−1} > X²) over the k variants of positive weight (gbstats ``check_srm``).
    A variant of weight 0 that received users is a mismatch by itself (p = 0); no users at all,
    or a single variant, give p = 1. Flagging (at p < 0.001) is the caller's decision.

    Args:
        counts: Users per variant along the last axis (leading axes: experiments).
        weights: Configured traffic weights, broadcastable to ``counts``.

    Returns:
        The p-value per experiment.

    References:
        Fabijan et al. (2019). Diagnosing sample ratio mismatch in online controlled experiments.
        KDD.
    """
    observed = _arr(counts)
    w = np.broadcast_to(_arr(weights), observed.shape)
    active = w > 0
    total = observed.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(active, w, 0.0) / np.where(active, w, 0.0).sum(axis=-1, keepdims=True)
        expected = share * total
        x2 = np.where(active, (observed - expected) ** 2 / expected, 0.0).sum(axis=-1)
    df = active.sum(axis=-1) - 1.0
    p = sps.chi2.sf(x2, np.maximum(df, 1.0))
    p = np.where((total[..., 0] == 0) | (df < 1), 1.0, p)
    p = np.where(np.any(~active & (observed > 0), axis=-1), 0.0, p)
    return _out(p)


def holm(p_values: ArrayLike) -> NDArray[np.float64]:
    """Holm's step-down adjustment of the p-values along the last axis.

    Sorted ascending p_(1) ≤ … ≤ p_(m), the adjusted value is
    p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)); rejecting where p̃ < α controls the
    family-wise error rate at α for any dependence. ``nan`` entries (no result) stay ``nan``
    and do not count in m.

    Args:
        p_values: One family per row of the last axis (e.g. treatments against one control).

    Returns:
        Adjusted p-values in the input's order and shape.

    References:
        Holm (1979). A simple sequentially rejective multiple test procedure. Scandinavian
        Journal of Statistics 6(2), 65-70.
    """
    p = np.atleast_1d(_arr(p_values))
    order = np.argsort(p, axis=-1)  # nan sorts last, so it never lowers a real p-value
    ranked = np.take_along_axis(p, order, axis=-1)
    m = np.sum(~np.isnan(p), axis=-1, keepdims=True)
    steps = np.minimum(1.0, (m - np.arange(p.shape[-1])) * ranked)
    steps = np.maximum.accumulate(steps, axis=-1)
    adjusted = np.empty_like(p)
    np.put_along_axis(adjusted, order, steps, axis=-1)
    return adjusted


def preference_test(wins_a: ArrayLike, wins_b: ArrayLike) -> Floats:
    """Two-sided binomial test that users prefer neither ranker (interleaving).

    Each user who clicked more on one ranker's items counts as a win for it (ties are dropped
    before). Under H0 wins_a ~ Binomial(n, 1/2) with n = wins_a + wins_b, and, the distribution
    being symmetric, p = min(1, 2 P(X ≤ min(wins_a, wins_b))), equal to
    ``scipy.stats.binomtest(wins_a, n).pvalue``. ``nan`` without any preference (n = 0).

    Args:
        wins_a: Users preferring ranker A.
        wins_b: Users preferring ranker B.

    Returns:
        The p-value (vectorised over experiments).

    References:
        Radlinski, Kurup, Joachims (2008). How does clickthrough data reflect retrieval quality?
        CIKM (team-draft interleaving).
    """
    a, b = np.broadcast_arrays(np.rint(_arr(wins_a)), np.rint(_arr(wins_b)))
    n = a + b
    p = np.minimum(1.0, 2.0 * sps.binom.cdf(np.minimum(a, b), n, 0.5))
    return _out(np.where(n > 0, p, np.nan))
