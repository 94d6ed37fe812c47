"""Opaque, signed cursors for the list endpoints (``?limit=&cursor=``).

A cursor is ``base64url(JSON of the last key) + "." + MAC``: the MAC is a keyed digest (the
deployment's pseudonym key, in a namespace of its own) over the listing's name, its filter and
the key, so a cursor cannot be edited, forged or carried to another listing or filter. Every
process of a deployment shares the key, so a cursor from one API process works on any other.
A cursor that fails any check is a ``422 invalid_request`` naming ``query.cursor``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated, Any

import orjson
from fastapi import Query

from tastebud.errors import InvalidInput
from tastebud.privacy import Pseudonymizer

__all__ = ["CURSOR_PATTERN", "CursorQuery", "LimitQuery", "decode_cursor", "encode_cursor"]

CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,2000}\.[0-9a-f]{32}$"
"""What a cursor looks like (checked before its MAC)."""

LimitQuery = Annotated[int, Query(ge=1, le=1000, description="Page size (1 to 1,000)")]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=2033,
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page; omit it for the first page",
    ),
]

_FIELD = "query.cursor"


def _mac(signer: Pseudonymizer, listing: str, scope: str, body: str) -> str:
    # NUL separators: no listing name, filter or body can shift bytes into its neighbour.
    return signer.opaque("cursor", f"{listing}\x00{scope}\x00{body}")


def encode_cursor(signer: Pseudonymizer, listing: str, scope: str, key: list[Any]) -> str:
    """The cursor that continues ``listing`` (with filter ``scope``) after ``key``.

    Args:
        signer: The deployment's keyed digest.
        listing: Which list, e.g. ``items``.
        scope: The list's filter (a category, a user's pseudonym; ``""`` for none).
        key: The last entry's key, JSON-serializable.
    """
    body = base64.urlsafe_b64encode(orjson.dumps(key)).rstrip(b"=").decode("ascii")
    return f"{body}.{_mac(signer, listing, scope, body)}"


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(f"cursor: {message}", details=[{"field": _FIELD, "message": message}])


def decode_cursor(
    signer: Pseudonymizer, listing: str, scope: str, cursor: str, types: tuple[type, ...]
) -> list[Any]:
    """The key a cursor of :func:`encode_cursor` carries, checked.

    Args:
        signer: The deployment's keyed digest.
        listing: The list being read.
        scope: Its filter; a cursor of another filter is refused.
        cursor: The client's cursor.
        types: The type of each element of the key.

    Raises:
        InvalidInput: the cursor is malformed, altered, or belongs to another list or filter.
    """
    body, _, mac = cursor.partition(".")
    if not body or not hmac.compare_digest(mac, _mac(signer, listing, scope, body)):
        raise _refuse(
            "not a cursor of this list: pass next_cursor of the previous page unchanged, "
            "with the same filters"
        )
    try:
        key = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError) as exc:  # only reachable with a valid MAC
        raise _refuse("the cursor is malformed") from exc
    if (
        not isinstance(key, list)
        or len(key) != len(types)
        or not all(type(v) is tp for v, tp in zip(key, types, strict=True))
    ):
        raise _refuse("the cursor is malformed")
    return key
