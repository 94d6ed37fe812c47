"""What the registry holds, as typed records: a version, its approval, and one entry of the
audit log. Frozen pydantic models: the registry returns them, the CLI prints them and the API
answers with them (``model_dump(mode="json")`` is the JSON view; ``path`` stays internal).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tastebud.errors import InvalidInput

__all__ = [
    "ALIASES",
    "Alias",
    "Approval",
    "LogEntry",
    "ModelKind",
    "ModelVersion",
    "VersionStatus",
    "check_name",
]

Alias = Literal["candidate", "staging", "production"]
"""An alias a version can carry."""

ALIASES: tuple[Alias, ...] = ("candidate", "staging", "production")
"""Aliases a version can carry (any number of versions may exist; each alias names one)."""

ModelKind = Literal["recommender", "predictor"]
"""What a version's artifact holds (and so how it is loaded and checked)."""

VersionStatus = Literal["active", "archived"]
"""``archived``: kept for audits and erasure, never served again and never an alias."""

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def check_name(name: str) -> str:
    """Validate a model name (lower-case letters, digits, ``_`` and ``-``).

    Raises:
        InvalidInput: the name does not follow the rule.
    """
    if not _NAME.match(name):
        raise InvalidInput(
            f"invalid model name {name!r}: use 1-64 lower-case letters, digits, '_' or '-', "
            "starting with a letter"
        )
    return name


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class Approval(_Record):
    """Who approved a version, and when (the checklist's last item)."""

    by: str
    """``key:<key id>`` (the API), ``cli:<os user>`` (the CLI) or ``policy:auto-promote``."""
    at_ms: int
    """When, in ms since the epoch."""
    note: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """Recorded with the approval (absent when none was given)."""


class ModelVersion(_Record):
    """One registered version of a model (its current revision)."""

    name: str
    version: int
    revision: int
    """Starts at 1; each rewrite of the artifact (e.g. an erasure) adds one."""
    kind: ModelKind
    algorithm: str
    path: str = Field(exclude=True)
    """The artifact directory, relative to the registry root (internal: never in the JSON)."""
    artifact_id: str
    """First 16 hex digits of the artifact manifest's sha256."""
    status: VersionStatus
    created_ms: int
    aliases: tuple[Alias, ...] = ()
    """In the order of :data:`ALIASES`."""
    metrics: dict[str, Any]
    """The training job's ``metrics.json``: held-out ``test`` metrics, the ``baseline`` on the
    same split, fairness ``slices``; a document whose keys vary by kind and algorithm."""
    lineage: dict[str, Any]
    """The training job's ``lineage.json``: data window and counts, consent filter, features,
    code version, parameters, seed, parent and revisions (docs/registry.md)."""
    approval: Approval | None


class LogEntry(_Record):
    """One audited registry action."""

    name: str
    version: int | None
    action: str
    """``register``, ``revise``, ``promote``, ``rollback``, ``hold``, ``approve``, ``archive``."""
    alias: Alias | None
    actor: str
    reason: str | None
    details: dict[str, Any]
    """What the action recorded beside its reason (e.g. a promotion's waivers), as stored."""
    at_ms: int
