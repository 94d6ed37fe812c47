"""Tastebud's A/B statistics agree with GrowthBook's ``gbstats`` 0.8.0 to 1e-6 (issue 17, point 5).

gbstats runs in a venv of its own (``gbstats_env``: it pins numpy < 2 and pandas < 2). Building it
needs PyPI once; without it the tests skip, except in CI where they fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gbstats_env import (
    Case,
    GbstatsUnavailable,
    compare,
    ensure_venv,
    gbstats_max_abs_diff,
    random_cases,
    srm_max_abs_diff,
)
from tastebud.experiments.summaries import Adjusted, Proportion, Ratio, SampleMean

from conftest import unavailable

pytestmark = pytest.mark.timeout(900)  # the first run builds the venv from PyPI

TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def gbstats_python() -> Path:
    try:
        return ensure_venv()
    except GbstatsUnavailable as exc:
        unavailable(f"the gbstats venv cannot be built: {exc}")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_datasets_match(gbstats_python: Path, seed: int) -> None:
    # 50 cases: means, proportions, ratios, CUPED on means and on 0/1 metrics, small and large n,
    # three alphas and three tuning parameters; every field of the three tests compared.
    cases = random_cases(seed, 50)
    result = compare(cases, gbstats_python)
    assert result.compared == len(cases)
    assert result.max_abs_diff <= TOLERANCE, result.worst


def test_strong_effects_match(gbstats_python: Path) -> None:
    # z near 60: p-values underflow to 0 and the risks sit in the far tails of the posterior.
    rng = np.random.default_rng(7)
    n = 200_000
    control = Proportion.of(rng.random(n) < 0.3)
    treatment = Proportion.of(rng.random(n) < 0.39)
    worse = SampleMean.of(rng.normal(10.0, 2.0, n))
    better = SampleMean.of(rng.normal(10.3, 2.0, n))
    cases = [
        Case("proportion", control, treatment),
        Case("proportion", treatment, control),
        Case("mean", worse, better, alpha=0.01, tuning=400_000.0),
    ]
    result = compare(cases, gbstats_python)
    assert result.max_abs_diff <= TOLERANCE, result.worst


def test_cases_gbstats_declines_are_nan_here(gbstats_python: Path) -> None:
    rng = np.random.default_rng(3)
    normal = SampleMean.of(rng.normal(5.0, 1.0, 30))
    cases = [
        Case("proportion", Proportion(40, 0), Proportion(40, 3)),  # control mean 0
        Case("mean", SampleMean.of(np.full(20, 3.0)), normal),  # zero variance
        Case("mean", SampleMean(1, 2.0, 4.0), normal),  # one user
        Case("ratio", Ratio(10, 0, 0, 0, 0, 0), Ratio.of([1, 2, 0], [3, 3, 1])),  # no denominator
    ]
    result = compare(cases, gbstats_python)
    assert result.compared == 0
    assert result.max_abs_diff == 0.0, result.worst


def test_cuped_without_pre_period_variance_falls_back_like_gbstats(gbstats_python: Path) -> None:
    # A constant covariate makes θ = 0: gbstats then analyses the post-period metric alone.
    rng = np.random.default_rng(4)
    pre = np.zeros(500)
    control = Adjusted.of(rng.normal(3.0, 1.0, 500), pre)
    treatment = Adjusted.of(rng.normal(3.2, 1.0, 500), pre)
    result = compare([Case("cuped", control, treatment)], gbstats_python)
    assert result.compared == 1
    assert result.max_abs_diff <= TOLERANCE, result.worst


def test_srm_matches_check_srm(gbstats_python: Path) -> None:
    assert srm_max_abs_diff(5, 40, gbstats_python) <= TOLERANCE


def test_benchmark_entry_point(gbstats_python: Path) -> None:
    # What bench/experiments.py reports as gbstats_max_abs_diff.
    assert gbstats_max_abs_diff(seed=11, cases=20) <= TOLERANCE
