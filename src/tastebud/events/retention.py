"""Retention: delete events older than their type's retention period.

Periods are counted from ``received_ms``, when Tastebud received the event, not from its own
timestamp: a history imported today (old ``ts_ms``) is kept for its full period from today.
Only ``events`` rows are deleted. Feature snapshots (``feature_values``) are aggregates built
at a point in time and age out with their snapshots; trained models are retrained on the
remaining events by the worker's schedule.

The module sits in ``events`` (above ``store``, below ``training``, whose worker runs it daily,
and ``cli``): retention is a rule about events and needs nothing but the store.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping

from sqlalchemy import ColumnElement, and_, delete, false, or_, select

from tastebud.errors import ConfigError
from tastebud.monitoring import get_logger
from tastebud.privacy import PrivacyLog
from tastebud.store import Store
from tastebud.store import tables as t

__all__ = ["DAY_MS", "apply_retention", "retention_condition"]

_log = get_logger(__name__)
DAY_MS = 86_400_000
"""Milliseconds in a day."""


def retention_condition(retention_days: Mapping[str, int], now_ms: int) -> ColumnElement[bool]:
    """The SQL condition an event must meet to be deleted at ``now_ms``.

    Args:
        retention_days: Days kept per event type; ``"*"`` for every type not named. Types not
            named are kept forever when there is no ``"*"``.
        now_ms: The time the periods are counted back from.

    Raises:
        ConfigError: a period shorter than one day.
    """
    short = sorted(k for k, days in retention_days.items() if days < 1)
    if short:
        raise ConfigError(f"retention periods must be at least 1 day (not for {', '.join(short)})")
    ev = t.events
    by_days: dict[int, list[str]] = {}
    for event_type, days in retention_days.items():
        if event_type != "*":
            by_days.setdefault(days, []).append(event_type)
    # One condition per distinct period: the table is scanned once, whatever the rules.
    rules: list[ColumnElement[bool]] = [
        and_(ev.c.event_type.in_(sorted(types)), ev.c.received_ms < now_ms - days * DAY_MS)
        for days, types in sorted(by_days.items())
    ]
    if "*" in retention_days:
        named = sorted(k for k in retention_days if k != "*")
        cutoff = now_ms - retention_days["*"] * DAY_MS
        other = ev.c.received_ms < cutoff
        rules.append(and_(ev.c.event_type.not_in(named), other) if named else other)
    return or_(*rules) if rules else false()


def apply_retention(
    store: Store,
    retention_days: Mapping[str, int],
    now_ms: int,
    *,
    batch_size: int = 10_000,
) -> dict[str, int]:
    """Delete every event received longer ago than its type's retention period.

    Works through the table in windows of ``batch_size`` ids in arrival order, one short
    transaction each (ingest is never blocked for long), so the table is read once and at most
    ``batch_size`` rows are deleted per transaction. Safe to interrupt and to run again. Each
    run is recorded in the privacy log (the transparency report's retention counts).

    Args:
        store: The store.
        retention_days: Days kept per event type, ``"*"`` for the others
            (``Settings.retention_days``).
        now_ms: The current time in ms since the epoch.
        batch_size: Rows deleted per transaction.

    Returns:
        Events deleted per event type (types with none deleted are absent).

    Raises:
        ConfigError: a period shorter than one day.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.monotonic()
    ev = t.events
    condition = retention_condition(retention_days, now_ms)
    counts: Counter[str] = Counter()
    after = 0
    while True:
        with store.engine.begin() as conn:
            # A window of ``batch_size`` ids, then the expired rows in it: each batch reads
            # one range of the primary key (a filtered ``ORDER BY id LIMIT`` would make
            # PostgreSQL sort every remaining row per batch, as the filter has no index).
            window = select(ev.c.id).where(ev.c.id > after).order_by(ev.c.id)
            upper = conn.execute(window.offset(batch_size - 1).limit(1)).scalar()
            in_window = ev.c.id > after if upper is None else ev.c.id.between(after + 1, upper)
            stmt = delete(ev).where(in_window, condition).returning(ev.c.event_type)
            counts.update(r.event_type for r in conn.execute(stmt))
        if upper is None:
            break
        after = upper
    deleted = dict(sorted(counts.items()))
    # Counts only, for the transparency report and the log: event types are not personal data.
    PrivacyLog(store).record("retention", sum(deleted.values()), {"deleted": deleted}, now_ms)
    _log.info(
        "retention applied",
        deleted=sum(deleted.values()),
        by_type=deleted,
        seconds=round(time.monotonic() - started, 2),
    )
    return deleted
