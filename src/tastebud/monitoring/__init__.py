"""Cross-cutting observability: structured logging (and, in later issues, metrics and drift)."""

from __future__ import annotations

from tastebud.monitoring.logging import configure_logging, get_logger, scrub

__all__ = ["configure_logging", "get_logger", "scrub"]
