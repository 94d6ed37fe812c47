"""One exception tree for all of Tastebud; the API maps it to HTTP in one place (``api.app``).

The tree::

    TastebudError                 base; ``code`` is the stable machine-readable error code
    ├── ConfigError               settings or secrets are missing or wrong (exit code 2)
    ├── InvalidInput              a request or file is malformed (422)
    │   ├── MalformedJson         the body is not valid JSON (400)
    │   ├── InvalidEvent          one event failed validation (422)
    │   └── PayloadTooLarge       a body or batch exceeds the configured limits (413)
    ├── AuthError                 base for authentication problems
    │   ├── Unauthenticated       missing, malformed, unknown or revoked API key (401)
    │   └── Forbidden             the key's scope does not allow the route (403)
    ├── ConsentRequired           the user has not consented to this processing (403)
    ├── NotFound                  base for missing resources (404)
    │   ├── UnknownUser
    │   ├── UnknownItem
    │   ├── UnknownKey
    │   ├── ModelNotFound         no such registered model or version
    │   └── ExperimentNotFound    no experiment by this name
    ├── Conflict                  the request contradicts stored state (409)
    │   ├── ChecklistFailed       promotion to production without a passing checklist (409)
    │   └── OptedOut              the user opted out of the profiling asked for (409)
    ├── RateLimited               the API key exceeded its rate limit (429, ``Retry-After``)
    ├── ServiceUnavailable        a backing store does not answer (503)
    │   └── ModelNotReady         no production version of a model is being served (503)
    └── ArtifactInvalid           a model artifact is incomplete or fails its checksum (500)

Recoverable data problems are not errors: they are reported with ``warnings.warn(message,
DataWarning)`` (LensKit's ``DataWarning``), the message naming the problem and how many rows
or entities it touched, and the work goes on (``tastebud features build`` warns, for example,
on item events without an item or clicks beyond the impressions shown).

A configuration object refusing a value (``pydantic.ValidationError``) becomes a clear error
with :meth:`TastebudError.from_validation`: the message names each field and what is wrong.

Messages must never contain secrets, API keys, raw user ids or other personal data: they are
returned to clients and written to logs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from pydantic import JsonValue, ValidationError

__all__ = [
    "ArtifactInvalid",
    "AuthError",
    "ChecklistFailed",
    "ConfigError",
    "Conflict",
    "ConsentRequired",
    "DataWarning",
    "ExperimentNotFound",
    "Forbidden",
    "InvalidEvent",
    "InvalidInput",
    "MalformedJson",
    "ModelNotFound",
    "ModelNotReady",
    "NotFound",
    "OptedOut",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "TastebudError",
    "Unauthenticated",
    "UnknownItem",
    "UnknownKey",
    "UnknownUser",
]


class TastebudError(Exception):
    """Base of every error Tastebud raises on purpose.

    Args:
        message: Human-readable explanation, safe to show to clients.
        details: Optional structured details, JSON objects (e.g. one ``{"field", "message"}``
            per invalid field, or a failing checklist item); kept as copies.
    """

    code = "error"

    def __init__(
        self, message: str, *, details: Sequence[Mapping[str, JsonValue]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[dict[str, JsonValue]] = [dict(d) for d in details or ()]

    @classmethod
    def from_validation(cls, exc: ValidationError, *, env_prefix: str | None = None) -> Self:
        """This error for a configuration that failed validation, naming every field.

        Args:
            exc: What pydantic raised.
            env_prefix: For settings read from the environment: each problem also names the
                variable of its top-level field (``TASTEBUD_`` gives ``TASTEBUD_SCHEDULE``).

        Input values are shown only when they are numbers or booleans: a string might be a
        secret.

        >>> from pydantic import BaseModel, Field
        >>> class Knobs(BaseModel):
        ...     factors: int = Field(default=8, ge=1)
        >>> try:
        ...     Knobs(factors=0)
        ... except ValueError as exc:
        ...     print(InvalidInput.from_validation(exc).message)
        invalid Knobs: factors: Input should be greater than or equal to 1 (got 0)
        """
        problems: list[str] = []
        details: list[dict[str, JsonValue]] = []
        for e in exc.errors(include_url=False):
            field = ".".join(str(part) for part in e["loc"]) or "(value)"
            text = f"{field}: {e['msg']}"
            value = e.get("input")
            if isinstance(value, int | float) and e["type"] != "extra_forbidden":
                text += f" (got {value})"
            if env_prefix and e["loc"]:
                text += f" ({env_prefix}{str(e['loc'][0]).upper()})"
            problems.append(text)
            details.append({"field": field, "message": e["msg"], "type": e["type"]})
        return cls(f"invalid {exc.title}: {'; '.join(problems)}", details=details)


class ConfigError(TastebudError):
    """Settings or secrets are missing or invalid."""

    code = "config_error"


class InvalidInput(TastebudError):
    """A request body, parameter or input file is malformed."""

    code = "invalid_request"


class MalformedJson(InvalidInput):
    """The request body is empty or not valid JSON."""

    code = "malformed_json"


class InvalidEvent(InvalidInput):
    """An event failed validation."""

    code = "invalid_event"


class PayloadTooLarge(InvalidInput):
    """A body or batch exceeds the configured limits."""

    code = "payload_too_large"


class AuthError(TastebudError):
    """Base for authentication and authorization failures."""

    code = "auth_error"


class Unauthenticated(AuthError):
    """Missing, malformed, unknown or revoked API key."""

    code = "unauthenticated"


class Forbidden(AuthError):
    """The API key's scope does not allow this operation."""

    code = "forbidden"


class ConsentRequired(TastebudError):
    """The user has not given (or has withdrawn) consent for this processing."""

    code = "consent_required"


class NotFound(TastebudError):
    """A requested resource does not exist."""

    code = "not_found"


class UnknownUser(NotFound):
    """No data is held for this user."""

    code = "unknown_user"


class UnknownItem(NotFound):
    """The item is not in the catalogue."""

    code = "unknown_item"


class UnknownKey(NotFound):
    """No API key has this id."""

    code = "unknown_key"


class ModelNotFound(NotFound):
    """No registered model or version by this name (or no version carries the alias)."""

    code = "model_not_found"


class ExperimentNotFound(NotFound):
    """No experiment by this name."""

    code = "experiment_not_found"


class Conflict(TastebudError):
    """The request contradicts stored state."""

    code = "conflict"


class ChecklistFailed(Conflict):
    """A version's governance checklist does not pass, and promotion was not forced."""

    code = "checklist_failed"


class OptedOut(Conflict):
    """The user opted out of personalization, and what was asked is profiling (predictions)."""

    code = "opted_out"


class RateLimited(TastebudError):
    """The API key sent more requests than its scope's rate limit allows.

    Args:
        message: Human-readable explanation, safe to show to clients.
        retry_after_s: Whole seconds (at least 1) until a request would be allowed; sent as
            the ``Retry-After`` header.
    """

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)


class ServiceUnavailable(TastebudError):
    """A backing store (database, Redis) does not answer."""

    code = "service_unavailable"


class ModelNotReady(ServiceUnavailable):
    """No production version of the model is being served yet."""

    code = "model_not_ready"


class DataWarning(UserWarning):
    """A recoverable problem in input data (a skipped row, a dropped field, a clamped value):
    issued with ``warnings.warn``, the message naming the problem and its count."""


class ArtifactInvalid(TastebudError):
    """A model artifact is missing a file, has an unknown format or fails its sha256 check."""

    code = "artifact_invalid"
