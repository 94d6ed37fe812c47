"""Users: attributes, what is known about them, their history, consent and aliases
(identify). Raw ids are pseudonymized on arrival; the listing shows pseudonyms only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from tastebud.api.deps import ServicesDep, scoped
from tastebud.api.pagination import CursorQuery, LimitQuery, decode_cursor, encode_cursor
from tastebud.api.schemas import (
    AliasIn,
    AliasOut,
    ConsentIn,
    ConsentOut,
    ConsentState,
    EventPageOut,
    KnownFrom,
    StoredEventOut,
    UserEntryOut,
    UserOut,
    UserPageOut,
    from_ms,
)
from tastebud.catalog import UserIn
from tastebud.errors import InvalidInput, UnknownUser
from tastebud.events.fields import Id
from tastebud.monitoring import get_logger
from tastebud.privacy import PURPOSES
from tastebud.services import Services

__all__ = [
    "get_consent",
    "get_user",
    "list_user_events",
    "list_users",
    "post_alias",
    "put_consent",
    "put_user",
    "router",
]

_log = get_logger(__name__)

router = APIRouter(tags=["users"])
UserIdPath = Annotated[Id, Path(description="Your user id (stored only as a keyed pseudonym)")]
AnonymousQuery = Annotated[
    bool,
    Query(description="The id is an anonymous (device/cookie) id rather than a user id"),
]


def _key(services: Services, raw_id: str, anonymous: bool = False) -> str:
    p = services.pseudonymizer
    return p.anonymous(raw_id) if anonymous else p.user(raw_id)


def _known_from(has_attributes: bool, event_count: int) -> list[KnownFrom]:
    known: list[KnownFrom] = []
    if has_attributes:
        known.append("attributes")
    if event_count:
        known.append("events")
    return known


def _user_out(services: Services, user_id: str) -> UserOut:
    """What is stored about ``user_id``: attributes and event statistics.

    Raises:
        UnknownUser: neither attributes nor events are stored.
    """
    summary = services.catalog.users.summary(_key(services, user_id))
    if summary is None:
        raise UnknownUser("nothing is stored for this user: no attributes and no events")
    return UserOut(
        user_id=user_id,
        attributes=summary.attributes or {},
        created_at=from_ms(summary.created_ms),
        updated_at=from_ms(summary.updated_ms),
        known_from=_known_from(summary.attributes is not None, summary.event_count),
        first_event_at=from_ms(summary.first_event_ms),
        last_event_at=from_ms(summary.last_event_ms),
        event_count=summary.event_count,
    )


def _readable(services: Services, payload: Any) -> Any:
    """``payload`` with encrypted fields decrypted, as export shows them. A payload holding a
    field that no configured key decrypts (its key was removed) is shown as stored rather than
    failing the page."""
    try:
        return services.privacy.decrypt(payload)
    except ValueError:
        _log.warning("a stored field cannot be decrypted with the configured keys")
        return payload


@router.get("/v1/users", response_model=UserPageOut, **scoped("admin"))
def list_users(
    services: ServicesDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> UserPageOut:
    """Every user the store knows, by pseudonym (raw ids are never stored): from attributes,
    from events, or both, with first and last event time and the number of events stored
    under the pseudonym. Attributes are decrypted, as export shows them. Follow
    ``next_cursor`` until it is ``null``."""
    signer = services.pseudonymizer
    after = None if cursor is None else decode_cursor(signer, "users", "", cursor, (str,))[0]
    page = services.catalog.users.browse(limit=limit, after=after)
    users = [
        UserEntryOut(
            pseudonym=u.user_key,
            known_from=_known_from(u.attributes is not None, u.event_count),
            attributes=None if u.attributes is None else _readable(services, u.attributes),
            created_at=from_ms(u.created_ms),
            updated_at=from_ms(u.updated_ms),
            first_event_at=from_ms(u.first_event_ms),
            last_event_at=from_ms(u.last_event_ms),
            event_count=u.event_count,
        )
        for u in page.entries
    ]
    next_cursor = encode_cursor(signer, "users", "", [users[-1].pseudonym]) if page.more else None
    return UserPageOut(users=users, next_cursor=next_cursor)


@router.put(
    "/v1/users/{user_id}",
    response_model=UserOut,
    responses={201: {"model": UserOut, "description": "Created"}},
    **scoped("admin"),
)
def put_user(
    user_id: UserIdPath, body: UserIn, response: Response, services: ServicesDep
) -> UserOut:
    """Create or replace a user's attributes (201 when created). Sensitive attributes follow
    the same policy as event fields (e.g. an ``email`` attribute is encrypted)."""
    created = services.catalog.put_user(user_id, body, services.now_ms())
    response.status_code = 201 if created else 200
    return _user_out(services, user_id)


@router.get("/v1/users/{user_id}", response_model=UserOut, **scoped("serve"))
def get_user(user_id: UserIdPath, services: ServicesDep) -> UserOut:
    """What is stored about a user: attributes (``{}`` and null times when none were put) and
    events (first and last event time, count), with ``known_from`` saying which. ``404
    unknown_user`` only when nothing at all is stored."""
    return _user_out(services, user_id)


@router.get("/v1/users/{user_id}/events", response_model=EventPageOut, **scoped("admin"))
def list_user_events(
    user_id: UserIdPath, services: ServicesDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> EventPageOut:
    """The user's stored events, newest first (event time, then arrival order), including
    events of anonymous ids merged into the user. Encrypted fields are decrypted, as export
    shows them. ``404 unknown_user`` when nothing at all is stored for the user."""
    signer = services.pseudonymizer
    key = _key(services, user_id)
    after = None
    if cursor is not None:
        ts, last = decode_cursor(signer, "events", key, cursor, (int, int))
        after = (ts, last)
    page = services.store.browse_user_events(key, limit=limit, after=after)
    if not page.entries and after is None and services.catalog.users.summary(key) is None:
        raise UnknownUser("nothing is stored for this user: no attributes and no events")
    events = [
        StoredEventOut(
            event_id=ev.event_id,
            event_type=ev.event_type,
            timestamp=from_ms(ev.ts_ms),
            received_at=from_ms(ev.received_ms),
            session_id=ev.session_id,
            item_id=ev.item_id,
            data=_readable(services, ev.data),
            context=_readable(services, ev.context),
            source=ev.source,
        )
        for ev in page.entries
    ]
    last_key = list(page.entries[-1].key) if page.more else None
    next_cursor = None if last_key is None else encode_cursor(signer, "events", key, last_key)
    return EventPageOut(events=events, next_cursor=next_cursor)


def _consent_out(services: Services, key: str) -> ConsentOut:
    stored = services.consent_log.decisions(key)
    states = {}
    for purpose in PURPOSES:
        granted, updated = stored.get(purpose, (None, None))
        states[purpose] = ConsentState(
            granted=services.consent.effective(granted),
            explicit=granted is not None,
            updated_at=from_ms(updated) if updated is not None else None,
        )
    return ConsentOut(mode=services.consent.mode, **states)


@router.put("/v1/users/{user_id}/consent", response_model=ConsentOut, **scoped("ingest"))
def put_consent(
    user_id: UserIdPath, body: ConsentIn, services: ServicesDep, anonymous: AnonymousQuery = False
) -> ConsentOut:
    """Record consent decisions for ``analytics`` and/or ``personalization``. Every change is
    logged (for the transparency report). Safe for an ``ingest`` key, as a consent banner needs."""
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise InvalidInput("give at least one of analytics, personalization")
    key = _key(services, user_id, anonymous)
    services.consent_log.record(key, changes, services.now_ms())
    services.engine.consent_changed(key)  # other processes follow within a second
    return _consent_out(services, key)


@router.get("/v1/users/{user_id}/consent", response_model=ConsentOut, **scoped("serve"))
def get_consent(
    user_id: UserIdPath, services: ServicesDep, anonymous: AnonymousQuery = False
) -> ConsentOut:
    """The user's effective consent per purpose, and whether it was explicitly decided."""
    return _consent_out(services, _key(services, user_id, anonymous))


@router.post("/v1/users/{user_id}/aliases", response_model=AliasOut, **scoped("admin"))
def post_alias(user_id: UserIdPath, body: AliasIn, services: ServicesDep) -> AliasOut:
    """Identify: merge an anonymous visitor's history into this user. Later events sent with
    only that ``anonymous_id`` are attributed to the user too. Idempotent; an anonymous id
    already merged into another user is a 409."""
    moved, created = services.store.merge_alias(
        services.pseudonymizer.anonymous(body.anonymous_id),
        services.pseudonymizer.user(user_id),
        services.now_ms(),
    )
    return AliasOut(merged_events=moved, created=created)
