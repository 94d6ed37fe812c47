"""The pure A/B statistics (issue 17, point 5): known answers computed independently (scipy, closed
forms on raw per-user data), properties, the vectorised calls, degenerate inputs, and the error
rates the tests promise (sample-size round trips, peeking with the sequential test)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray
from scipy import stats

from tastebud.experiments.sequential import sample_size, sequential, sequential_sample_size
from tastebud.experiments.stats import (
    Effect,
    bayesian,
    frequentist,
    holm,
    preference_test,
    srm_p_value,
)
from tastebud.experiments.summaries import (
    Adjusted,
    Proportion,
    Ratio,
    SampleMean,
    pooled_theta,
    with_pooled_theta,
)

F = NDArray[np.float64]
values = arrays(np.float64, st.integers(3, 40), elements=st.floats(-100, 100, width=32))
positive = arrays(np.float64, st.integers(3, 40), elements=st.floats(0.5, 100, width=32))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240617)


def spread(x: F) -> bool:
    # sums of squares lose digits against scipy's two-pass variance when the spread is tiny
    return bool(np.var(x) > 1e-3 * (np.mean(x * x) + 1.0))


@settings(deadline=None, max_examples=60)
@given(values, values, st.sampled_from([0.05, 0.1, 0.01]))
def test_absolute_difference_is_welchs_t(a: F, b: F, alpha: float) -> None:
    assume(spread(a) and spread(b))
    effect = frequentist(SampleMean.of(a), SampleMean.of(b), alpha=alpha, relative=False)
    ref = stats.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(1 - alpha)
    assert effect.lift == pytest.approx(np.mean(b) - np.mean(a), rel=1e-9, abs=1e-9)
    assert float(effect.lift) / float(effect.std_error) == pytest.approx(ref.statistic, rel=1e-6)
    assert effect.p_value == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)
    assert (effect.ci_low, effect.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-6, abs=1e-6)


def relative_by_hand(a: F, b: F, alpha: float) -> tuple[float, float, float, float]:
    """Lift, CI and p-value from the raw data: delta method and Welch's df, written out."""
    ma, mb, va, vb, na, nb = a.mean(), b.mean(), a.var(ddof=1), b.var(ddof=1), len(a), len(b)
    lift = mb / ma - 1
    se = np.sqrt(vb / (ma**2 * nb) + va * mb**2 / (ma**4 * na))
    df = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    half = stats.t.ppf(1 - alpha / 2, df) * se
    return lift, lift - half, lift + half, 2 * stats.t.sf(abs(lift / se), df)


@settings(deadline=None, max_examples=60)
@given(positive, positive)
def test_relative_lift_uses_the_delta_method(a: F, b: F) -> None:
    assume(spread(a) and spread(b))
    effect = frequentist(SampleMean.of(a), SampleMean.of(b))
    got = (effect.lift, effect.ci_low, effect.ci_high, effect.p_value)
    assert got == pytest.approx(relative_by_hand(a, b, 0.05), rel=1e-6, abs=1e-9)
    assert effect.control_mean == pytest.approx(a.mean())
    assert effect.significant == (float(effect.p_value) < 0.05)


def test_ratio_variance_is_the_linearised_per_user_variance(rng: np.random.Generator) -> None:
    # The delta method equals the variance of the influence values m − r·d, over μ_d².
    shown = rng.poisson(5.0, 3000) + 1.0
    clicks = rng.binomial(shown.astype(int), 0.1).astype(float)
    ratio = Ratio.of(clicks, shown)
    r = clicks.sum() / shown.sum()
    assert ratio.mean == pytest.approx(r)
    expected = np.var(clicks - r * shown, ddof=1) / shown.mean() ** 2
    assert ratio.variance == pytest.approx(expected, rel=1e-9)


def test_cuped_is_the_test_of_adjusted_values(rng: np.random.Generator) -> None:
    pre_a, pre_b = rng.gamma(2.0, 2.0, 800), rng.gamma(2.0, 2.0, 900)
    post_a = 1.0 + 0.9 * pre_a + rng.normal(0.0, 1.0, 800)
    post_b = 1.1 + 0.9 * pre_b + rng.normal(0.0, 1.0, 900)
    control, treatment = Adjusted.of(post_a, pre_a), Adjusted.of(post_b, pre_b)
    pre, post = np.concatenate([pre_a, pre_b]), np.concatenate([post_a, post_b])
    theta = np.cov(post, pre)[0, 1] / np.var(pre, ddof=1)
    assert pooled_theta(control, treatment) == pytest.approx(theta, rel=1e-9)
    # y − θx per user: same mean difference, same variances; the lift divides by raw ȳ_A
    adj_a, adj_b = post_a - theta * pre_a, post_b - theta * pre_b
    effect = frequentist(control, treatment)
    lift = (adj_b.mean() - adj_a.mean()) / post_a.mean()
    se = np.sqrt(
        adj_b.var(ddof=1) / (post_a.mean() ** 2 * 900)
        + adj_a.var(ddof=1) * post_b.mean() ** 2 / (post_a.mean() ** 4 * 800)
    )
    assert (effect.lift, effect.std_error) == pytest.approx((lift, se), rel=1e-9)
    plain = frequentist(SampleMean.of(post_a), SampleMean.of(post_b))
    assert float(effect.std_error) < 0.6 * float(plain.std_error)  # ρ ≈ 0.95: far less noise
    # the stored θ is used as given once set
    pinned = with_pooled_theta(control, treatment)
    assert frequentist(*pinned) == effect
    zero = frequentist(Adjusted.of(post_a, pre_a, 0), Adjusted.of(post_b, pre_b), alpha=0.05)
    assert zero == effect  # axis 0 of a 1-D array is the same summary


@settings(deadline=None, max_examples=80)
@given(st.floats(-5, 5), st.floats(0.01, 3), st.booleans())
def test_bayesian_closed_forms(mean: float, sd: float, inverse: bool) -> None:
    # Build summaries whose relative lift is `mean` with standard error `sd`: absolute scale.
    n = 1000.0
    control = SampleMean(n, 0.0, 0.5 * sd**2 * n * (n - 1))  # per-user var = sd² n / 2
    treatment = SampleMean(n, mean * n, 0.5 * sd**2 * n * (n - 1) + mean**2 * n)
    b = bayesian(control, treatment, relative=False, inverse=inverse, alpha=0.1)
    assert b.lift == pytest.approx(mean, abs=1e-9) and b.std_error == pytest.approx(sd)
    dist = stats.norm(mean, sd)
    beat = dist.sf(0) if not inverse else dist.cdf(0)
    gain = dist.expect(lambda x: x, lb=0.0)  # E[max(Δ, 0)], by quadrature
    loss = -dist.expect(lambda x: x, ub=0.0)
    if inverse:
        gain, loss = loss, gain
    assert b.chance_to_beat == pytest.approx(beat, abs=1e-9)
    assert (b.risk_control, b.risk_treatment) == pytest.approx((gain, loss), abs=1e-7)
    assert (b.ci_low, b.ci_high) == pytest.approx(tuple(dist.ppf([0.05, 0.95])), abs=1e-9)


def test_bayesian_proper_prior_shrinks(rng: np.random.Generator) -> None:
    a, b = SampleMean.of(rng.normal(10, 2, 200)), SampleMean.of(rng.normal(10.4, 2, 200))
    flat = bayesian(a, b)
    assert bayesian(a, b, prior_sd=1e6).lift == pytest.approx(flat.lift, rel=1e-6)
    tight = bayesian(a, b, prior_mean=0.0, prior_sd=1e-4)
    assert abs(float(tight.lift)) < 1e-3 * abs(float(flat.lift)) + 1e-6
    # posterior precision adds up
    v, p = float(flat.std_error) ** 2, 0.02**2
    mid = bayesian(a, b, prior_sd=0.02)
    assert mid.std_error == pytest.approx((1 / v + 1 / p) ** -0.5)
    assert mid.lift == pytest.approx(float(flat.lift) / v / (1 / v + 1 / p))


@settings(deadline=None, max_examples=60)
@given(positive, positive, st.sampled_from([5000.0, 100.0, 1e6]))
def test_sequential_interval_is_wider_and_agrees_with_its_p_value(a: F, b: F, tune: float) -> None:
    assume(spread(a) and spread(b))
    seq = sequential(SampleMean.of(a), SampleMean.of(b), tuning=tune)
    z = float(seq.lift) / float(seq.std_error)
    half = float(seq.ci_high) - float(seq.lift)
    assert half >= 1.959 * float(seq.std_error)  # never narrower than a fixed normal interval
    assert float(seq.p_value) >= 2 * stats.norm.sf(abs(z)) - 1e-12
    if abs(abs(float(seq.lift)) - half) > 1e-9 * half:  # off the boundary
        assert seq.significant == (float(seq.p_value) < 0.05)


def test_sequential_known_answer() -> None:
    # Waudby-Smith et al. (2023) eq. 9 and 155 by hand, absolute difference of two means.
    control, treatment = SampleMean(400, 400.0, 2000.0), SampleMean(600, 720.0, 3600.0)
    seq = sequential(control, treatment, relative=False, tuning=1000.0)
    va, vb = (2000 - 400**2 / 400) / 399, (3600 - 720**2 / 600) / 599
    var, diff, n = va / 400 + vb / 600, 1.2 - 1.0, 1000
    rho2 = (-2 * np.log(0.05) + np.log(-2 * np.log(0.05) + 1)) / 1000
    half = np.sqrt(var * n) * np.sqrt(2 * (n * rho2 + 1) * np.log(np.sqrt(n * rho2 + 1) / 0.05))
    half /= n * np.sqrt(rho2)
    e = np.exp(rho2 * diff**2 * n / var / (2 * (n * rho2 + 1))) / np.sqrt(n * rho2 + 1)
    assert (seq.ci_low, seq.ci_high) == pytest.approx((diff - half, diff + half), rel=1e-12)
    assert seq.p_value == pytest.approx(min(1.0, 1 / e), rel=1e-12)


def normal_days(
    rng: np.random.Generator, sims: int, days: int, per_day: int, mean: F | float, sd: float
) -> SampleMean:
    """Cumulative daily summaries of normal per-user values, drawn exactly from their laws
    (Σx ~ N(nμ, nσ²) and (n−1)s²/σ² ~ χ²_{n−1}, independent), shape (days, sims)."""
    total = rng.normal(per_day * np.asarray(mean), sd * np.sqrt(per_day), (days, sims))
    within = sd**2 * rng.chisquare(per_day - 1, (days, sims))
    n = per_day * np.arange(1, days + 1)[:, None] * np.ones((1, sims))
    return SampleMean(n, np.cumsum(total, 0), np.cumsum(within + total**2 / per_day, 0))


def test_peeking_daily_keeps_the_sequential_error_rate(rng: np.random.Generator) -> None:
    # 3,000 A/A tests looked at on each of 30 days: the sequential test stays under alpha (the
    # fixed-horizon t-test, stopped at its first significant look, does not).
    a = normal_days(rng, 3000, 30, 150, 10.0, 3.0)
    b = normal_days(rng, 3000, 30, 150, 10.0, 3.0)
    seq = np.asarray(sequential(a, b, tuning=9000.0).significant)
    naive = np.asarray(frequentist(a, b).significant)
    assert seq.shape == (30, 3000)
    assert seq.any(axis=0).mean() <= 0.055
    assert naive.any(axis=0).mean() > 0.15
    assert naive[-1].mean() == pytest.approx(0.05, abs=0.015)  # one look: alpha


@pytest.mark.parametrize(("baseline", "mde", "power"), [(0.05, 0.1, 0.8), (0.2, -0.05, 0.9)])
def test_rate_sample_size_round_trip(
    rng: np.random.Generator, baseline: float, mde: float, power: float
) -> None:
    n = sample_size(baseline, mde, power=power)
    assert isinstance(n, int)
    sims = 4000
    control = Proportion(n, rng.binomial(n, baseline, sims))
    treatment = Proportion(n, rng.binomial(n, baseline * (1 + mde), sims))
    detected = np.asarray(frequentist(control, treatment).significant)
    assert detected.mean() == pytest.approx(power, abs=0.03)


def test_mean_sample_size_round_trip(rng: np.random.Generator) -> None:
    n = sample_size(10.0, 0.02, sd=4.0)
    assert isinstance(n, int)
    control = normal_days(rng, 4000, 1, n, 10.0, 4.0)
    treatment = normal_days(rng, 4000, 1, n, 10.2, 4.0)
    assert np.mean(frequentist(control, treatment).significant) == pytest.approx(0.8, abs=0.03)


def test_sequential_sample_size_round_trip(rng: np.random.Generator) -> None:
    n = sequential_sample_size(0.1, 0.1, tuning=20_000.0)
    assert isinstance(n, int) and n > sample_size(0.1, 0.1)
    control = Proportion(n, rng.binomial(n, 0.1, 4000))
    treatment = Proportion(n, rng.binomial(n, 0.11, 4000))
    last_look = np.asarray(sequential(control, treatment, tuning=20_000.0).significant)
    assert last_look.mean() == pytest.approx(0.8, abs=0.03)


def test_sample_size_vectorises_and_rejects_nonsense() -> None:
    many = sample_size(np.array([0.05, 0.1, 0.3]), 0.05)
    assert isinstance(many, np.ndarray) and many.dtype == np.int64
    assert list(many) == [sample_size(p, 0.05) for p in (0.05, 0.1, 0.3)]
    assert sample_size(0.1, 0.02) > sample_size(0.1, 0.05)
    # the textbook two-proportion formula (pooled null variance) lands within a few percent
    p1, p2 = 0.1, 0.105
    z_a, z_b = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    pbar = (p1 + p2) / 2
    textbook = (
        z_a * np.sqrt(2 * pbar * (1 - pbar)) + z_b * np.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2 / (p2 - p1) ** 2
    assert sample_size(0.1, 0.05) == pytest.approx(textbook, rel=0.06)
    for bad in [
        dict(baseline=0.0, mde=0.1),
        dict(baseline=0.6, mde=1.0),
        dict(baseline=0.1, mde=0),
    ]:
        with pytest.raises(ValueError):
            sample_size(**bad)
    with pytest.raises(ValueError):
        sequential_sample_size(0.1, 0.1, power=1.0)


def test_holm_known_answer() -> None:
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06
    got = holm([0.01, 0.04, 0.03, 0.005])
    assert got == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    with_missing = holm([0.02, np.nan, 0.01])  # m = 2
    assert with_missing[[0, 2]] == pytest.approx([0.02, 0.02]) and np.isnan(with_missing[1])


@settings(deadline=None, max_examples=100)
@given(arrays(np.float64, st.integers(1, 12), elements=st.floats(0, 1)), st.floats(0.001, 0.2))
def test_holm_rejects_as_the_step_down_procedure(p: F, alpha: float) -> None:
    adjusted = holm(p)
    assert np.all(adjusted >= p - 1e-15) and np.all(adjusted <= 1)
    rejected = np.zeros(len(p), bool)  # Holm (1979), step by step
    for k, i in enumerate(np.argsort(p, kind="stable")):
        if p[i] > alpha / (len(p) - k):
            break
        rejected[i] = True
    # off the boundaries (where the product rounds), the two agree
    boundary = np.any(np.isclose(np.sort(p) * (len(p) - np.arange(len(p))), alpha, rtol=1e-9))
    if not boundary:
        assert np.array_equal(adjusted <= alpha, rejected)
    rows = np.stack([p, p[::-1]])
    assert np.array_equal(holm(rows), np.stack([adjusted, adjusted[::-1]]))


@settings(deadline=None, max_examples=100)
@given(
    st.lists(st.integers(0, 10_000), min_size=2, max_size=6).filter(lambda c: sum(c) > 0),
    st.data(),
)
def test_srm_is_pearsons_chi_square(counts: list[int], data: st.DataObject) -> None:
    weights = data.draw(st.lists(st.floats(0.05, 5), min_size=len(counts), max_size=len(counts)))
    w = np.array(weights)
    expected = w / w.sum() * sum(counts)
    ref = stats.chisquare(counts, expected).pvalue
    assert srm_p_value(counts, weights) == pytest.approx(ref, rel=1e-9, abs=1e-300)


def test_srm_edge_cases_and_rows() -> None:
    assert srm_p_value([0, 0], [1, 1]) == 1.0
    assert srm_p_value([100], [1]) == 1.0
    assert srm_p_value([500, 480, 3], [1, 1, 0]) == 0.0  # users in a variant of weight 0
    assert srm_p_value([500, 480, 0], [1, 1, 0]) == pytest.approx(srm_p_value([500, 480], [1, 1]))
    rows = np.array([[5050, 4950], [5500, 4500], [100, 300]])
    got = srm_p_value(rows, [1, 1])
    assert isinstance(got, np.ndarray)
    assert got == pytest.approx([srm_p_value(r, [1, 1]) for r in rows])
    assert float(srm_p_value([50_500, 49_500], [1, 1])) < 0.01  # 1 % off at 100,000 users


@settings(deadline=None, max_examples=100)
@given(st.integers(0, 300), st.integers(0, 300))
def test_preference_test_is_the_binomial_test(a: int, b: int) -> None:
    p = preference_test(a, b)
    if a + b == 0:
        assert np.isnan(p)
    else:
        assert p == pytest.approx(stats.binomtest(a, a + b).pvalue, rel=1e-9, abs=1e-300)


def test_preference_test_vectorises() -> None:
    got = preference_test(np.array([10, 60, 0]), np.array([10, 40, 0]))
    assert isinstance(got, np.ndarray)
    assert got[:2] == pytest.approx([1.0, stats.binomtest(60, 100).pvalue]) and np.isnan(got[2])


TESTS: list[Callable[..., Any]] = [frequentist, sequential, bayesian]


def summaries(rng: np.random.Generator, kind: str, shape: tuple[int, ...], users: int) -> Any:
    lift = 1.0 + rng.uniform(-0.1, 0.2, shape + (1,))
    if kind == "mean":
        return SampleMean.of(rng.lognormal(1.0, 0.7, shape + (users,)) * lift)
    if kind == "proportion":
        return Proportion.of(rng.random(shape + (users,)) < 0.2 * lift)
    if kind == "ratio":
        shown = rng.poisson(3.0, shape + (users,)) + 1
        return Ratio.of(rng.binomial(shown, 0.1 * lift), shown)
    pre = rng.gamma(2.0, 1.0, shape + (users,))
    return Adjusted.of(pre * lift + rng.normal(0, 1, pre.shape), pre)


def pick(summary: Any, index: tuple[int, ...]) -> Any:
    """The scalar summary at ``index`` of an array-valued one."""
    if isinstance(summary, Adjusted):
        return Adjusted(
            pick(summary.post, index),
            pick(summary.pre, index),
            float(np.asarray(summary.post_pre_sum_products)[index]),
        )
    fields = {k: float(np.asarray(v)[index]) for k, v in vars(summary).items()}
    return type(summary)(**fields)


@pytest.mark.parametrize("kind", ["mean", "proportion", "ratio", "cuped"])
@pytest.mark.parametrize("test", TESTS, ids=lambda f: f.__name__)
def test_vectorised_call_equals_a_loop(
    rng: np.random.Generator, kind: str, test: Callable[..., Any]
) -> None:
    shape = (3, 7)  # looks × experiments, say
    control, treatment = summaries(rng, kind, shape, 40), summaries(rng, kind, shape, 50)
    together = test(control, treatment)
    for index in np.ndindex(*shape):
        alone = test(pick(control, index), pick(treatment, index))
        for name, value in vars(alone).items():
            assert isinstance(value, float)
            assert np.asarray(getattr(together, name))[index] == pytest.approx(value, nan_ok=True)


def test_summaries_pool_and_skip_padding(rng: np.random.Generator) -> None:
    a, b = rng.normal(3, 1, 50), rng.normal(3, 1, 70)
    pooled = SampleMean.of(a) + SampleMean.of(b)
    whole = SampleMean.of(np.concatenate([a, b]))
    assert (pooled.n, pooled.mean, pooled.variance) == pytest.approx(
        (whole.n, whole.mean, whole.variance)
    )
    padded = SampleMean.of(np.concatenate([a, np.full(20, np.nan)]))
    assert (padded.n, padded.mean) == pytest.approx((50, a.mean()))
    assert SampleMean.of(a).variance == pytest.approx(np.var(a, ddof=1))
    assert Proportion.of([1, 0, 0, 1]).variance == pytest.approx(0.25)  # p(1 − p), as gbstats
    r = Ratio.of([1, 2], [3, 4]) + Ratio.of([0.0, np.nan], [2.0, 1.0])
    assert (r.n, r.mean) == pytest.approx((3, 3 / 9))
    with pytest.raises(TypeError):
        SampleMean.of(a) + Proportion.of([1, 0])  # type: ignore[operator]


def nan_effect(effect: Effect) -> bool:
    return all(np.isnan(getattr(effect, k)) for k in ("lift", "ci_low", "p_value", "std_error"))


@pytest.mark.parametrize(
    ("control", "treatment"),
    [
        (SampleMean(0, 0, 0), SampleMean(10, 20, 60)),  # no users
        (SampleMean(1, 2, 4), SampleMean(10, 20, 60)),  # one user
        (SampleMean.of(np.full(30, 7.0)), SampleMean(10, 20, 60)),  # constant metric
        (Proportion(50, 0), Proportion(50, 4)),  # control mean 0
        (Proportion(50, 50), Proportion(50, 40)),  # everyone converted: no variance
        (Ratio(10, 0, 0, 0, 0, 0), Ratio.of([1, 0, 2], [2, 2, 2])),  # no denominator
    ],
)
def test_degenerate_inputs_give_nan_without_warnings(control: Any, treatment: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nan_effect(frequentist(control, treatment))
        assert nan_effect(sequential(control, treatment))
        b = bayesian(control, treatment)
        assert np.isnan(b.chance_to_beat) and np.isnan(b.risk_control)
        assert not frequentist(control, treatment).significant


def test_degenerate_elements_stay_local() -> None:
    # one broken experiment in an array does not spoil the others, and warns nothing
    control = SampleMean(np.array([100.0, 1.0, 100.0]), np.array([100.0, 1.0, 0.0]), 300.0)
    treatment = SampleMean(100.0, np.array([120.0, 120.0, 120.0]), 400.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        effect = frequentist(control, treatment)
    assert np.isfinite(effect.lift[0]) and np.isnan(effect.lift[1:]).all()  # type: ignore[index]
    with pytest.raises(TypeError):
        frequentist(Adjusted.of([1.0, 2.0], [1.0, 3.0]), SampleMean(2, 3, 5))
