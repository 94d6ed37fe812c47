"""The planted truth: the parameters each user was given and the outcomes they imply, computed
from the same world and behaviour laws (``_behaviour``) as the traffic.

:func:`planted_labels` states, for the users alive around an as-of time ``T``, what really
drives the churn and conversion labels derived from the events, so that models trained on those
labels can be scored against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray
from typing_extensions import TypedDict

from tastebud.errors import InvalidInput
from tastebud.simulator._behaviour import (
    category_law,
    conversion_probability,
    hour_cdf,
    page_success,
)
from tastebud.simulator._world import (
    CATEGORIES,
    DEVICES,
    SKILLS,
    SimConfig,
    World,
    day_starts,
    sign_up,
    user_id,
)

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "ChurnedBy",
    "PlantedLabels",
    "PlantedTarget",
    "PlantedTruth",
    "PlantedUser",
    "TruthConfig",
    "planted_labels",
    "planted_parameters",
]

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_PAGES_TAIL = 1e-12
"""Page counts are summed until the geometric law's remaining mass is below this."""

PlantedTarget = Literal["churn", "conversion"]
"""What a planted label says: the user stops (``churn``) or converts (``conversion``)."""
ChurnedBy = Literal["window_end", "as_of"]
"""Horizon of the planted churn outcome (see :meth:`Simulator.planted_labels`)."""


class PlantedUser(TypedDict):
    """One user's planted parameters and sign-up declarations."""

    tastes: dict[str, float]
    """Category -> taste weight, strongest first."""
    top_categories: list[str]
    device_mix: dict[str, float]
    preferred_hour: float
    skill_level: str
    sessions_per_day: float
    churn_hazard: float
    signup: str
    """ISO date."""
    churned_on: str | None
    """The first day on which the user starts no session (``None``: still active)."""
    age_bucket: str
    declared_interests: list[str]


class TruthConfig(TypedDict):
    """The simulation's arguments, as recorded in the truth file."""

    users: int
    items: int
    days: int
    seed: int
    start: str
    """ISO-8601."""


class PlantedTruth(TypedDict):
    """The ``tastebud simulate --truth`` document."""

    config: TruthConfig
    categories: list[str]
    users: dict[str, PlantedUser]
    """User id -> planted parameters."""


@dataclass(frozen=True)
class PlantedLabels:
    """The planted outcome of each user alive around one as-of time (one entry per user, in
    the order of ``user_ids``).

    Made by :meth:`tastebud.simulator.Simulator.planted_labels`.
    """

    target: PlantedTarget
    """``churn`` or ``conversion``."""
    as_of_ms: int
    """The as-of time ``T`` (ms since epoch, UTC)."""
    window_days: int
    """Length of the future window ``[T, T + window_days)``."""
    user_ids: tuple[str, ...]
    """External ids of the users in the population, ascending."""
    labels: tuple[int, ...] | None
    """Churn: 1 when the user churned by the horizon, else 0; conversion: ``None`` (the
    simulator draws each session's conversion at random, so no 0/1 outcome is planted)."""
    scores: tuple[float, ...]
    """Churn: the planted daily churn hazard; conversion: the planted probability of at least
    one conversion in the window."""

    def frame(self, user_key: Callable[[str], str] | None = None) -> pl.DataFrame:
        """The labels as a table to join with model predictions.

        Args:
            user_key: Maps an external user id to the key the predictions use (e.g.
                ``services.pseudonymizer.user``); default the id itself.

        Returns:
            ``user_key`` (String), ``as_of_ms`` (Int64), ``truth_label`` (Int8, null for
            conversion) and ``truth_score`` (Float64), sorted by ``user_key``.
        """
        # Imported here: generating traffic (``tastebud simulate``) never needs polars.
        import polars as pl

        key = user_key or (lambda u: u)
        n = len(self.user_ids)
        return pl.DataFrame(
            {
                "user_key": [key(u) for u in self.user_ids],
                "as_of_ms": [self.as_of_ms] * n,
                "truth_label": list(self.labels) if self.labels is not None else [None] * n,
                "truth_score": list(self.scores),
            },
            schema={
                "user_key": pl.String,
                "as_of_ms": pl.Int64,
                "truth_label": pl.Int8,
                "truth_score": pl.Float64,
            },
        ).sort("user_key")


def planted_parameters(cfg: SimConfig, world: World) -> PlantedTruth:
    """The planted parameters per user and what each declared at sign-up, as JSON-ready data
    (the ``tastebud simulate --truth`` file)."""
    users: dict[str, PlantedUser] = {}
    ages, interests = sign_up(cfg, world)
    for u in range(cfg.users):
        order = np.argsort(-world.taste[u])
        churn_day = int(world.churn[u])
        users[user_id(u)] = {
            "tastes": {CATEGORIES[c]: round(float(world.taste[u, c]), 4) for c in order},
            "top_categories": [CATEGORIES[c] for c in order[:3]],
            "device_mix": dict(zip(DEVICES, np.round(world.device[u], 4).tolist(), strict=True)),
            "preferred_hour": round(float(world.hour[u]), 2),
            "skill_level": SKILLS[int(world.skill[u])],
            "sessions_per_day": round(float(world.rate[u]), 4),
            "churn_hazard": round(float(world.hazard[u]), 5),
            "signup": (cfg.start + timedelta(days=int(world.signup[u]))).date().isoformat(),
            # The first day on which the user starts no session (None: still active).
            "churned_on": (cfg.start + timedelta(days=churn_day)).date().isoformat()
            if churn_day < cfg.days
            else None,
            # What the user declared at sign-up (imperfect: compare with ``tastes``).
            "age_bucket": ages[u],
            "declared_interests": interests[u],
        }
    return {
        "config": {
            "users": cfg.users,
            "items": cfg.items,
            "days": cfg.days,
            "seed": cfg.seed,
            "start": cfg.start.isoformat(),
        },
        "categories": list(CATEGORIES),
        "users": users,
    }


def _session_conversion(cfg: SimConfig, world: World) -> NDArray[np.float64]:
    """Probability that one session of each user converts: :func:`conversion_probability`
    in expectation over the session's page count and its pages' categories.

    Exact: with ``F_j`` the probability that a page's match is at most the ``j``-th smallest
    match ``m_j`` of the user, a session of ``n`` pages has best match ``m_j`` with probability
    ``F_j^n - F_{j-1}^n``; page counts are summed until the geometric tail is negligible.
    """
    taste = world.taste
    law = category_law(taste, world.cat_pop)
    match = taste / taste.max(axis=1, keepdims=True)
    order = np.argsort(match, axis=1, kind="stable")
    m = np.take_along_axis(match, order, axis=1)
    cdf = np.cumsum(np.take_along_axis(law, order, axis=1), axis=1)
    cdf /= cdf[:, -1:]
    below = np.concatenate([np.zeros((cdf.shape[0], 1)), cdf[:, :-1]], axis=1)
    skill = world.skill[:, None]
    p = page_success(cfg)
    out = np.zeros(cfg.users)
    n, weight, tail = 1, p, 1.0 - p
    while True:
        best = cdf**n - below**n  # P(the session's best match is m_j)
        out += weight * (best * conversion_probability(m, skill, n)).sum(axis=1)
        if tail <= _PAGES_TAIL:
            return out
        n, weight, tail = n + 1, weight * (1.0 - p), tail * (1.0 - p)


def _sessions_in_window(
    cfg: SimConfig, world: World, since_ms: int, until_ms: int
) -> NDArray[np.float64]:
    """Expected number of sessions each user starts in ``[since_ms, until_ms)``.

    A user active on a day starts a Poisson number of sessions there (mean their rate), at a
    time of day drawn around their preferred hour; a day cut by the window contributes the
    share of that time-of-day law inside it.
    """
    starts = day_starts(cfg) * 1000.0
    end_day = np.minimum(world.churn, cfg.days)
    expected = np.zeros(cfg.users)
    first = max(int(np.searchsorted(starts, since_ms, side="right")) - 1, 0)
    for d in range(first, cfg.days):
        if starts[d] >= until_ms:
            break
        lo = min(max((since_ms - starts[d]) / _HOUR_MS, 0.0), 24.0)
        hi = min(max((until_ms - starts[d]) / _HOUR_MS, 0.0), 24.0)
        if hi <= lo:
            continue
        share = hour_cdf(world.hour, hi) - hour_cdf(world.hour, lo)
        on = (world.signup <= d) & (d < end_day)
        expected += np.where(on, world.rate * share, 0.0)
    return expected


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def _duration(ms: float) -> str:
    """``ms`` in days, or in milliseconds when under a minute (``0.00 days`` would mislead)."""
    return f"{ms / _DAY_MS:.2f} days" if ms >= 60_000 else f"{ms:.0f} ms"


def planted_labels(
    cfg: SimConfig,
    world: World,
    as_of_ms: int,
    target: PlantedTarget,
    *,
    window_days: int,
    activity_days: int,
    churned_by: ChurnedBy = "window_end",
) -> PlantedLabels:
    """The planted outcome of each user alive around ``as_of_ms`` (see
    :meth:`tastebud.simulator.Simulator.planted_labels`, which documents the arguments)."""
    if target not in ("churn", "conversion"):
        raise InvalidInput(f"unknown target {target!r}: expected 'churn' or 'conversion'")
    if churned_by not in ("window_end", "as_of"):
        raise InvalidInput(f"unknown churned_by {churned_by!r}: expected 'window_end' or 'as_of'")
    if window_days < 1 or activity_days < 1:
        raise InvalidInput("window_days and activity_days must be at least 1")
    future_ms = window_days * _DAY_MS
    starts = day_starts(cfg) * 1000.0
    end_ms = float(starts[-1])
    if as_of_ms + future_ms > end_ms:
        raise InvalidInput(
            f"the simulation ends {_duration(as_of_ms + future_ms - end_ms)} before the {target} "
            f"window after {_iso(as_of_ms)} does; use an as-of time at or before "
            f"{_iso(end_ms - future_ms)}"
        )
    signup_ms = starts[world.signup]
    # A churn day after the window is as good as never within it (T + window <= its end).
    churn_ms = starts[np.minimum(world.churn, cfg.days)]
    t = float(as_of_ms)
    alive = (signup_ms < t) & (churn_ms > t - activity_days * _DAY_MS)
    users = np.flatnonzero(alive)
    labels: tuple[int, ...] | None
    if target == "churn":
        horizon = churn_ms < t + future_ms if churned_by == "window_end" else churn_ms <= t
        labels = tuple(int(x) for x in horizon[users])
        scores = world.hazard[users]
    else:
        labels = None
        sessions = _sessions_in_window(cfg, world, as_of_ms, as_of_ms + future_ms)
        # Sessions are a Poisson count and each converts independently.
        scores = (1.0 - np.exp(-sessions * _session_conversion(cfg, world)))[users]
    return PlantedLabels(
        target=target,
        as_of_ms=int(as_of_ms),
        window_days=window_days,
        user_ids=tuple(user_id(int(u)) for u in users),
        labels=labels,
        scores=tuple(float(s) for s in scores),
    )
