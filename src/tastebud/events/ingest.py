"""The ingest path: validate -> identity -> consent -> privacy -> store, one batch at a time.

The API, ``tastebud ingest`` and the importers all go through :meth:`Ingestor.ingest`, so an event
is treated the same whatever door it came in by. A batch is handled as a whole (one alias lookup,
one consent lookup and one insert per batch); one bad event never costs the good ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from tastebud.events._fast import parse_event
from tastebud.events.data import DATA_MODELS
from tastebud.events.schema import (
    SCHEMA_VERSION,
    event_timestamp_ms,
    rule_problems,
    timestamp_ms,
)
from tastebud.monitoring import FRESHNESS_SECONDS, INGESTED_TOTAL, get_logger
from tastebud.privacy import ConsentLog, ConsentPolicy, PrivacyFilter, Pseudonymizer, Tombstones
from tastebud.realtime import RealtimeGuard, updates_from
from tastebud.store import Store

__all__ = [
    "BatchResult",
    "EARLIEST_MS",
    "EventResult",
    "Ingestor",
    "MAX_DETAILS",
    "Status",
    "describe_validation_error",
]

_log = get_logger(__name__)
_TAGS = frozenset(DATA_MODELS) | {"custom"}
_ID_MESSAGE = "must be 1 to 128 printable characters (no control characters)"

Status = Literal["accepted", "duplicate", "rejected"]

# Labelled children looked up once: ingest is a hot path.
_ACCEPTED = INGESTED_TOTAL.labels(status="accepted")
_DUPLICATE = INGESTED_TOTAL.labels(status="duplicate")
_REJECTED = INGESTED_TOTAL.labels(status="rejected")


@dataclass(frozen=True, slots=True)
class EventResult:
    """What happened to one event of a batch."""

    event_id: str | None
    status: Status
    reason: str | None = None
    """Why the event was rejected, in one line."""
    code: str | None = None
    """``invalid_event`` or ``consent_required`` for rejected events."""
    details: tuple[dict[str, str], ...] = ()
    """One ``{"field", "message"}`` per problem, for rejected events."""


@dataclass(slots=True)
class BatchResult:
    """Counts and per-event outcomes of one batch, in input order."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    results: list[EventResult] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    """Rejection reasons (first problem of each event) and how often they occurred."""


def describe_validation_error(exc: ValidationError) -> list[dict[str, str]]:
    """Turn a pydantic error into ``[{"field": "data.query", "message": "..."}]``."""
    out: list[dict[str, str]] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = list(err["loc"])
        if loc and isinstance(loc[0], str) and loc[0] in _TAGS:
            loc = loc[1:]  # the union tag is noise for the client
        name = ".".join(str(p) for p in loc)
        message = str(err["msg"])
        kind = err["type"]
        if kind == "unknown_event_type":
            name = "event_type"
        elif kind == "string_pattern_mismatch" and name.endswith("_id"):
            message = _ID_MESSAGE
        elif kind == "string_pattern_mismatch" and name == "event_type":
            message = (
                "custom event types look like custom.<name> (lower-case letters, digits, _ . -)"
            )
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        out.append({"field": name or "event", "message": message})
    return out


EARLIEST_MS = 946_684_800_000
"""2000-01-01T00:00:00Z: the default earliest event time (``Settings.earliest_event_time``)."""


MAX_DETAILS = 50
"""Most ``details`` entries reported for one rejected event."""


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _claimed_id(raw: dict[str, Any]) -> str | None:
    """The event id a rejected event claims, if it is a string (echoed back to the client)."""
    claimed = raw.get("event_id")
    return claimed if isinstance(claimed, str) else None


def _reason(details: list[dict[str, str]]) -> str:
    return "; ".join(
        f"{d['field']}: {d['message']}" if d["field"] != "event" else d["message"] for d in details
    )


class Ingestor:
    """Validates, pseudonymizes, applies consent and the PII policy, and stores events.

    Args:
        store: Where accepted events go.
        pseudonymizer: Turns raw user / anonymous ids into keyed pseudonyms.
        privacy: The sensitive-field policy and free-text PII scan.
        consent: Decides whether a user's analytics consent allows storing events.
        max_future_skew_s: Events stamped further in the future are rejected.
        earliest_ms: Events stamped before this (ms since the epoch) are rejected, unless a
            call gives its own bound (historical imports).
        clock: Seconds since the epoch (injectable for tests).
        realtime: Per-user real-time state updated with every accepted event (optional), under
            the request's time budget: the events are acknowledged without waiting longer.
        item_categories: The catalogue's primary category of items
            (:meth:`tastebud.catalog.Items.categories`), for the real-time state's category
            counts; without it, real-time updates carry no categories.
        consent_log: The process's consent log (one cache of consent states per process);
            a new one on ``store`` if omitted.
    """

    def __init__(
        self,
        store: Store,
        pseudonymizer: Pseudonymizer,
        privacy: PrivacyFilter,
        consent: ConsentPolicy,
        *,
        max_future_skew_s: float = 300.0,
        earliest_ms: int = EARLIEST_MS,
        clock: Callable[[], float] = time.time,
        realtime: RealtimeGuard | None = None,
        item_categories: Callable[[Iterable[str]], Mapping[str, str | None]] | None = None,
        consent_log: ConsentLog | None = None,
    ) -> None:
        self.store = store
        self.consents = consent_log or ConsentLog(store)
        self.tombstones = Tombstones(store)
        self.item_categories = item_categories
        self.pseudonymizer = pseudonymizer
        self.privacy = privacy
        self.consent = consent
        self.max_future_skew_s = max_future_skew_s
        self.earliest_ms = earliest_ms
        self.clock = clock
        self.realtime = realtime

    def ingest(
        self, raw_events: Sequence[Any], *, source: str = "api", earliest_ms: int | None = None
    ) -> BatchResult:
        """Process a batch of decoded JSON events; returns one result per input, in order.

        Args:
            raw_events: Decoded JSON events.
            source: Recorded with every event (``api``, ``file``, ``import``, ``serve``).
            earliest_ms: Overrides the earliest accepted timestamp for this call (historical
                imports pass 1: any time after the epoch).
        """
        now = self.clock()
        earliest = self.earliest_ms if earliest_ms is None else earliest_ms
        now_ms = int(now * 1000)
        horizon_ms = int((now + self.max_future_skew_s) * 1000)
        results: list[EventResult | None] = [None] * len(raw_events)
        reasons: dict[str, int] = {}
        valid: list[tuple[int, dict[str, Any], str, int]] = []
        seen_ids: set[str] = set()

        def reject(
            i: int,
            event_id: str | None,
            details: list[dict[str, str]],
            code: str = "invalid_event",
        ) -> None:
            reason = _reason(details)
            results[i] = EventResult(event_id, "rejected", reason, code, tuple(details))
            reasons[reason] = reasons.get(reason, 0) + 1

        for i, raw in enumerate(raw_events):
            if not isinstance(raw, dict):
                reject(i, None, [{"field": "event", "message": "each event must be a JSON object"}])
                continue
            try:
                ev = parse_event(raw)
            except ValidationError as exc:
                reject(i, _claimed_id(raw), self._problems(raw, exc, horizon_ms, earliest))
                continue
            ts_ms = event_timestamp_ms(ev["timestamp"])
            too = self._time_problem(ts_ms, horizon_ms, earliest)
            if too is not None:
                reject(i, _claimed_id(raw), [{"field": "timestamp", "message": too}])
                continue
            event_id = ev.get("event_id") or self._content_id(ev, ts_ms)
            if event_id in seen_ids:
                results[i] = EventResult(event_id, "duplicate")
                continue
            seen_ids.add(event_id)
            valid.append((i, ev, event_id, ts_ms))

        positions, rows = self._rows(valid, now_ms, source, reject)
        inserted = self.store.insert_serialized_event_rows(rows) if rows else set()
        if inserted and self.realtime is not None:
            self._update_realtime(
                rows if len(inserted) == len(rows) else [r for r in rows if r[0] in inserted], now
            )
        for i, row in zip(positions, rows, strict=True):
            event_id = row[0]
            results[i] = EventResult(event_id, "accepted" if event_id in inserted else "duplicate")

        out = BatchResult(results=[r for r in results if r is not None], reasons=reasons)
        for r in out.results:
            status = r.status
            if status == "accepted":
                out.accepted += 1
            elif status == "duplicate":
                out.duplicates += 1
            else:
                out.rejected += 1
        if out.accepted:
            _ACCEPTED.inc(out.accepted)
        if out.duplicates:
            _DUPLICATE.inc(out.duplicates)
        if out.rejected:
            _REJECTED.inc(out.rejected)
        _log.debug(
            "batch ingested",
            source=source,
            accepted=out.accepted,
            duplicates=out.duplicates,
            rejected=out.rejected,
        )
        return out

    def _problems(
        self, raw: dict[str, Any], exc: ValidationError, horizon_ms: int, earliest: int
    ) -> list[dict[str, str]]:
        """Every problem of a rejected event, one entry each (at most ``MAX_DETAILS``): the
        field errors, and the cross-field and time rules, which the models only check once
        every field is valid."""
        details = describe_validation_error(exc)
        data = raw.get("data")
        rules = rule_problems(raw, data if isinstance(data, dict) else {})
        if rules:
            joined = "; ".join(rules)
            details = [d for d in details if not (d["field"] == "event" and d["message"] == joined)]
            details.extend({"field": "event", "message": m} for m in rules)
        if not any(d["field"] == "timestamp" for d in details):
            ts_ms = timestamp_ms(raw.get("timestamp"))
            too = None if ts_ms is None else self._time_problem(ts_ms, horizon_ms, earliest)
            if too is not None:
                details.append({"field": "timestamp", "message": too})
        return details[:MAX_DETAILS]

    def _time_problem(self, ts_ms: int, horizon_ms: int, earliest: int) -> str | None:
        """Why an event time is refused (too far in the future, or before the earliest time),
        or ``None``."""
        if ts_ms > horizon_ms:
            return f"more than {self.max_future_skew_s:g} s in the future"
        if ts_ms < earliest:
            return f"before the earliest accepted time {_iso(earliest)}"
        return None

    def _returned(self, user_key: str, memo: dict[str, bool]) -> bool:
        """Whether an erased user sent events of their own since (events from before the
        erasure are refused, so any stored event is a new one)."""
        if user_key not in memo:
            memo[user_key] = self.store.count_events(user_key=user_key) > 0
        return memo[user_key]

    def _content_id(self, ev: dict[str, Any], ts_ms: int) -> str:
        """The id of an event sent without one: a keyed hash of its validated content (every
        field, the timestamp to the millisecond), so that a retry, a reload or a second send of
        the same event is a duplicate. Two events identical in every field are one event."""
        content = dict(ev)
        content["timestamp"] = ts_ms  # to the millisecond, whatever the zone it was written in
        return self.pseudonymizer.event_id(orjson.dumps(content, option=orjson.OPT_SORT_KEYS))

    def _update_realtime(self, rows: list[tuple[Any, ...]], received: float) -> None:
        """Real-time state is best effort: the events are stored; a backend that does not
        answer must not fail the request, nor hold its acknowledgement beyond the budget
        (``ServingConfig.realtime_budget_ms``): the update then finishes late or is dropped,
        counted in ``tastebud_realtime_updates_total`` (serving blends without those signals).

        ``received`` is the batch's arrival time in seconds, the value its rows' ``received_ms``
        is stamped from (the stored milliseconds are truncated, which would add up to 1 ms to a
        freshness measured in fractions of one). Freshness is observed once per batch, when
        its update is applied (late ones too): every row of a batch arrived at the same time."""
        realtime = self.realtime
        assert realtime is not None
        try:
            # No profile updates for users who withdrew personalization consent.
            users = {r[2] for r in rows}
            granted = self.consents.states(users, "personalization")
            allows = self.consent.allows
            if not all(allows(granted.get(u)) for u in users):
                rows = [r for r in rows if allows(granted.get(r[2]))]
            categories = (
                {}
                if self.item_categories is None
                else self.item_categories(r[5] for r in rows if r[5] is not None)
            )
            # Events older than the session window are history, not the live session.
            since = int((received - realtime.config.actions_ttl_s) * 1000)
            updates = updates_from(rows, categories, session_since_ms=since)
        except Exception as exc:  # noqa: BLE001 - any database failure, logged by type only
            _log.warning("real-time state not updated", error_type=type(exc).__name__)
            return
        clock = self.clock

        def applied() -> None:
            FRESHNESS_SECONDS.observe(max(0.0, clock() - received))

        realtime.update(updates, applied)

    def _rows(
        self,
        valid: list[tuple[int, dict[str, Any], str, int]],
        now_ms: int,
        source: str,
        reject: Callable[..., None],
    ) -> tuple[list[int], list[tuple[Any, ...]]]:
        """Identity, consent and privacy for validated events; returns the input positions and
        the storable rows (tuples in ``store.EVENT_COLUMNS`` order, ``data`` and ``context``
        cleaned and serialized to JSON text in the same pass)."""
        pseudo = self.pseudonymizer
        identities: list[tuple[str | None, str | None]] = []
        for _, ev, _, _ in valid:
            user_id, anonymous_id = ev.get("user_id"), ev.get("anonymous_id")
            user_key = pseudo.user(user_id) if user_id is not None else None
            anon_key = pseudo.anonymous(anonymous_id) if anonymous_id is not None else None
            identities.append((user_key, anon_key))
        # Anonymous visitors who were identified (aliases) are attributed to their user.
        aliases = self.store.alias_targets(a for u, a in identities if u is None and a is not None)
        keys = [u if u is not None else aliases.get(a or "", a) for u, a in identities]
        states = self.consents.states((k for k in keys if k), "analytics")
        # Erased users: events from before their erasure (a replay) are not taken again.
        erased = self.tombstones.erased_at(
            (k for k in keys if k), lambda k: pseudo.opaque("tombstone", k)
        )

        back: dict[str, bool] = {}
        allows = self.consent.allows
        scrub, scrub_json = self.privacy.scrub, self.privacy.scrub_json
        dumps = orjson.dumps
        positions: list[int] = []
        rows: list[tuple[Any, ...]] = []
        for (i, ev, event_id, ts_ms), user_key, (_, anon_key) in zip(
            valid, keys, identities, strict=True
        ):
            assert user_key is not None  # the schema requires user_id or anonymous_id
            if not allows(states.get(user_key)):
                message = "the user has not consented to analytics"
                reject(i, event_id, [{"field": "consent", "message": message}], "consent_required")
                continue
            if erased and ts_ms <= erased.get(user_key, -1):
                message = "the user's data was erased; events from before the erasure are refused"
                reject(i, event_id, [{"field": "user_id", "message": message}], "user_erased")
                continue
            if source == "serve" and user_key in erased and not self._returned(user_key, back):
                # What serving records about a request (impressions) is not the user's own
                # action: after an erasure nothing is stored for them until they send events
                # of their own again.
                message = "the user's data was erased; nothing is recorded until they return"
                reject(i, event_id, [{"field": "user_id", "message": message}], "user_erased")
                continue
            data = ev["data"]
            context = ev.get("context")
            # Empty data or context is stored as NULL, and so is a context the policy empties
            # (data the policy empties is stored as {}).
            row = (
                event_id,
                ev["event_type"],
                user_key,
                anon_key,
                ev.get("session_id"),
                ev.get("item_id"),
                ts_ms,
                now_ms,
                source,
                SCHEMA_VERSION,
                dumps(scrub(data)).decode() if data else None,
                scrub_json(context) if context else None,
            )
            # U+0000 cannot be stored in PostgreSQL text or JSON: refuse the event alone
            # rather than fail its whole batch (JSON text holds it escaped as \u0000).
            if any(isinstance(v, str) and ("\x00" in v or "\\u0000" in v) for v in row):
                message = "text may not contain the NUL character (U+0000)"
                reject(i, event_id, [{"field": "event", "message": message}])
                continue
            positions.append(i)
            rows.append(row)
        return positions, rows
