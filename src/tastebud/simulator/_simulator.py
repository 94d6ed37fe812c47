"""The :class:`Simulator` front: one world per configuration, its catalogue, users, planted
truth and events, and :func:`write_ndjson` to write the events from several processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import IO

import orjson
from typing_extensions import TypedDict

from tastebud.simulator import _world
from tastebud.simulator._traffic import SimEvent, chunk_events
from tastebud.simulator._truth import (
    ChurnedBy,
    PlantedLabels,
    PlantedTarget,
    PlantedTruth,
    planted_labels,
    planted_parameters,
)
from tastebud.simulator._world import (
    CATEGORIES,
    COUNTRIES,
    KEYWORDS,
    LOCALES,
    SKILLS,
    TYPES,
    SimConfig,
    World,
    build_world,
    sign_up,
)

__all__ = [
    "SimItem",
    "SimItemAttributes",
    "SimUser",
    "Simulator",
    "write_ndjson",
]


class SimItemAttributes(TypedDict):
    """The free-form attributes of a simulated item."""

    level: str
    """The skill level it is written for."""


class SimItem(TypedDict):
    """A simulated catalogue item, as a ``POST /v1/items/batch`` entry."""

    item_id: str
    title: str
    categories: list[str]
    type: str
    created_at: str
    """ISO-8601 with zone."""
    attributes: SimItemAttributes


class SimUser(TypedDict):
    """A simulated user's sign-up attributes, as a ``tastebud import users`` row."""

    user_id: str
    skill_level: str
    country: str
    locale: str
    segment: str
    """``pro`` (very active) or ``standard``."""
    age_bucket: str
    interests: list[str]


class Simulator:
    """Generates the world once, then events chunk by chunk."""

    def __init__(self, config: SimConfig) -> None:
        if config.users < 1 or config.items < len(CATEGORIES) or config.days < 1:
            raise ValueError(f"need users >= 1, items >= {len(CATEGORIES)} and days >= 1")
        self.config = config
        self.world: World = build_world(config)

    # -- ids ------------------------------------------------------------------------------------
    @staticmethod
    def user_id(u: int) -> str:
        """External id of user ``u``."""
        return _world.user_id(u)

    @staticmethod
    def item_id(i: int) -> str:
        """External id of item ``i``."""
        return _world.item_id(i)

    # -- catalogue, attributes, truth ------------------------------------------------------------
    def items(self) -> Iterator[SimItem]:
        """The catalogue as ``POST /v1/items/batch`` entries."""
        w = self.world
        for i in range(self.config.items):
            created = self.config.start + timedelta(days=int(w.item_day[i]), hours=9)
            cat = CATEGORIES[int(w.item_cat[i])]
            yield {
                "item_id": self.item_id(i),
                "title": f"{KEYWORDS[cat][i % 4].title()} #{i}",
                "categories": [cat],
                "type": TYPES[int(w.item_type[i])],
                "created_at": created.isoformat(),
                "attributes": {"level": SKILLS[i % 3]},
            }

    def users(self) -> Iterator[SimUser]:
        """User attributes (what an app would know from sign-up), as ``tastebud import users``
        rows and ``PUT /v1/users/{user_id}`` bodies: segment, skill level, country, locale, an
        age band and declared interests (drawn as the package docstring says)."""
        w = self.world
        ages, interests = sign_up(self.config, w)
        for u in range(self.config.users):
            yield {
                "user_id": self.user_id(u),
                "skill_level": SKILLS[int(w.skill[u])],
                "country": COUNTRIES[int(w.country[u])],
                "locale": LOCALES[int(w.country[u])],
                "segment": "pro" if w.rate[u] > 2 * self.config.sessions_per_day else "standard",
                "age_bucket": ages[u],
                "interests": interests[u],
            }

    def truth(self) -> PlantedTruth:
        """The planted parameters per user, to measure how well they are recovered, and what
        each declared at sign-up (age band, interests): the JSON of ``simulate --truth``."""
        return planted_parameters(self.config, self.world)

    def planted_labels(
        self,
        as_of_ms: int,
        target: PlantedTarget,
        *,
        window_days: int,
        activity_days: int,
        churned_by: ChurnedBy = "window_end",
    ) -> PlantedLabels:
        """The planted outcome of each user as of ``as_of_ms``, to score event-trained models.

        The population mirrors that of labels derived from events: users signed up before
        ``T`` whose churn day (the first day without sessions) comes after
        ``T - activity_days``. Users who happened to start no session in that span are in this
        population but would have no event label.

        * ``churn``: the label is 1 when the user churned before ``T + window_days``, 0 when
          later or never; the score is the planted daily churn hazard. With
          ``churned_by="as_of"`` the label is 1 only when the churn day is at or before ``T``:
          the planted counterpart of "no event in ``[T, T + window)``", which a user who leaves
          during the window does not get, having events before leaving.
        * ``conversion``: no 0/1 outcome is planted (each session converts at random), so the
          labels are ``None``; the score is the probability of at least one conversion among
          the sessions starting in ``[T, T + window_days)``, computed exactly from the laws the
          traffic is drawn from (session rate, days alive and time of day in the window, and
          the per-session probability given skill, tastes and page count). Score a model with a
          rank correlation against it, or compare its ROC-AUC on event labels with the one
          this score reaches on them (the ceiling).

        Args:
            as_of_ms: The as-of time ``T`` (ms since epoch, UTC).
            target: ``churn`` or ``conversion``.
            window_days: Length of the future window (the label's horizon).
            activity_days: Users whose churn day is at or before ``T - activity_days`` are
                gone already and left out.
            churned_by: ``window_end`` (default) or ``as_of``: the churn label's horizon.

        Returns:
            One label and score per user of the population (:class:`PlantedLabels`; its
            :meth:`~PlantedLabels.frame` joins with predictions).

        Raises:
            InvalidInput: An unknown ``target`` or ``churned_by``, a window below one day, or a
                window that ends after the simulated period (unknown outcome).
        """
        return planted_labels(
            self.config,
            self.world,
            as_of_ms,
            target,
            window_days=window_days,
            activity_days=activity_days,
            churned_by=churned_by,
        )

    # -- events ---------------------------------------------------------------------------------
    def events(self) -> Iterator[SimEvent]:
        """Every event, user chunk by user chunk, each chunk in time order."""
        cfg = self.config
        for chunk, lo in enumerate(range(0, cfg.users, cfg.chunk_users)):
            hi = min(cfg.users, lo + cfg.chunk_users)
            yield from self._chunk(chunk, lo, hi)

    def _chunk(self, chunk: int, lo: int, hi: int) -> Iterator[SimEvent]:
        return chunk_events(self.config, self.world, chunk, lo, hi)


_POOL_SIM: Simulator | None = None


def _chunk_bytes(args: tuple[int, int, int]) -> tuple[int, bytes]:
    assert _POOL_SIM is not None
    chunk, lo, hi = args
    events = list(_POOL_SIM._chunk(chunk, lo, hi))
    return len(events), b"".join(orjson.dumps(e) + b"\n" for e in events)


def write_ndjson(
    sim: Simulator,
    fh: IO[bytes],
    *,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write every event as NDJSON, generating chunks in ``workers`` processes; the output is the
    same whatever the number of workers. Returns the number of events."""
    global _POOL_SIM
    cfg = sim.config
    jobs = [
        (c, lo, min(cfg.users, lo + cfg.chunk_users))
        for c, lo in enumerate(range(0, cfg.users, cfg.chunk_users))
    ]
    total = 0
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            _POOL_SIM = sim
            n, blob = _chunk_bytes(job)
            fh.write(blob)
            total += n
            if progress is not None:
                progress(n)
        return total
    _POOL_SIM = sim  # inherited by the forked workers
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        for n, blob in pool.imap(_chunk_bytes, jobs):
            fh.write(blob)
            total += n
            if progress is not None:
                progress(n)
    return total
