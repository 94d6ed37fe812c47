"""Per-variant summaries of an A/B test metric: the sufficient statistics the tests read.

A variant's metric is kept as a handful of sums over its users (counts, sums, sums of squares and
of products), the way GrowthBook's ``gbstats`` does, so an experiment of any size is summarised in
a few numbers, and summaries of disjoint users (days, shards) pool with ``+``. Four kinds cover
the metrics of docs/experiments.md: :class:`SampleMean` (a per-user value), :class:`Proportion`
(a 0/1 conversion), :class:`Ratio` (a ratio of sums such as CTR, delta method) and
:class:`Adjusted` (CUPED, with :func:`pooled_theta`). The tests that compare two summaries are in
:mod:`tastebud.experiments.stats` and :mod:`tastebud.experiments.sequential`.

Every field may be a Python float or a numpy array: all properties broadcast, so one summary can
hold thousands of simulated experiments at once. Scalars in give Python floats out; arrays give
arrays. A mean or variance that cannot be computed (no users, one user, a zero denominator) is
``nan``; no input raises or warns.

References:
    GrowthBook statistics: https://docs.growthbook.io/statistics/overview and the source of
    ``gbstats`` (github.com/growthbook/growthbook, packages/stats).
    Deng, Knoblich, Lu (2018). Applying the delta method in metric analytics. KDD.
    Deng, Xu, Kohavi, Walker (2013). Improving the sensitivity of online controlled experiments by
    utilizing pre-experiment data (CUPED). WSDM.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TypeAlias, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Adjusted",
    "Floats",
    "Proportion",
    "Ratio",
    "SampleMean",
    "Summary",
    "pooled_theta",
    "with_pooled_theta",
]

Floats: TypeAlias = float | NDArray[np.float64]
"""A Python float for scalar input, an array of the broadcast shape otherwise."""
_F: TypeAlias = NDArray[np.float64]

# A variance under this share of the mean square is the rounding error of a constant metric
# (sum_squares - sum²/n cancels), not a spread: it counts as zero, so the test returns nan
# instead of a t statistic of 1e8.
_CONSTANT_TOLERANCE = 1e-12


def _arr(x: ArrayLike) -> _F:
    return np.asarray(x, dtype=np.float64)


def _out(x: ArrayLike) -> Floats:
    a = np.asarray(x, dtype=np.float64)
    return float(a) if a.ndim == 0 else a


def _where(ok: NDArray[np.bool_], x: _F) -> _F:
    return np.where(ok, x, np.nan)


def _counts(values: _F, axis: int) -> tuple[NDArray[np.bool_], _F]:
    present = ~np.isnan(values)
    return present, np.sum(present, axis=axis).astype(np.float64)


@dataclass(frozen=True)
class SampleMean:
    """Sufficient statistics of a per-user metric in one variant (gbstats ``SampleMeanStatistic``).

    ``variance`` is the sample variance with ``ddof=1``: (Σx² − (Σx)²/n) / (n − 1).
    Summaries of disjoint sets of users (days, shards) pool with ``+``.
    """

    n: ArrayLike
    """Users (the unit of randomisation)."""
    sum: ArrayLike
    """Σ x over users."""
    sum_squares: ArrayLike
    """Σ x² over users."""

    @classmethod
    def of(cls, values: ArrayLike, axis: int = -1) -> SampleMean:
        """Summarise per-user values along ``axis``; ``nan`` marks a missing user (padding)."""
        v = _arr(values)
        present, n = _counts(v, axis)
        x = np.where(present, v, 0.0)
        return cls(_out(n), _out(np.sum(x, axis=axis)), _out(np.sum(x * x, axis=axis)))

    @property
    def mean(self) -> Floats:
        """Σx / n (``nan`` without users)."""
        return _out(_sm_mean(self))

    @property
    def variance(self) -> Floats:
        """Sample variance, ddof=1 (``nan`` for n < 2)."""
        return _out(_sm_variance(self))

    def __add__(self, other: SampleMean) -> SampleMean:
        """Pool two summaries of disjoint users."""
        return _pool(self, other)


@dataclass(frozen=True)
class Proportion:
    """A per-user 0/1 metric (converted or not) in one variant (gbstats ``ProportionStatistic``).

    ``variance`` is p(1 − p) with p = sum / n (no n − 1 correction, as gbstats). A
    :class:`SampleMean` of the same 0/1 values gives the ddof=1 variance instead.
    """

    n: ArrayLike
    """Users."""
    sum: ArrayLike
    """Users with the event (Σ x, x ∈ {0, 1})."""

    @classmethod
    def of(cls, values: ArrayLike, axis: int = -1) -> Proportion:
        """Summarise per-user 0/1 values along ``axis``; ``nan`` marks a missing user."""
        v = _arr(values)
        present, n = _counts(v, axis)
        return cls(_out(n), _out(np.sum(np.where(present, v, 0.0), axis=axis)))

    @property
    def sum_squares(self) -> Floats:
        """Σ x² = Σ x for 0/1 values."""
        return _out(_arr(self.sum))

    @property
    def mean(self) -> Floats:
        """The rate p = sum / n (``nan`` without users)."""
        return _out(_sm_mean(self))

    @property
    def variance(self) -> Floats:
        """p(1 − p) (``nan`` without users)."""
        return _out(_sm_variance(self))

    def __add__(self, other: Proportion) -> Proportion:
        """Pool two summaries of disjoint users."""
        return _pool(self, other)


_Pooled = TypeVar("_Pooled", "SampleMean", "Proportion", "Ratio")


def _pool(a: _Pooled, b: _Pooled) -> _Pooled:
    # Every field of these summaries is a sum over users, so pooling is field-wise addition.
    if type(a) is not type(b):
        raise TypeError(f"cannot pool a {type(a).__name__} with a {type(b).__name__}")
    sums = (_out(_arr(getattr(a, f.name)) + _arr(getattr(b, f.name))) for f in fields(a))
    return type(a)(*sums)


def _sm_mean(s: SampleMean | Proportion) -> _F:
    n = _arr(s.n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _where(n > 0, _arr(s.sum) / n)


def _sm_variance(s: SampleMean | Proportion) -> _F:
    n, total = _arr(s.n), _arr(s.sum)
    with np.errstate(divide="ignore", invalid="ignore"):
        if isinstance(s, Proportion):
            p = total / n
            return _where(n > 0, p * (1.0 - p))
        squares = _arr(s.sum_squares)
        var = np.maximum((squares - total * total / n) / (n - 1.0), 0.0)
        var = np.where(var <= _CONSTANT_TOLERANCE * squares / n, 0.0, var)
        return _where(n > 1, var)


@dataclass(frozen=True)
class Ratio:
    """A per-user ratio metric such as CTR = clicks / impressions (gbstats ``RatioStatistic``).

    The mean is Σnum / Σden (a ratio of sums, not a mean of per-user ratios) and its per-user
    variance comes from the delta method (Deng, Knoblich, Lu 2018), with μ the means of numerator
    and denominator, σ² their ddof=1 variances and σ_nd their covariance:

        var = σ²_n / μ_d² − 2 σ_nd μ_n / μ_d³ + μ_n² σ²_d / μ_d⁴
    """

    n: ArrayLike
    """Users."""
    num_sum: ArrayLike
    """Σ numerator."""
    num_sum_squares: ArrayLike
    """Σ numerator²."""
    den_sum: ArrayLike
    """Σ denominator."""
    den_sum_squares: ArrayLike
    """Σ denominator²."""
    num_den_sum_products: ArrayLike
    """Σ numerator × denominator."""

    @classmethod
    def of(cls, num: ArrayLike, den: ArrayLike, axis: int = -1) -> Ratio:
        """Summarise per-user numerators and denominators; a user with a ``nan`` is missing."""
        m, d = np.broadcast_arrays(_arr(num), _arr(den))
        present, n = _counts(m + d, axis)
        m, d = np.where(present, m, 0.0), np.where(present, d, 0.0)
        return cls(
            _out(n),
            _out(np.sum(m, axis=axis)),
            _out(np.sum(m * m, axis=axis)),
            _out(np.sum(d, axis=axis)),
            _out(np.sum(d * d, axis=axis)),
            _out(np.sum(m * d, axis=axis)),
        )

    @property
    def numerator(self) -> SampleMean:
        """The numerator's own summary."""
        return SampleMean(self.n, self.num_sum, self.num_sum_squares)

    @property
    def denominator(self) -> SampleMean:
        """The denominator's own summary."""
        return SampleMean(self.n, self.den_sum, self.den_sum_squares)

    @property
    def covariance(self) -> Floats:
        """Sample covariance of numerator and denominator, ddof=1 (``nan`` for n < 2)."""
        return _out(_covariance(self.n, self.num_sum, self.den_sum, self.num_den_sum_products))

    @property
    def mean(self) -> Floats:
        """Σnum / Σden (``nan`` when Σden = 0)."""
        den = _arr(self.den_sum)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _out(_where(den != 0, _arr(self.num_sum) / den))

    @property
    def variance(self) -> Floats:
        """Delta-method per-user variance of the ratio (``nan`` for n < 2 or a zero denominator)."""
        mn, md = _sm_mean(self.numerator), _sm_mean(self.denominator)
        vn, vd = _sm_variance(self.numerator), _sm_variance(self.denominator)
        cov = _arr(self.covariance)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            var = vn / md**2 - 2.0 * cov * mn / md**3 + mn**2 * vd / md**4
        return _out(_where(md != 0, var))

    def __add__(self, other: Ratio) -> Ratio:
        """Pool two summaries of disjoint users."""
        return _pool(self, other)


def _covariance(n: ArrayLike, sx: ArrayLike, sy: ArrayLike, sxy: ArrayLike) -> _F:
    nn = _arr(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _where(nn > 1, (_arr(sxy) - _arr(sx) * _arr(sy) / nn) / (nn - 1.0))


@dataclass(frozen=True)
class Adjusted:
    """A metric with CUPED regression adjustment (gbstats ``RegressionAdjustedStatistic``).

    Each user's pre-exposure value x (same metric, before the experiment) explains part of the
    post-exposure value y. With one θ shared by both variants (Deng et al. 2013):

        mean = ȳ − θ x̄,   var = σ²_y + θ² σ²_x − 2 θ σ_xy,
        θ = cov(x, y) / var(x) over control and treatment pooled (:func:`pooled_theta`).

    Because both variants subtract θ times the same expected pre-period mean, the estimated
    difference is unbiased and its variance shrinks by a factor 1 − ρ². The relative lift
    divides by the *unadjusted* control mean ȳ_A, as gbstats does. Fill a missing pre-exposure
    value (a new user) with 0 before summarising; ``of`` drops users with a ``nan``.
    """

    post: SampleMean | Proportion
    """The metric after exposure."""
    pre: SampleMean | Proportion
    """The same users' pre-exposure covariate."""
    post_pre_sum_products: ArrayLike
    """Σ post × pre."""
    theta: ArrayLike = float("nan")
    """The adjustment coefficient; ``nan`` (unset) makes the tests pool it from both variants."""

    @classmethod
    def of(cls, post_values: ArrayLike, pre_values: ArrayLike, axis: int = -1) -> Adjusted:
        """Summarise per-user post- and pre-exposure values along ``axis`` (θ unset)."""
        y, x = np.broadcast_arrays(_arr(post_values), _arr(pre_values))
        present = ~np.isnan(x + y)
        y, x = np.where(present, y, np.nan), np.where(present, x, np.nan)
        products = np.sum(np.where(present, x * y, 0.0), axis=axis)
        return cls(SampleMean.of(y, axis), SampleMean.of(x, axis), _out(products))

    @property
    def n(self) -> Floats:
        """Users."""
        return _out(_arr(self.post.n))

    @property
    def mean(self) -> Floats:
        """ȳ − θ x̄ (``nan`` while θ is unset)."""
        return _out(_sm_mean(self.post) - _arr(self.theta) * _sm_mean(self.pre))

    @property
    def variance(self) -> Floats:
        """σ²_y + θ² σ²_x − 2 θ σ_xy (``nan`` while θ is unset or for n < 2)."""
        theta = _arr(self.theta)
        cov = _covariance(self.post.n, self.post.sum, self.pre.sum, self.post_pre_sum_products)
        with np.errstate(invalid="ignore", over="ignore"):
            var = _sm_variance(self.post) + theta**2 * _sm_variance(self.pre) - 2.0 * theta * cov
        return _out(var)

    def __add__(self, other: Adjusted) -> Adjusted:
        """Pool two summaries of disjoint users (θ unset: pool it again for the pair)."""
        products = _arr(self.post_pre_sum_products) + _arr(other.post_pre_sum_products)
        # mypy cannot pair the union members; mixing a SampleMean and a Proportion fails loudly.
        post = self.post + other.post  # type: ignore[operator]
        pre = self.pre + other.pre  # type: ignore[operator]
        return Adjusted(post, pre, _out(products))


Summary: TypeAlias = SampleMean | Proportion | Ratio | Adjusted
"""What the tests accept for each variant."""


def pooled_theta(control: Adjusted, treatment: Adjusted) -> Floats:
    """The CUPED coefficient shared by a control and a treatment, as gbstats ``compute_theta``.

    θ = cov(x, y) / var(x), both computed on the pooled users of the two variants (ddof=1).
    It is 0 (no adjustment) where the pooled pre- or post-exposure variance is zero or n < 2.

    Reference: Deng, Xu, Kohavi, Walker (2013), section 3.
    """
    post, pre = control.post + treatment.post, control.pre + treatment.pre  # type: ignore[operator]
    products = _arr(control.post_pre_sum_products) + _arr(treatment.post_pre_sum_products)
    cov = _covariance(post.n, post.sum, pre.sum, products)
    var_pre, var_post = _sm_variance(pre), _sm_variance(post)
    usable = (var_pre > 0) & (var_post > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _out(np.where(usable, cov / var_pre, 0.0))


def with_pooled_theta(control: Adjusted, treatment: Adjusted) -> tuple[Adjusted, Adjusted]:
    """The pair with θ set to :func:`pooled_theta` (what the tests do when θ is unset)."""
    theta = pooled_theta(control, treatment)
    return replace(control, theta=theta), replace(treatment, theta=theta)
