"""Users: attributes, consent and aliases (identify). Raw ids are pseudonymized on arrival."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from tastebud.api.deps import ServicesDep, scoped
from tastebud.api.schemas import (
    AliasIn,
    AliasOut,
    ConsentIn,
    ConsentOut,
    ConsentState,
    UserIn,
    UserOut,
    from_ms,
)
from tastebud.errors import InvalidInput, UnknownUser
from tastebud.events.schema import Id
from tastebud.privacy import PURPOSES
from tastebud.services import Services

__all__ = ["router"]

router = APIRouter(tags=["users"])
UserIdPath = Annotated[Id, Path(description="Your user id (stored only as a keyed pseudonym)")]
AnonymousQuery = Annotated[
    bool,
    Query(description="The id is an anonymous (device/cookie) id rather than a user id"),
]


def _key(services: Services, raw_id: str, anonymous: bool = False) -> str:
    p = services.pseudonymizer
    return p.anonymous(raw_id) if anonymous else p.user(raw_id)


@router.put("/v1/users/{user_id}", response_model=UserOut, **scoped("admin"))
def put_user(
    user_id: UserIdPath, body: UserIn, response: Response, services: ServicesDep
) -> UserOut:
    """Create or replace a user's attributes (201 when created). Sensitive attributes follow
    the same policy as event fields (e.g. an ``email`` attribute is encrypted)."""
    created = services.catalog.put_user(user_id, body, services.now_ms())
    response.status_code = 201 if created else 200
    row = services.store.get_user(_key(services, user_id))
    assert row is not None
    return UserOut(
        user_id=user_id,
        attributes=row["attributes"],
        created_at=from_ms(row["created_ms"]),
        updated_at=from_ms(row["updated_ms"]),
    )


@router.get("/v1/users/{user_id}", response_model=UserOut, **scoped("serve"))
def get_user(user_id: UserIdPath, services: ServicesDep) -> UserOut:
    """Read a user's attributes."""
    row = services.store.get_user(_key(services, user_id))
    if row is None:
        raise UnknownUser("no attributes are stored for this user")
    return UserOut(
        user_id=user_id,
        attributes=row["attributes"],
        created_at=from_ms(row["created_ms"]),
        updated_at=from_ms(row["updated_ms"]),
    )


def _consent_out(services: Services, key: str) -> ConsentOut:
    stored = services.store.get_consents(key)
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
    services.store.set_consents(key, changes, services.now_ms())
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
