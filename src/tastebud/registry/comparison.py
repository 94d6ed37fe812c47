"""Versions side by side: the held-out metrics of several versions of one model, for
``tastebud models compare`` and ``GET /v1/models/{name}/compare``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tastebud.errors import ModelNotFound
from tastebud.registry._registry import Registry
from tastebud.registry.records import Alias

__all__ = ["ComparedVersion", "Comparison", "compare"]


class ComparedVersion(BaseModel):
    """One compared version: where it comes from."""

    model_config = ConfigDict(frozen=True)
    version: int
    algorithm: str
    aliases: tuple[Alias, ...]
    job: str | None
    """The training job that made it (``full``, ``incremental``), from its lineage."""
    created_ms: int
    inherited_from: int | None
    """For an incremental version: the version whose held-out metrics it carries."""


class Comparison(BaseModel):
    """Held-out metrics of several versions of one model."""

    model_config = ConfigDict(frozen=True)
    name: str
    versions: tuple[ComparedVersion, ...]
    """In the order asked for (default: every active version, oldest first)."""
    metrics: dict[str, dict[str, int | float | None]]
    """``{metric: {version: value}}``: every numeric held-out (``test``) metric of any of the
    versions; a version without the metric has no entry (versions are JSON object keys, so
    strings)."""


def compare(registry: Registry, name: str, versions: list[int] | None = None) -> Comparison:
    """Held-out metrics of ``versions`` of ``name`` side by side (default: every active one).

    Raises:
        ModelNotFound: a version does not exist, or ``name`` has no active version.
    """
    chosen = (
        [registry.get(name, v) for v in versions]
        if versions
        else [v for v in registry.versions(name) if v.status == "active"]
    )
    if not chosen:
        raise ModelNotFound(f"no versions of model {name!r} to compare")
    table: dict[str, dict[str, int | float | None]] = {}
    for mv in chosen:
        for metric, value in (mv.metrics.get("test") or {}).items():
            if isinstance(value, int | float) or value is None:
                table.setdefault(metric, {})[str(mv.version)] = value
    return Comparison(
        name=name,
        versions=tuple(
            ComparedVersion(
                version=mv.version,
                algorithm=mv.algorithm,
                aliases=mv.aliases,
                job=mv.lineage.get("job"),
                created_ms=mv.created_ms,
                inherited_from=mv.metrics.get("inherited_from"),
            )
            for mv in chosen
        ),
        metrics=table,
    )
