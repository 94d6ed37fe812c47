"""Structured key-value logging through structlog on top of the standard library.

Every module does ``_log = get_logger(__name__)`` and logs events with key-values::

    _log.info("batch ingested", accepted=498, rejected=2)

Two safety nets keep secrets and personal data out of logs, whatever a caller passes:

* keys whose name suggests an identity or a secret (``user_id``, ``key``, ``authorization``,
  ``email``...) are replaced by ``"[scrubbed]"``;
* every string value is scanned for API keys and bearer tokens, which are masked.

The first line of defence is still not to log such values: log pseudonyms and counts.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger", "scrub"]

_SCRUB_KEYS = frozenset(
    {
        "user_id",
        "anonymous_id",
        "userid",
        "anonymousid",
        "key",
        "api_key",
        "secret",
        "password",
        "token",
        "authorization",
        "email",
        "phone",
        "pseudonym_key",
        "fernet_keys",
    }
)
# API keys look like tb_<scope>_<id>_<secret>; bearer headers carry anything.
_SECRET_PATTERNS = re.compile(
    r"tb_(?:ingest|serve|admin)_[0-9a-f]+_[A-Za-z0-9_\-]+|(?i:bearer)\s+\S+"
)


def scrub(text: str) -> str:
    """Mask API keys and bearer tokens inside ``text``.

    >>> scrub("auth Bearer abc123 ok")
    'auth [scrubbed] ok'
    """
    return _SECRET_PATTERNS.sub("[scrubbed]", text)


def _scrub_processor(
    logger: Any, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    for name in list(event_dict):
        value = event_dict[name]
        if name.lower() in _SCRUB_KEYS:
            event_dict[name] = "[scrubbed]"
        elif isinstance(value, str):
            event_dict[name] = scrub(value)
    return event_dict


class _ScrubFilter(logging.Filter):
    """Masks secrets in records that bypass structlog (uvicorn, SQLAlchemy, libraries)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            message = record.getMessage()
            masked = scrub(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


_configured = False


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Route structlog through the standard library with a scrubbing key-value renderer.

    Safe to call more than once; the last call's level and format win.
    """
    global _configured
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            # Plain tracebacks: the rich formatter prints every frame's local variables, which
            # hold raw events, ids and request bodies (personal data must never reach a log).
            colors=False,
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    structlog.configure(
        processors=[
            # First: drop disabled levels before any other work (the ingest path logs per batch).
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _scrub_processor,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_log_level],
        )
    )
    handler.addFilter(_ScrubFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_tastebud", False)]:
        root.removeHandler(old)
    handler._tastebud = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Uvicorn's access log prints raw URL paths, which carry user ids: Tastebud logs requests
    # itself with the route template instead (api.middleware).
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request URL at INFO (user ids again); alembic is chatty on every start.
    for name in ("httpx", "httpcore", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _configured = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A key-value logger for module ``name``."""
    if not _configured:
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                structlog.stdlib.add_log_level,
                _scrub_processor,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False,
        )
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
