"""An experiment's results: per variant each metric with its interval, the comparison with
control (fixed-horizon, always-valid sequential and Bayesian), CUPED, sample ratio mismatch,
Holm's correction, interleaving's preference test, and a decision in plain words.

The **decision** is the always-valid sequential test's (so results may be looked at daily
without inflating false positives): a variant beats control on the primary metric when its
sequential confidence interval of the relative lift excludes 0 after Holm's correction across
variants, none of its guardrails is harmed (a guardrail is harmed when the sequential interval
of its absolute difference lies above 0: every guardrail is bad when it goes up, and a rate of
0 in control has no relative lift) and the sample ratio is fine (chi-square p ≥ 0.001).
The fixed-horizon figures are reported beside it for the planned end of the experiment.
docs/experiments.md has the formulas and references.
"""

from __future__ import annotations

import math
import time
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel

from tastebud.experiments.definitions import Experiment, Guardrail, Metric
from tastebud.experiments.outcomes import DAY_MS, Outcomes, load_outcomes
from tastebud.experiments.sequential import sequential
from tastebud.experiments.stats import (
    bayesian,
    frequentist,
    holm,
    preference_test,
    srm_p_value,
)
from tastebud.experiments.summaries import Adjusted, Ratio, SampleMean, Summary, with_pooled_theta
from tastebud.store import Store

__all__ = [
    "Comparison",
    "Decision",
    "ExperimentResults",
    "InterleavingResult",
    "MetricResult",
    "SRM_ALPHA",
    "SrmCheck",
    "VariantValue",
    "analyse",
    "results_of",
]

SRM_ALPHA = 0.001
"""A sample ratio mismatch is flagged below this p-value."""

_RATIO_METRICS = {Metric.CTR: ("clicks", "shown")}
_MEAN_METRICS = {
    Metric.CLICKS: ("clicks", "pre_clicks"),
    Metric.CONVERSION_RATE: ("converted", "pre_converted"),
    Metric.REVENUE: ("revenue", "pre_revenue"),
    Metric.ENGAGEMENT_TIME: ("engagement_s", "pre_engagement_s"),
    Metric.RETURN_RATE: ("returned", "pre_active"),
}
_GUARDRAILS = {
    Guardrail.LATENCY: ("latency_ms", "answers"),
    Guardrail.ERRORS: ("errors", "answers"),
    Guardrail.NOT_INTERESTED: ("not_interested", "shown"),
    Guardrail.DISLIKE: ("dislike", "shown"),
    Guardrail.COLD_START: ("cold_start", "answers"),
}


class VariantValue(BaseModel):
    """One variant's value of a metric, with its confidence interval."""

    variant: str
    users: int
    value: float | None
    ci_low: float | None
    ci_high: float | None


class Comparison(BaseModel):
    """A variant against control on one metric: relative lifts (0.041 = +4.1%) for the
    primary metric, absolute differences for guardrails (``scale``)."""

    variant: str
    scale: Literal["relative", "absolute"] = "relative"
    """Guardrails compare absolute differences: a rate of 0 in control (no errors, no
    dislikes) has no relative lift, and an increase from 0 is exactly the harm to catch."""
    lift: float | None
    ci_low: float | None
    """Fixed-horizon confidence interval (Welch, delta method)."""
    ci_high: float | None
    p_value: float | None
    p_value_holm: float | None
    """Holm-adjusted across the variants compared with control."""
    sequential_ci_low: float | None
    """Always-valid confidence sequence (the decision's interval)."""
    sequential_ci_high: float | None
    sequential_p_value: float | None
    sequential_p_value_holm: float | None
    chance_to_beat: float | None
    """Bayesian: the chance the variant is better than control."""
    risk: float | None
    """Bayesian: the expected relative loss of choosing the variant."""
    cuped: bool
    """Adjusted with each user's pre-exposure value of the metric."""
    verdict: Literal["better", "worse", "inconclusive"]
    """By the sequential interval after Holm's correction (for a guardrail, ``worse`` means
    harmed)."""


class MetricResult(BaseModel):
    """One metric across variants."""

    metric: str
    values: list[VariantValue]
    comparisons: list[Comparison]


class SrmCheck(BaseModel):
    """Sample ratio mismatch: exposed users against the configured weights."""

    p_value: float | None
    flagged: bool
    expected_shares: dict[str, float]
    observed: dict[str, int]


class InterleavingResult(BaseModel):
    """Team-draft interleaving: per user, which variant's items got more clicks."""

    wins: dict[str, int]
    ties: int
    p_value: float | None
    """Two-sided binomial test of the wins (ties left out)."""
    preferred: str | None
    """The variant preferred at ``alpha`` (``None``: no preference shown)."""


class Decision(BaseModel):
    """What the results say, in plain words."""

    text: str
    winner: str | None
    """The variant that beats control with no harmed guardrail and no SRM, if any."""
    ready: bool
    """The minimum duration and sample size are reached."""
    notes: list[str]


class ExperimentResults(BaseModel):
    """Everything ``GET /v1/experiments/{name}/results`` answers."""

    experiment: str
    status: str
    kind: str
    control: str
    computed_ms: int
    days_running: float
    users: dict[str, int]
    mixed_users: int
    """Users recorded under several variants (kept in their first; should be 0)."""
    srm: SrmCheck
    primary: MetricResult
    guardrails: list[MetricResult]
    interleaving: InterleavingResult | None
    decision: Decision


def _f(x: object) -> float | None:
    v = float(np.asarray(x))
    return None if math.isnan(v) or math.isinf(v) else v


def _summary(frame: pl.DataFrame, num: str, den: str | None) -> Summary:
    y = frame[num].cast(pl.Float64).to_numpy()
    if den is None:
        return SampleMean.of(y)
    return Ratio.of(y, frame[den].cast(pl.Float64).to_numpy())


def _interval(s: Summary, alpha: float) -> tuple[float | None, float | None, float | None]:
    n = float(np.asarray(s.n))
    mean = float(np.asarray(s.mean))
    if n < 2:
        return _f(mean), None, None
    half = 1.959963984540054 if alpha == 0.05 else _z(alpha)
    se = math.sqrt(max(float(np.asarray(s.variance)), 0.0) / n)
    return _f(mean), _f(mean - half * se), _f(mean + half * se)


def _z(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def _metric(
    frame: pl.DataFrame,
    variants: list[str],
    control: str,
    metric: str,
    num: str,
    den: str | None,
    pre: str | None,
    alpha: float,
    bad_is_up: bool,
    tuning: float = 5000.0,
) -> MetricResult:
    relative = not bad_is_up  # guardrails (bad when up): absolute differences
    parts = {v: frame.filter(pl.col("variant") == v) for v in variants}
    summaries = {v: _summary(parts[v], num, den) for v in variants}
    values = []
    for v in variants:
        value, low, high = _interval(summaries[v], alpha)
        values.append(
            VariantValue(variant=v, users=parts[v].height, value=value, ci_low=low, ci_high=high)
        )
    treated = [v for v in variants if v != control]
    raw = []
    for v in treated:
        c, t = summaries[control], summaries[v]
        cuped = False
        if pre is not None and den is None:
            ca = Adjusted.of(
                parts[control][num].cast(pl.Float64).to_numpy(),
                parts[control][pre].cast(pl.Float64).to_numpy(),
            )
            ta = Adjusted.of(
                parts[v][num].cast(pl.Float64).to_numpy(), parts[v][pre].cast(pl.Float64).to_numpy()
            )
            ca, ta = with_pooled_theta(ca, ta)
            if np.isfinite(np.asarray(ca.theta)) and float(np.asarray(ca.theta)) != 0.0:
                c, t, cuped = ca, ta, True
        fixed = frequentist(c, t, alpha=alpha, relative=relative)
        seq = sequential(c, t, alpha=alpha, tuning=tuning, relative=relative)
        bayes = bayesian(c, t, alpha=alpha, inverse=bad_is_up, relative=relative)
        raw.append((v, fixed, seq, bayes, cuped))
    p_fixed = holm(np.array([float(np.asarray(r[1].p_value)) for r in raw], dtype=float))
    p_seq = holm(np.array([float(np.asarray(r[2].p_value)) for r in raw], dtype=float))
    comparisons = []
    for i, (v, fixed, seq, bayes, cuped) in enumerate(raw):
        ps = _f(p_seq[i])
        lift = _f(seq.lift)
        verdict: Literal["better", "worse", "inconclusive"] = "inconclusive"
        if ps is not None and ps < alpha and lift is not None:
            up = lift > 0
            verdict = ("worse" if up else "better") if bad_is_up else ("better" if up else "worse")
        comparisons.append(
            Comparison(
                variant=v,
                scale="relative" if relative else "absolute",
                lift=_f(fixed.lift),
                ci_low=_f(fixed.ci_low),
                ci_high=_f(fixed.ci_high),
                p_value=_f(fixed.p_value),
                p_value_holm=_f(p_fixed[i]),
                sequential_ci_low=_f(seq.ci_low),
                sequential_ci_high=_f(seq.ci_high),
                sequential_p_value=_f(seq.p_value),
                sequential_p_value_holm=ps,
                chance_to_beat=_f(bayes.chance_to_beat),
                risk=_f(bayes.risk_treatment),
                cuped=cuped,
                verdict=verdict,
            )
        )
    return MetricResult(metric=metric, values=values, comparisons=comparisons)


def _interleaving(frame: pl.DataFrame, names: list[str], alpha: float) -> InterleavingResult:
    """Per user: ``credit`` > 0 means their own variant's items got more clicks. A user of
    variant A with credit +2 is a win for A; of B with credit +2 a win for B."""
    a, b = names
    wins = {a: 0, b: 0}
    ties = 0
    for variant, credit in frame.select("variant", "credit").iter_rows():
        if credit == 0:
            ties += 1
        elif (credit > 0) == (variant == a):
            wins[a] += 1
        else:
            wins[b] += 1
    p = _f(preference_test(wins[a], wins[b])) if wins[a] + wins[b] else None
    preferred = None
    if p is not None and p < alpha:
        preferred = a if wins[a] > wins[b] else b
    return InterleavingResult(wins=wins, ties=ties, p_value=p, preferred=preferred)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f}%"


def analyse(exp: Experiment, outcomes: Outcomes, *, now_ms: int | None = None) -> ExperimentResults:
    """The results of ``exp`` from its per-user ``outcomes`` (see the module docstring)."""
    spec = exp.spec
    now = int(time.time() * 1000) if now_ms is None else now_ms
    frame = outcomes.users
    variants = [v.name for v in spec.variants]
    control = spec.control_name
    users = {v: int(frame.filter(pl.col("variant") == v).height) for v in variants}
    weights = np.array([v.weight for v in spec.variants], dtype=float)
    total = int(sum(users.values()))
    p_srm = (
        _f(srm_p_value(np.array([users[v] for v in variants], float), weights)) if total else None
    )
    srm = SrmCheck(
        p_value=p_srm,
        flagged=p_srm is not None and p_srm < SRM_ALPHA,
        expected_shares={v.name: float(v.weight / weights.sum()) for v in spec.variants},
        observed=users,
    )
    alpha = spec.alpha
    # The sequence is tightest at the planned sample size of one comparison, control and one
    # variant (unplanned: gbstats' default, 5,000).
    planned = spec.min_users_per_variant * 2
    tuning = float(planned if planned > 0 else 5000)
    pm = spec.primary_metric
    if pm in _RATIO_METRICS:
        num, den = _RATIO_METRICS[pm]
        primary = _metric(frame, variants, control, pm.value, num, den, None, alpha, False, tuning)
    else:
        num, pre = _MEAN_METRICS[pm]
        pre_col = pre if spec.pre_period_days > 0 else None
        primary = _metric(
            frame, variants, control, pm.value, num, None, pre_col, alpha, False, tuning
        )
    guardrails = [
        _metric(frame, variants, control, g.value, *_GUARDRAILS[g], None, alpha, True, tuning)
        for g in spec.guardrails
    ]
    inter = _interleaving(frame, variants, alpha) if spec.kind == "interleaving" else None
    started = exp.started_ms or exp.created_ms
    end = exp.stopped_ms or now
    days = max(0.0, (end - started) / DAY_MS)
    decision = _decide(exp, primary, guardrails, srm, inter, users, days)
    return ExperimentResults(
        experiment=exp.name,
        status=exp.status.value,
        kind=spec.kind,
        control=control,
        computed_ms=now,
        days_running=round(days, 3),
        users=users,
        mixed_users=outcomes.mixed_users,
        srm=srm,
        primary=primary,
        guardrails=guardrails,
        interleaving=inter,
        decision=decision,
    )


def _decide(
    exp: Experiment,
    primary: MetricResult,
    guardrails: list[MetricResult],
    srm: SrmCheck,
    inter: InterleavingResult | None,
    users: dict[str, int],
    days: float,
) -> Decision:
    spec = exp.spec
    control = spec.control_name
    notes: list[str] = []
    harmed = [
        f"{g.metric} ({c.variant} {_amount(c.lift, c.scale)})"
        for g in guardrails
        for c in g.comparisons
        if c.verdict == "worse"
    ]
    harming = {c.variant for g in guardrails for c in g.comparisons if c.verdict == "worse"}
    guard_text = "no guardrail harmed" if not harmed else "guardrail harmed: " + ", ".join(harmed)
    srm_text = (
        "SRM fine"
        if not srm.flagged
        else f"SRM detected (p = {srm.p_value:.2g}): do not trust these results"
    )
    ready = days >= spec.min_duration_days and all(
        n >= spec.min_users_per_variant for n in users.values()
    )
    if days < spec.min_duration_days:
        notes.append(f"{days:.1f} of the planned {spec.min_duration_days:g} days")
    short = [v for v, n in users.items() if n < spec.min_users_per_variant]
    if short:
        notes.append(
            f"{', '.join(short)} below the planned {spec.min_users_per_variant} users per variant"
        )
    if inter is not None:
        a, b = (v.name for v in spec.variants)
        if inter.preferred is None:
            head = (
                f"No preference between {a} and {b} yet ({inter.wins[a]} vs {inter.wins[b]} "
                f"users, p = {_fmt_p(inter.p_value)})"
            )
            return Decision(text=f"{head}; {srm_text}", winner=None, ready=ready, notes=notes)
        loser = b if inter.preferred == a else a
        head = (
            f"{inter.preferred} is preferred over {loser} by interleaving "
            f"({inter.wins[inter.preferred]} vs {inter.wins[loser]} users, "
            f"p = {_fmt_p(inter.p_value)})"
        )
        winner = None if srm.flagged or inter.preferred in harming else inter.preferred
        return Decision(
            text=f"{head}; {guard_text}; {srm_text}", winner=winner, ready=ready, notes=notes
        )
    better = [c for c in primary.comparisons if c.verdict == "better"]
    worse = [c for c in primary.comparisons if c.verdict == "worse"]
    metric = primary.metric.replace("_", " ")
    metric = "CTR" if metric == "ctr" else metric
    parts = []
    for c in better:
        parts.append(
            f"{c.variant} beats {control} on {metric} by {_pct(c.lift)} "
            f"[{_pct(c.sequential_ci_low)}, {_pct(c.sequential_ci_high)}]"
        )
    for c in worse:
        parts.append(
            f"{c.variant} is worse than {control} on {metric} by {_pct(c.lift)} "
            f"[{_pct(c.sequential_ci_low)}, {_pct(c.sequential_ci_high)}]"
        )
    if not parts:
        lifts = ", ".join(
            f"{c.variant} {_pct(c.lift)} "
            f"[{_pct(c.sequential_ci_low)}, {_pct(c.sequential_ci_high)}]"
            for c in primary.comparisons
        )
        parts.append(f"No variant differs from {control} on {metric} yet ({lifts})")
    winner = None
    eligible = [c for c in better if c.variant not in harming]  # a harm blocks its own variant
    if eligible and not srm.flagged:
        winner = max(eligible, key=lambda c: c.lift or 0.0).variant
    return Decision(
        text="; ".join([*parts, guard_text, srm_text]), winner=winner, ready=ready, notes=notes
    )


def _amount(x: float | None, scale: str) -> str:
    if x is None:
        return "n/a"
    return _pct(x) if scale == "relative" else f"{x:+.4g}"


def _fmt_p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def results_of(store: Store, exp: Experiment, *, now_ms: int | None = None) -> ExperimentResults:
    """Load ``exp``'s outcomes and analyse them."""
    return analyse(exp, load_outcomes(store, exp, now_ms=now_ms), now_ms=now_ms)
