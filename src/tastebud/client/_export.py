"""The export document (``GET /v1/users/{user_id}/export``, docs/privacy.md) as the client reads
it: plain dicts, typed key by key like the server's :class:`tastebud.rights.UserExport`. Keys a
newer server adds are kept."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, JsonValue, with_config

# pydantic validates these: on Python 3.11 it needs typing_extensions' TypedDict.
from typing_extensions import TypedDict

__all__ = [
    "ExportDocument",
    "ExportedAction",
    "ExportedConsent",
    "ExportedConsentChange",
    "ExportedEvent",
    "ExportedFeatures",
    "ExportedModel",
    "ExportedPredictions",
    "ExportedPredictorRef",
    "ExportedRealtime",
    "ExportedReason",
]

_KEEP = ConfigDict(extra="allow")


@with_config(_KEEP)
class ExportedEvent(TypedDict):
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
    data: dict[str, JsonValue] | None
    context: dict[str, JsonValue] | None


@with_config(_KEEP)
class ExportedConsent(TypedDict):
    """The user's stored decision for one purpose."""

    granted: bool
    updated_ms: int | None


@with_config(_KEEP)
class ExportedConsentChange(TypedDict):
    """One entry of the user's consent history."""

    purpose: str
    granted: bool
    at_ms: int


@with_config(_KEEP)
class ExportedFeatures(TypedDict):
    """The user's feature values: the latest snapshot's and the published ones."""

    snapshot: dict[str, JsonValue] | None
    online: dict[str, JsonValue] | None


@with_config(_KEEP)
class ExportedAction(TypedDict):
    """One recent session action, with the real-time store's short keys."""

    t: str
    """The event type."""
    i: str | None
    """The item."""
    c: str | None
    """The item's category."""
    ts: int
    """Event time, ms since the epoch."""
    s: str | None
    """The session id."""


@with_config(_KEEP)
class ExportedRealtime(TypedDict):
    """The user's real-time state."""

    recent_actions: list[ExportedAction]
    item_counts: dict[str, int]
    category_counts: dict[str, int]
    consumed: list[str]
    feedback: dict[str, str]


@with_config(_KEEP)
class ExportedPredictorRef(TypedDict):
    """The predictor version behind one probability."""

    artifact_id: str
    version: int
    model: str


@with_config(_KEEP)
class ExportedReason(TypedDict):
    """One feature that moved a prediction."""

    feature: str
    direction: Literal["increases", "decreases"]
    contribution: float


@with_config(_KEEP)
class ExportedPredictions(TypedDict):
    """The user's churn and conversion predictions at export time."""

    churn_probability: float | None
    conversion_probability: float | None
    models: dict[str, ExportedPredictorRef]
    reasons: dict[str, list[ExportedReason]]


@with_config(_KEEP)
class ExportedModel(TypedDict):
    """A registered model version whose artifact holds the user."""

    name: str
    version: int
    status: str


@with_config(_KEEP)
class ExportDocument(TypedDict):
    """Everything held about one user."""

    user_id: str
    pseudonym: str
    exported_ms: int
    attributes: dict[str, JsonValue] | None
    """Decrypted; ``None`` when none were ever put."""
    consents: dict[str, ExportedConsent]
    """Per purpose the user decided on."""
    consent_history: list[ExportedConsentChange]
    anonymous_ids_merged: int
    features: ExportedFeatures
    realtime: ExportedRealtime
    predictions: ExportedPredictions | None
    """``None``: no predictor in production, or the user opted out of personalization."""
    models: list[ExportedModel]
    events: list[ExportedEvent]
    """Every event but impressions and feedback, oldest first."""
    impressions: list[ExportedEvent]
    feedback: list[ExportedEvent]
