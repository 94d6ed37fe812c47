"""The NetworkBuster traffic simulator: realistic, seeded behaviour events for demos, tests and
scale runs, with the planted truth so that later stages can be measured against it.

The world: items (articles, videos, tools, tutorials) in twelve categories with a skewed
popularity; users with planted **tastes** over categories (a sparse Dirichlet draw: most users
care about one to three), a device mix, a preferred hour of day, a skill level, an activity rate
and a daily **churn hazard**, plus what they declare at sign-up (an age band, interests). Each
active day a user opens sessions (Poisson); a session is a walk over items chosen by taste (with
some exploration of what is popular), emitting page views, page loads, clicks, engagement,
ratings and searches, plus session-level logins, network quality, feature usage, settings
changes, errors and resource reports, and a conversion whose probability grows with how well
the session matched the user's taste.

Everything is drawn with NumPy from one seed, chunk by chunk (each chunk of users has its own
child seed), so the same arguments give byte-identical output, and per-event Python work is
limited to building the final dicts.

The planted truth comes from the simulator only: :meth:`Simulator.truth` (the parameters) and
:meth:`Simulator.planted_labels` (the churn outcome and conversion probability of each user at
an as-of time), computed from the same behaviour laws as the events, whose constants are
defined once (``_behaviour``).

Modules, by job: ``_world`` (configuration, vocabularies, the drawn catalogue and users),
``_behaviour`` (session laws shared by traffic and truth), ``_traffic`` (events), ``_truth``
(planted parameters and labels), ``_simulator`` (the :class:`Simulator` front and
:func:`write_ndjson`).

A second, separate generator, ``counts``, draws a benchmark dataset of implicit play counts
without time, shaped like Last.fm's hetrec-2011 artists (:func:`generate_counts` with a
:class:`CountsConfig`, written by :func:`write_counts_tsv`; ``tastebud simulate-counts``).

Example::

    >>> sim = Simulator(SimConfig(users=20, items=50, days=3, seed=7))
    >>> events = list(sim.events())
    >>> events == list(Simulator(SimConfig(users=20, items=50, days=3, seed=7)).events())
    True
    >>> sorted({e["event_type"] for e in events}) [:3]
    ['account', 'click', 'content_engagement']
    >>> T = int(sim.config.start.timestamp() * 1000) + 86_400_000
    >>> planted = sim.planted_labels(T, "conversion", window_days=2, activity_days=1)
    >>> planted.labels is None and all(0.0 <= p < 1.0 for p in planted.scores)
    True
"""

from __future__ import annotations

from tastebud.simulator._simulator import SimItem, Simulator, SimUser, write_ndjson
from tastebud.simulator._traffic import SimEvent
from tastebud.simulator._truth import ChurnedBy, PlantedLabels, PlantedTarget, PlantedTruth
from tastebud.simulator._world import AGE_BUCKETS, CATEGORIES, SimConfig
from tastebud.simulator.counts import (
    CountsConfig,
    CountsData,
    CountsStats,
    RowOrder,
    generate_counts,
    write_counts_tsv,
)
from tastebud.simulator.experiments import ExperimentPlayer, examination

__all__ = [
    "AGE_BUCKETS",
    "CATEGORIES",
    "ChurnedBy",
    "CountsConfig",
    "CountsData",
    "CountsStats",
    "ExperimentPlayer",
    "PlantedLabels",
    "PlantedTarget",
    "PlantedTruth",
    "RowOrder",
    "SimConfig",
    "SimEvent",
    "SimItem",
    "SimUser",
    "Simulator",
    "examination",
    "generate_counts",
    "write_counts_tsv",
    "write_ndjson",
]
