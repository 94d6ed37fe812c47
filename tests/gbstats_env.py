"""GrowthBook's ``gbstats`` in an environment of its own, to cross-check Tastebud's statistics.

``gbstats`` 0.8.0 pins numpy < 2 and pandas < 2, so it must never be installed beside Tastebud.
:func:`ensure_venv` builds (once, then cached) a separate virtual environment with
``/usr/bin/python3.11 -m venv`` at ``$TASTEBUD_GBSTATS_VENV`` or ``<checkout>/.cache/gbstats-venv``
and installs gbstats there from PyPI; :func:`run_gbstats` sends it sufficient statistics as JSON
and reads gbstats' results back. :func:`gbstats_max_abs_diff` is the one call a benchmark needs::

    from gbstats_env import GbstatsUnavailable, gbstats_max_abs_diff
    diff = gbstats_max_abs_diff(seed=0, cases=40)   # raises GbstatsUnavailable when offline

The comparison runs on per-user data drawn here (means, 0/1 proportions, ratios, CUPED; small and
large samples), summarised by Tastebud and handed, as the same sums, to gbstats.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tastebud.experiments.sequential import sequential
from tastebud.experiments.stats import bayesian, frequentist, srm_p_value
from tastebud.experiments.summaries import Adjusted, Proportion, Ratio, SampleMean, Summary

__all__ = [
    "GBSTATS_REQUIREMENTS",
    "Case",
    "Comparison",
    "GbstatsUnavailable",
    "compare",
    "ensure_venv",
    "gbstats_max_abs_diff",
    "random_cases",
    "run_gbstats",
    "srm_max_abs_diff",
    "venv_dir",
]

GBSTATS_REQUIREMENTS = ("gbstats==0.8.0", "numpy<2", "pandas<2", "scipy")
_CHECKOUT = Path(__file__).resolve().parents[1]
_READY = ".tastebud-ready"

# Runs inside the gbstats venv: JSON cases on stdin, JSON results on stdout. Each test gets
# fresh statistics because gbstats writes the pooled theta into the objects it is given.
_RUNNER = r"""
import json, sys
from gbstats.models.statistics import (
    ProportionStatistic, RatioStatistic, RegressionAdjustedStatistic, SampleMeanStatistic)
from gbstats.frequentist.tests import (
    FrequentistConfig, SequentialConfig, SequentialTwoSidedTTest, TwoSidedTTest)
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.utils import check_srm

def base(d, prefix):
    if prefix + "sum_squares" in d:
        return SampleMeanStatistic(n=d["n"], sum=d[prefix + "sum"],
                                   sum_squares=d[prefix + "sum_squares"])
    return ProportionStatistic(n=d["n"], sum=d[prefix + "sum"])

def stat(kind, d):
    if kind in ("mean", "proportion"):
        return base(d, "")
    if kind == "ratio":
        return RatioStatistic(n=d["n"], m_statistic=base(d, "num_"),
                              d_statistic=base(d, "den_"),
                              m_d_sum_of_products=d["num_den_sum_products"])
    return RegressionAdjustedStatistic(n=d["n"], post_statistic=base(d, "post_"),
                                       pre_statistic=base(d, "pre_"),
                                       post_pre_sum_of_products=d["post_pre_sum_products"],
                                       theta=0)

def freq(r):
    return {"lift": float(r.expected), "ci_low": float(r.ci[0]), "ci_high": float(r.ci[1]),
            "p_value": float(r.p_value), "std_error": float(r.uplift.stddev),
            "error": r.error_message}

out = []
for case in json.load(sys.stdin):
    if case["kind"] == "srm":
        out.append({"srm": float(check_srm(case["counts"], case["weights"]))})
        continue
    pair = lambda: (stat(case["kind"], case["control"]), stat(case["kind"], case["treatment"]))
    alpha = case["alpha"]
    f = TwoSidedTTest(*pair(), FrequentistConfig(alpha=alpha)).compute_result()
    s = SequentialTwoSidedTTest(*pair(), SequentialConfig(
        alpha=alpha, sequential_tuning_parameter=case["tuning"])).compute_result()
    b = EffectBayesianABTest(*pair(), EffectBayesianConfig(alpha=alpha)).compute_result()
    out.append({"frequentist": freq(f), "sequential": freq(s), "bayesian": {
        "lift": float(b.expected), "ci_low": float(b.ci[0]), "ci_high": float(b.ci[1]),
        "std_error": float(b.uplift.stddev), "chance_to_beat": float(b.chance_to_win),
        "risk_control": float(b.risk[0]), "risk_treatment": float(b.risk[1]),
        "error": b.error_message}})
json.dump(out, sys.stdout)
"""


class GbstatsUnavailable(RuntimeError):
    """The gbstats environment could not be built or run (no network to PyPI, say)."""


def venv_dir() -> Path:
    """Where the gbstats venv lives: ``$TASTEBUD_GBSTATS_VENV`` or the checkout's ``.cache``."""
    configured = os.environ.get("TASTEBUD_GBSTATS_VENV")
    return Path(configured) if configured else _CHECKOUT / ".cache" / "gbstats-venv"


def _clean_env() -> dict[str, str]:
    # Nothing of Tastebud's environment (numpy 2 on a PYTHONPATH) may leak into the venv.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(cmd: list[str], timeout: float, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=_clean_env()
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GbstatsUnavailable(f"{cmd[0]} failed: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise GbstatsUnavailable(f"{' '.join(cmd[:4])} exited {done.returncode}: {tail}")
    return done.stdout


def ensure_venv(path: Path | None = None) -> Path:
    """Build the gbstats venv unless it is already there; return its Python.

    Safe to call from concurrent processes (a file lock serialises the build). The venv gets a
    ``.gitignore`` of ``*`` so that it never shows in ``git status`` wherever it is placed.

    Raises:
        GbstatsUnavailable: No Python 3.11, or pip could not install from PyPI.
    """
    root = path or venv_dir()
    python = root / "bin" / "python"
    wanted = "\n".join(GBSTATS_REQUIREMENTS)
    ready = root / _READY
    if ready.is_file() and python.exists() and ready.read_text() == wanted:
        return python
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / ".gitignore").write_text("*\n")
        lock = open(root / ".build.lock", "w")  # held (and flock-ed) for the whole build
    except OSError as exc:
        raise GbstatsUnavailable(f"cannot create {root}: {exc}") from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.is_file() and python.exists() and ready.read_text() == wanted:
            return python  # another process built it while we waited
        base = "/usr/bin/python3.11"
        if not Path(base).exists():
            base = shutil.which("python3.11") or sys.executable
        _run([base, "-m", "venv", str(root)], timeout=300)
        _run([str(python), "-m", "pip", "install", "--quiet", *GBSTATS_REQUIREMENTS], 900)
        _run([str(python), "-c", "import gbstats.gbstats, numpy, pandas"], timeout=120)
        ready.write_text(wanted)
    return python


def run_gbstats(cases: list[dict[str, Any]], python: Path | None = None) -> list[dict[str, Any]]:
    """gbstats' results for JSON ``cases`` (see :meth:`Case.payload`), one dict per case."""
    exe = python or ensure_venv()
    answer = _run([str(exe), "-c", _RUNNER], timeout=600, stdin=json.dumps(cases))
    result: list[dict[str, Any]] = json.loads(answer)
    return result


@dataclass(frozen=True)
class Case:
    """One comparison: two variants of one metric kind, summarised by Tastebud."""

    kind: str
    """``mean``, ``proportion``, ``ratio``, ``cuped`` or ``cuped_binary``."""
    control: Summary
    treatment: Summary
    alpha: float = 0.05
    tuning: float = 5000.0

    def payload(self) -> dict[str, Any]:
        """The sufficient statistics as the gbstats runner reads them."""
        return {
            "kind": self.kind,
            "alpha": self.alpha,
            "tuning": self.tuning,
            "control": _fields(self.control),
            "treatment": _fields(self.treatment),
        }

    def ours(self) -> dict[str, dict[str, float]]:
        """Tastebud's results, keyed as the runner's output."""
        f = frequentist(self.control, self.treatment, alpha=self.alpha)
        s = sequential(self.control, self.treatment, alpha=self.alpha, tuning=self.tuning)
        b = bayesian(self.control, self.treatment, alpha=self.alpha)
        keys = ("lift", "ci_low", "ci_high", "p_value", "std_error")
        return {
            "frequentist": {k: float(getattr(f, k)) for k in keys},
            "sequential": {k: float(getattr(s, k)) for k in keys},
            "bayesian": {
                k: float(getattr(b, k))
                for k in ("lift", "ci_low", "ci_high", "std_error", "chance_to_beat")
                + ("risk_control", "risk_treatment")
            },
        }


def _f(x: object) -> float:
    return float(np.asarray(x, dtype=np.float64))


def _fields(s: Summary) -> dict[str, float]:
    def base(x: SampleMean | Proportion, prefix: str) -> dict[str, float]:
        d = {f"{prefix}sum": _f(x.sum)}
        if isinstance(x, SampleMean):
            d[f"{prefix}sum_squares"] = _f(x.sum_squares)
        return d

    n = {"n": float(int(_f(s.n)))}  # gbstats types n as int; JSON keeps 12.0 as a float
    if isinstance(s, Ratio):
        products = {"num_den_sum_products": _f(s.num_den_sum_products)}
        return n | base(s.numerator, "num_") | base(s.denominator, "den_") | products
    if isinstance(s, Adjusted):
        products = {"post_pre_sum_products": _f(s.post_pre_sum_products)}
        return n | base(s.post, "post_") | base(s.pre, "pre_") | products
    return n | base(s, "")


def random_cases(seed: int, count: int) -> list[Case]:
    """``count`` random cases cycling through the metric kinds, small (n ≤ 60) and large n."""
    rng = np.random.default_rng(seed)
    kinds = ("mean", "proportion", "ratio", "cuped", "cuped_binary")
    cases = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        small = (i // len(kinds)) % 2 == 0
        sizes = rng.integers(8, 60, size=2) if small else rng.integers(2_000, 40_000, size=2)
        lift = rng.uniform(-0.1, 0.2)
        alpha = float(rng.choice([0.05, 0.1, 0.01]))
        tuning = float(rng.choice([5000.0, 1000.0, 50_000.0]))
        pair = [_draw(rng, kind, int(n), 1.0 + lift * arm) for arm, n in enumerate(sizes)]
        cases.append(Case(kind, pair[0], pair[1], alpha, tuning))
    return cases


def _draw(rng: np.random.Generator, kind: str, n: int, scale: float) -> Summary:
    if kind == "mean":
        return SampleMean.of(rng.lognormal(1.0, 0.8, n) * scale)
    if kind == "proportion":
        return Proportion.of(rng.random(n) < min(0.3 * scale, 1.0))
    if kind == "ratio":
        shown = rng.poisson(4.0, n) + 1
        return Ratio.of(rng.binomial(shown, min(0.1 * scale, 1.0)), shown)
    if kind == "cuped":
        pre = rng.gamma(2.0, 2.0, n)
        return Adjusted.of((1.0 + 0.8 * pre + rng.normal(0.0, 1.0, n)) * scale, pre)
    habit = rng.random(n) < 0.3  # cuped_binary: converting before predicts converting after
    after = rng.random(n) < np.where(habit, 0.6, 0.1) * scale
    before = habit & (rng.random(n) < 0.8)
    return Adjusted(Proportion.of(after), Proportion.of(before), float(np.sum(after & before)))


@dataclass(frozen=True)
class Comparison:
    """The largest difference between Tastebud and gbstats over a set of cases."""

    max_abs_diff: float
    """Over lift, CI bounds, p-value, standard error, chance to beat and risks."""
    worst: str
    """Where it occurred: ``case index / kind / test / field``."""
    compared: int
    """Cases with a result from both (gbstats' placeholders must be ``nan`` here)."""


def compare(cases: list[Case], python: Path | None = None) -> Comparison:
    """Run ``cases`` through both and measure the largest absolute difference.

    A case that gbstats declines (its ``error_message``: zero variance, zero control mean) must
    give ``nan`` here, and counts as a difference of ``inf`` otherwise.
    """
    theirs = run_gbstats([c.payload() for c in cases], python)
    worst, where, compared = 0.0, "", 0
    for i, (case, answer) in enumerate(zip(cases, theirs, strict=True)):
        ours = case.ours()
        compared += answer["frequentist"]["error"] is None
        for test, values in answer.items():
            for field, value in values.items():
                if field == "error":
                    continue
                mine = ours[test][field]
                if values["error"] is not None:
                    diff = 0.0 if np.isnan(mine) else np.inf
                else:
                    diff = abs(mine - value) if not np.isnan(mine) else np.inf
                if diff > worst or not where:
                    worst, where = diff, f"{i} / {case.kind} / {test} / {field}"
    return Comparison(worst, where, compared)


def srm_max_abs_diff(seed: int, count: int, python: Path | None = None) -> float:
    """The largest difference from gbstats ``check_srm`` on random counts and weights."""
    rng = np.random.default_rng(seed)
    payload = []
    for _ in range(count):
        k = int(rng.integers(2, 5))
        weights = rng.uniform(0.1, 1.0, k)
        counts = rng.multinomial(int(rng.integers(50, 100_000)), rng.dirichlet(weights * 50))
        payload.append({"kind": "srm", "counts": counts.tolist(), "weights": weights.tolist()})
    theirs = run_gbstats(payload, python)
    ours = [float(srm_p_value(c["counts"], c["weights"])) for c in payload]
    return max(abs(o - float(t["srm"])) for o, t in zip(ours, theirs, strict=True))


def gbstats_max_abs_diff(seed: int = 0, cases: int = 40) -> float:
    """The largest difference from gbstats over ``cases`` random datasets and SRM checks.

    Raises:
        GbstatsUnavailable: The gbstats venv could not be built or run.
    """
    python = ensure_venv()
    diff = compare(random_cases(seed, cases), python).max_abs_diff
    return max(diff, srm_max_abs_diff(seed, cases, python))
