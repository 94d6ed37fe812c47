"""The worker role: the seed's training schedule under database leases (retention,
incremental, full, the monthly feature review, the quarterly bake-off), and what its jobs work
with."""

from __future__ import annotations

from typing import Any

from tastebud.services import Services
from tastebud.training.context import JobContext

__all__ = [
    "job_context",
]


def job_context(services: Services, actor: str, log: Any = None) -> JobContext:
    """What a training job needs, from a process's services.

    Args:
        services: The process's services (:func:`tastebud.services.build_services`).
        actor: Who runs the job (recorded in the registry's log).
        log: Where progress lines go (a callable taking a string); default the structured log.
    """
    ctx = JobContext(
        services.store,
        services.registry,
        services.settings.governance,
        services.settings.consent_mode,
        actor,
    )
    if log is not None:
        ctx.log = log
    return ctx
