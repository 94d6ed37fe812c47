"""What both clients share, without I/O: the error, request building, response parsing and the
retry decisions. :class:`~tastebud.client.Client` and :class:`~tastebud.client.AsyncClient`
only add the transport call and the sleep between attempts."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypedDict, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from tastebud.client._types import EventBatchAnswer, EventOutcome

__all__ = [
    "Attempts",
    "Call",
    "ClientBase",
    "ClientError",
    "FINAL_CODES",
    "MAX_BACKOFF_S",
    "SendSummary",
    "batches",
    "encode_json",
    "error_from",
    "parse_json",
    "parse_model",
    "parse_retry_after",
    "parse_typed",
    "segment",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")

FINAL_CODES = frozenset({"model_not_ready", "artifact_invalid"})
"""Server error codes that waiting cannot change, raised at once although their status is 5xx:
no production model yet (an operator must promote one), a model file failing its checksum."""

MAX_BACKOFF_S = 10.0
"""The doubling backoff stops growing here (a longer ``Retry-After`` is still honoured)."""


class ClientError(Exception):
    """The server refused a request (a 4xx other than 429, or a 5xx no retry can change), its
    answer could not be read, or retries were exhausted.

    Attributes:
        status: HTTP status of the last answer, or ``None`` when the server never answered.
        code: The server's error code (``invalid_request``, ``forbidden``, ``unknown_item``...;
            see docs/api.md), or ``None`` when the answer had no error body.
        body: The decoded error body (``{"error": {"code", "message", "details"}}``), if any.
    """

    def __init__(
        self, message: str, status: int | None = None, body: Any = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.code = code if code is not None else _code_of(body)


def _code_of(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def error_from(response: httpx.Response) -> ClientError:
    """The :class:`ClientError` for an error answer: the server's message, status and code."""
    try:
        body = response.json()
        message = str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        body, message = None, response.text[:200] or response.reason_phrase
    code = _code_of(body)
    where = f"HTTP {response.status_code}" + (f" {code}" if code else "")
    return ClientError(f"{message} ({where})", response.status_code, body, code)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), if valid."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class Attempts:
    """The retry decisions of one call: report each attempt's outcome, get the delay before the
    next one. Network errors, 5xx and 429 answers are retried (waiting at least the answer's
    ``Retry-After``) with a backoff that doubles up to :data:`MAX_BACKOFF_S`; other answers
    of 400 and above raise at once, as do the :data:`FINAL_CODES`.

    Args:
        max_retries: Attempts allowed after the first.
        backoff: The first delay in seconds.
    """

    def __init__(self, max_retries: int, backoff: float) -> None:
        self._max_retries = max_retries
        self._delay = backoff
        self._made = 0
        self._last: ClientError | None = None
        self._what = "no attempt made"

    def answered(self, response: httpx.Response) -> float | None:
        """``None`` when ``response`` is the answer to parse, else the seconds to wait before
        the next attempt.

        Raises:
            ClientError: the answer is a final error, or it was the last attempt.
        """
        self._made += 1
        if 200 <= response.status_code < 300:
            return None
        error = error_from(response)
        status = response.status_code
        if (status != 429 and status < 500) or error.code in FINAL_CODES:
            raise error
        self._last, self._what = error, str(error)
        wait = parse_retry_after(response.headers.get("Retry-After"))
        if wait is not None:
            self._delay = max(self._delay, wait)
        return self._next()

    def failed(self, exc: httpx.TransportError) -> float:
        """The seconds to wait after a network error (refused, reset, timed out...).

        Raises:
            ClientError: it was the last attempt.
        """
        self._made += 1
        self._last, self._what = None, type(exc).__name__
        return self._next()

    def _next(self) -> float:
        if self._made > self._max_retries:
            last = self._last
            raise ClientError(
                f"gave up after {self._made} attempts ({self._what})",
                None if last is None else last.status,
                None if last is None else last.body,
                None if last is None else last.code,
            )
        delay = self._delay
        self._delay = min(self._delay * 2, MAX_BACKOFF_S)
        return delay


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(value: Any) -> bytes:
    """``value`` as JSON (datetimes and dates as ISO 8601, which the API reads)."""
    return json.dumps(
        value, default=_json_default, ensure_ascii=False, separators=(",", ":")
    ).encode()


def segment(value: str, name: str) -> str:
    """``value`` percent-encoded as one path segment (``/``, ``?``, ``#``, ``%`` included).

    Raises:
        ValueError: ``value`` is not a non-empty string.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return quote(value, safe="")


def parse_json(response: httpx.Response) -> Any:
    """The decoded JSON body of a success answer.

    Raises:
        ClientError: the body is not JSON.
    """
    try:
        return response.json()
    except ValueError as exc:
        raise ClientError(
            f"the server answered HTTP {response.status_code} without a JSON body",
            response.status_code,
        ) from exc


def _mismatch(name: str, exc: ValidationError, status: int) -> ClientError:
    return ClientError(
        f"the server's answer does not match {name} "
        f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']}); is the "
        "client older than the server?",
        status,
    )


def parse_model(model: type[M]) -> Callable[[httpx.Response], M]:
    """A parser that reads a success answer as ``model``."""

    def parse(response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise _mismatch(model.__name__, exc, response.status_code) from exc

    return parse


def parse_typed(adapter: TypeAdapter[T], name: str) -> Callable[[httpx.Response], T]:
    """A parser that reads a success answer as a TypedDict (``adapter`` validates it, ``name``
    is its name in errors): the answer stays a plain dict, its keys checked and typed.

    Raises (from the parser):
        ClientError: the body is not JSON, or not shaped as ``name``.
    """

    def parse(response: httpx.Response) -> T:
        body = parse_json(response)
        if not isinstance(body, dict):
            raise ClientError("the server's answer is not a JSON object", response.status_code)
        try:
            return adapter.validate_python(body)
        except ValidationError as exc:
            raise _mismatch(name, exc, response.status_code) from exc

    return parse


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: how to build its request and how to read its answer."""

    method: str
    path: str
    """Path below the base URL, segments already encoded."""
    parse: Callable[[httpx.Response], T]
    params: tuple[tuple[str, str], ...] = ()
    body: Any = None
    """JSON-ready body, or ``None`` for none."""

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The request for one attempt."""
        if self.body is None:
            return http.build_request(self.method, self.path, params=self.params or None)
        return http.build_request(
            self.method,
            self.path,
            params=self.params or None,
            content=encode_json(self.body),
            headers={"Content-Type": "application/json"},
        )


@dataclass
class SendSummary:
    """Totals over every batch sent by one ``send`` call."""

    accepted: int = 0
    duplicates: int = 0
    """Events the server already held: resent, retried, or identical to a stored one."""
    rejected: int = 0
    rejections: list[EventOutcome] = field(default_factory=list)
    """The rejected events' results (``event_id``, ``reason``), in order."""

    def add(self, body: EventBatchAnswer) -> None:
        """Count one batch's answer (``POST /v1/events/batch``)."""
        self.accepted += int(body["accepted"])
        self.duplicates += int(body["duplicates"])
        self.rejected += int(body["rejected"])
        self.rejections.extend(r for r in body["results"] if r["status"] == "rejected")


def batches(items: Iterable[Mapping[str, V]], size: int) -> Iterator[list[dict[str, V]]]:
    """``items`` as lists of at most ``size`` shallow copies (the caller's dicts are never
    modified)."""
    batch: list[dict[str, V]] = []
    for item in items:
        batch.append(dict(item))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _HttpOptions(TypedDict):
    """The ``httpx`` client's settings."""

    base_url: str
    headers: dict[str, str]
    timeout: float


class ClientBase:
    """Settings shared by both clients.

    Args:
        url: Base URL, e.g. ``http://127.0.0.1:8000`` (a path prefix is kept).
        key: An API key; its scope decides which methods may be called.
        batch_size: Events per request for ``send`` (the server takes at most 1,000).
        max_retries: Attempts after the first for network errors, 5xx and 429 answers.
        backoff: First retry delay in seconds; doubles each attempt (capped at 10 s), and is
            never shorter than the server's ``Retry-After``.
        timeout: Seconds per request.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        batch_size: int,
        max_retries: int,
        backoff: float,
        timeout: float,
    ) -> None:
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size must be between 1 and 1000")
        if max_retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError("max_retries and backoff must be >= 0 and timeout > 0")
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff = backoff
        self._options: _HttpOptions = {
            "base_url": url.rstrip("/"),
            "headers": {"Authorization": f"Bearer {key}", "Accept": "application/json"},
            "timeout": timeout,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._options['base_url']!r}, key=<hidden>)"

    def _attempts(self) -> Attempts:
        return Attempts(self.max_retries, self.backoff)
