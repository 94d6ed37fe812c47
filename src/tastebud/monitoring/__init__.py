"""Cross-cutting observability: structured logging and Prometheus metrics (later: drift)."""

from __future__ import annotations

from tastebud.monitoring.logging import configure_logging, get_logger, scrub
from tastebud.monitoring.metrics import (
    CACHE_TOTAL,
    FALLBACK_TOTAL,
    FRESHNESS_SECONDS,
    IMPRESSIONS_TOTAL,
    INGESTED_TOTAL,
    MODEL_LOADED,
    MODEL_VERSION,
    REQUEST_SECONDS,
    multiprocess_dir,
    observe_request,
    prepare_multiprocess,
    record_model_served,
    render,
)

__all__ = [
    "CACHE_TOTAL",
    "FALLBACK_TOTAL",
    "FRESHNESS_SECONDS",
    "IMPRESSIONS_TOTAL",
    "INGESTED_TOTAL",
    "MODEL_LOADED",
    "MODEL_VERSION",
    "REQUEST_SECONDS",
    "configure_logging",
    "get_logger",
    "multiprocess_dir",
    "observe_request",
    "prepare_multiprocess",
    "record_model_served",
    "render",
    "scrub",
]
