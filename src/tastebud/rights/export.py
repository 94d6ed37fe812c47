"""Export: everything held about one user, as one JSON document streamed in pieces (a long
history never sits in memory at once)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
from pydantic import JsonValue
from sqlalchemy import select

from tastebud.features import latest_snapshot
from tastebud.privacy import PrivacyFilter
from tastebud.realtime import RealtimeState
from tastebud.registry import Registry
from tastebud.serving.predictions import Predictions
from tastebud.store import Store
from tastebud.store import tables as t

__all__ = [
    "ExportContext",
    "ExportHead",
    "ExportedAction",
    "ExportedConsent",
    "ExportedConsentChange",
    "ExportedEvent",
    "ExportedFeatures",
    "ExportedModel",
    "ExportedRealtime",
    "UserExport",
    "export_user",
]

_BATCH = 1000

# The document's parts are plain frozen dataclasses: orjson writes them as they are (a long
# history is streamed without a dict per event), and pydantic reads their schema for OpenAPI.


@dataclass(frozen=True, slots=True)
class ExportedEvent:
    """One stored event of the user, encrypted fields decrypted."""

    event_id: str
    event_type: str
    session_id: str | None
    item_id: str | None
    ts_ms: int
    """Event time, ms since the epoch."""
    received_ms: int
    """When Tastebud stored it."""
    source: str
    """How it arrived: ``api``, ``import``, ..."""
    data: dict[str, JsonValue] | None
    """The event's payload as stored (the event type's fields)."""
    context: dict[str, JsonValue] | None


@dataclass(frozen=True, slots=True)
class ExportedConsent:
    """The user's stored decision for one purpose."""

    granted: bool
    updated_ms: int | None


@dataclass(frozen=True, slots=True)
class ExportedConsentChange:
    """One entry of the user's consent history."""

    purpose: str
    granted: bool
    at_ms: int


@dataclass(frozen=True, slots=True)
class ExportedFeatures:
    """The user's feature values."""

    snapshot: dict[str, JsonValue] | None
    """From the latest feature snapshot (``null``: the snapshot does not hold the user)."""
    online: dict[str, JsonValue] | None
    """Published to the real-time store by the latest feature build."""


@dataclass(frozen=True, slots=True)
class ExportedAction:
    """One recent session action, with the short keys the real-time store keeps it under."""

    t: str
    """The event type."""
    i: str | None
    """The item, if the event has one."""
    c: str | None
    """The item's category, if it has one."""
    ts: int
    """Event time, ms since the epoch."""
    s: str | None
    """The session id."""


@dataclass(frozen=True, slots=True)
class ExportedRealtime:
    """The user's real-time state (the live session and the counters serving reads)."""

    recent_actions: list[ExportedAction]
    item_counts: dict[str, int]
    category_counts: dict[str, int]
    consumed: list[str]
    feedback: dict[str, str]


@dataclass(frozen=True, slots=True)
class ExportedModel:
    """A registered model version whose artifact holds the user."""

    name: str
    version: int
    status: str


@dataclass(frozen=True, slots=True)
class ExportHead:
    """The export document before its event arrays."""

    user_id: str
    pseudonym: str
    exported_ms: int
    attributes: dict[str, JsonValue] | None
    """As put with ``PUT /v1/users/{user_id}``, decrypted; ``null`` when none were."""
    consents: dict[str, ExportedConsent]
    """Per purpose the user decided on."""
    consent_history: list[ExportedConsentChange]
    anonymous_ids_merged: int
    features: ExportedFeatures
    realtime: ExportedRealtime
    predictions: Predictions | None
    """What ``GET /v1/users/{user_id}/predictions`` answers now (``null``: no predictor in
    production, or the user opted out of personalization)."""
    models: list[ExportedModel]


@dataclass(frozen=True, slots=True)
class UserExport(ExportHead):
    """Everything held about one user: the document :func:`export_user` streams."""

    events: list[ExportedEvent]
    """Every event but impressions and feedback, oldest first."""
    impressions: list[ExportedEvent]
    feedback: list[ExportedEvent]


@dataclass
class ExportContext:
    """What an export reads."""

    store: Store
    realtime: RealtimeState
    registry: Registry
    privacy: PrivacyFilter
    predict: Callable[[str], Predictions]
    """The user's current predictions (raises when there are none)."""


def _dump(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _events(
    ctx: ExportContext, keys: list[str], types: tuple[str, ...], exclude: bool
) -> Iterator[ExportedEvent]:
    e = t.events
    last = 0
    kind = e.c.event_type.not_in(types) if exclude else e.c.event_type.in_(types)
    while True:
        q = (
            select(
                e.c.id,
                e.c.event_id,
                e.c.event_type,
                e.c.session_id,
                e.c.item_id,
                e.c.ts_ms,
                e.c.received_ms,
                e.c.source,
                e.c.data,
                e.c.context,
            )
            # The user's events are stored under their pseudonym or, before a merge, an
            # anonymous one of theirs. An event of another user who later used the same
            # device carries that anonymous id too, but is not this user's.
            .where(e.c.user_key.in_(keys) & kind & (e.c.id > last))
            .order_by(e.c.id)
            .limit(_BATCH)
        )
        with ctx.store.engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return
        for r in rows:
            data = orjson.loads(r.data) if isinstance(r.data, str) else r.data
            context = orjson.loads(r.context) if isinstance(r.context, str) else r.context
            yield ExportedEvent(
                event_id=r.event_id,
                event_type=r.event_type,
                session_id=r.session_id,
                item_id=r.item_id,
                ts_ms=r.ts_ms,
                received_ms=r.received_ms,
                source=r.source,
                data=ctx.privacy.decrypt(data),
                context=ctx.privacy.decrypt(context),
            )
        last = rows[-1].id


def export_user(ctx: ExportContext, user_id: str, user_key: str) -> Iterator[bytes]:
    """The export document of ``user_id`` in chunks of JSON text: attributes (decrypted),
    consents and their history, merged anonymous ids, features (snapshot and live), real-time
    state, current predictions, the models that hold the user, then every event (decrypted),
    impression and feedback event."""
    s = ctx.store
    with s.engine.connect() as conn:
        anon = list(
            conn.execute(
                select(t.aliases.c.anon_key).where(t.aliases.c.user_key == user_key)
            ).scalars()
        )
        keys = [user_key, *anon]
        user = conn.execute(select(t.users).where(t.users.c.user_key == user_key)).first()
        consents = conn.execute(
            select(t.consents.c.purpose, t.consents.c.granted, t.consents.c.updated_ms).where(
                t.consents.c.user_key.in_(keys)
            )
        ).all()
        history = conn.execute(
            select(t.consent_log.c.purpose, t.consent_log.c.granted, t.consent_log.c.at_ms)
            .where(t.consent_log.c.user_key.in_(keys))
            .order_by(t.consent_log.c.id)
        ).all()
        snap = latest_snapshot(s)
        features = None
        if snap is not None:
            row = conn.execute(
                select(t.feature_values.c.vals).where(
                    t.feature_values.c.snapshot_id == snap["id"],
                    t.feature_values.c.entity == "user",
                    t.feature_values.c.entity_key == user_key,
                )
            ).first()
            if row is not None:
                features = orjson.loads(row.vals) if isinstance(row.vals, str) else row.vals
    state = ctx.realtime.get(user_key)
    try:
        predictions: Predictions | None = ctx.predict(user_key)
    except Exception:  # noqa: BLE001 - no predictor in production, or no features yet
        predictions = None
    models = []
    for mv, path in ctx.registry.iter_artifacts():
        users_file = path / "users.json"
        if users_file.is_file() and user_key in orjson.loads(users_file.read_bytes()):
            models.append(ExportedModel(name=mv.name, version=mv.version, status=mv.status))
    head = ExportHead(
        user_id=user_id,
        pseudonym=user_key,
        exported_ms=int(time.time() * 1000),
        attributes=None if user is None else ctx.privacy.decrypt(user.attributes),
        consents={p: ExportedConsent(granted=bool(g), updated_ms=u) for p, g, u in consents},
        consent_history=[
            ExportedConsentChange(purpose=p, granted=bool(g), at_ms=a) for p, g, a in history
        ],
        anonymous_ids_merged=len(anon),
        features=ExportedFeatures(snapshot=features, online=state.features),
        realtime=ExportedRealtime(
            recent_actions=[ExportedAction(**a) for a in state.actions],
            item_counts=state.items,
            category_counts=state.categories,
            consumed=state.consumed,
            feedback=state.feedback,
        ),
        predictions=predictions,
        models=models,
    )
    yield _dump(head)[:-1]  # the object stays open: the event arrays follow (UserExport)
    for name, types, exclude in (
        ("events", ("impression", "feedback"), True),
        ("impressions", ("impression",), False),
        ("feedback", ("feedback",), False),
    ):
        yield b', "' + name.encode() + b'": ['
        first = True
        buf: list[bytes] = []
        for ev in _events(ctx, keys, types, exclude):
            buf.append((b"" if first else b",") + _dump(ev))
            first = False
            if len(buf) >= _BATCH:
                yield b"".join(buf)
                buf = []
        yield b"".join(buf) + b"]"
    yield b"}"
