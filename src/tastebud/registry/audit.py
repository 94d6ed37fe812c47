"""The registry's audit log (``registry_log``): every registration, revision, promotion,
rollback, hold, approval and archival, with who did it, why and when; and the production
history read back from it (promotions push, rollbacks pop)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from tastebud.registry.records import LogEntry
from tastebud.store import tables as t

__all__ = ["history", "production_stack", "record"]


def record(
    conn: Connection,
    name: str,
    version: int | None,
    action: str,
    *,
    actor: str,
    at_ms: int,
    alias: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry to the log, inside the caller's transaction (the action and its entry
    commit together)."""
    conn.execute(
        insert(t.registry_log).values(
            name=name,
            version=version,
            action=action,
            alias=alias,
            actor=actor,
            reason=reason,
            details=dict(details or {}),
            at_ms=at_ms,
        )
    )


def history(engine: Engine, name: str) -> list[LogEntry]:
    """The log of ``name``, oldest first."""
    log = t.registry_log
    with engine.connect() as conn:
        rows = conn.execute(select(log).where(log.c.name == name).order_by(log.c.id)).all()
    return [
        LogEntry(
            name=r.name,
            version=r.version,
            action=r.action,
            alias=r.alias,
            actor=r.actor,
            reason=r.reason,
            details=r.details or {},
            at_ms=r.at_ms,
        )
        for r in rows
    ]


def production_stack(entries: Iterable[LogEntry]) -> list[int]:
    """The stack of production versions that ``entries`` describe: promotions push, rollbacks
    pop (and push the version they returned to, when it is not on top already).

    >>> def entry(action, version):
    ...     return LogEntry(name="m", version=version, action=action, alias="production",
    ...                     actor="a", reason=None, details={}, at_ms=0)
    >>> production_stack([entry("promote", 1), entry("promote", 2), entry("rollback", 1)])
    [1]
    """
    stack: list[int] = []
    for e in entries:
        if e.alias != "production" or e.version is None:
            continue
        if e.action == "promote":
            stack.append(e.version)
        elif e.action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != e.version:
                stack.append(e.version)
    return stack
