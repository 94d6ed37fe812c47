"""The model registry over HTTP: list, show (with the governance checklist), compare, approve,
promote, rollback and archive."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import PrincipalDep, ServicesDep, scoped
from tastebud.api.schemas import ModelsOut, ModelSummaryOut, VersionOut, VersionSummaryOut
from tastebud.apikeys import Principal
from tastebud.errors import InvalidInput
from tastebud.registry import ALIASES, CHECKS, Comparison, checklist, compare, promote, rollback
from tastebud.services import Services

__all__ = [
    "PromoteIn",
    "ReasonIn",
    "approve_version",
    "archive_version",
    "compare_versions",
    "get_version",
    "list_models",
    "promote_version",
    "rollback_model",
    "router",
]

router = APIRouter(tags=["models"])
NamePath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="Model name")]
VersionPath = Annotated[int, Path(ge=1, le=2_000_000_000, description="Version number")]


class PromoteIn(BaseModel):
    """Point an alias at a version."""

    model_config = ConfigDict(extra="forbid")
    alias: str = Field(default="production", description=f"One of {', '.join(ALIASES)}")
    force: bool = Field(default=False, description="Promote despite a failing checklist")
    waive: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        max_length=len(CHECKS),
        description="Checklist items that could not be checked (status `not_checked`) to "
        "waive; needs a reason, recorded in the audit log",
    )
    reason: str | None = Field(
        default=None, max_length=1000, description="Why (required with force or waive; recorded)"
    )


class ReasonIn(BaseModel):
    """An optional reason, recorded in the audit log."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=1000)


def _actor(principal: Principal) -> str:
    return f"key:{principal.key_id}"


def _version_out(services: Services, name: str, version: int) -> VersionOut:
    reg = services.registry
    mv = reg.get(name, version)
    served = services.models.served().get(name)
    return VersionOut(
        **dict(mv),
        checklist=checklist(reg, mv, services.settings.governance),
        serving=served is not None and served.version == version,
    )


@router.get("/v1/models", response_model=ModelsOut, **scoped("serve"))
async def list_models(services: ServicesDep) -> ModelsOut:
    """Every registered model: its aliases, versions and the version each API process serves."""

    def run() -> ModelsOut:
        served = services.models.served()
        models: dict[str, ModelSummaryOut] = {}
        for mv in services.registry.versions():  # by name, then version
            entry = models.get(mv.name)
            if entry is None:
                serving = served[mv.name].version if mv.name in served else None
                entry = models[mv.name] = ModelSummaryOut(
                    name=mv.name, aliases={}, versions=[], serving=serving
                )
            entry.versions.append(
                VersionSummaryOut(
                    version=mv.version,
                    algorithm=mv.algorithm,
                    status=mv.status,
                    created_ms=mv.created_ms,
                    aliases=list(mv.aliases),
                )
            )
            entry.aliases.update(dict.fromkeys(mv.aliases, mv.version))
        return ModelsOut(models=list(models.values()))

    return await run_in_threadpool(run)


@router.get("/v1/models/{name}/versions/{version}", response_model=VersionOut, **scoped("serve"))
async def get_version(name: NamePath, version: VersionPath, services: ServicesDep) -> VersionOut:
    """One version: metrics, lineage, approval, aliases and its governance checklist."""
    return await run_in_threadpool(_version_out, services, name, version)


@router.get("/v1/models/{name}/compare", response_model=Comparison, **scoped("serve"))
async def compare_versions(
    name: NamePath,
    services: ServicesDep,
    versions: Annotated[
        str | None, Query(pattern=r"^\d+(,\d+)*$", description="Comma-separated versions")
    ] = None,
) -> Comparison:
    """Held-out metrics of several versions side by side (default: every active version)."""
    chosen = [int(v) for v in versions.split(",")] if versions else None
    return await run_in_threadpool(compare, services.registry, name, chosen)


@router.post(
    "/v1/models/{name}/versions/{version}/approve", response_model=VersionOut, **scoped("admin")
)
async def approve_version(
    name: NamePath,
    version: VersionPath,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[ReasonIn | None, Body()] = None,
) -> VersionOut:
    """Record this admin key's approval of a version (the checklist's last item)."""
    note = body.reason if body else None
    await run_in_threadpool(
        services.registry.approve, name, version, actor=_actor(principal), note=note
    )
    return await run_in_threadpool(_version_out, services, name, version)


@router.post(
    "/v1/models/{name}/versions/{version}/promote", response_model=VersionOut, **scoped("admin")
)
async def promote_version(
    name: NamePath,
    version: VersionPath,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[PromoteIn | None, Body()] = None,
) -> VersionOut:
    """Point an alias (default ``production``) at a version. Production needs a passing
    checklist (``409 checklist_failed`` lists what fails or was not checked): items that
    could not be checked may be waived (``waive``) with a ``reason``; anything else needs
    ``force`` with a ``reason``.
    Every API process serves the new version within ``model_poll_seconds``."""
    req = body or PromoteIn()
    if req.alias not in ALIASES:
        raise InvalidInput(f"unknown alias {req.alias!r}; use one of {', '.join(ALIASES)}")

    def run() -> VersionOut:
        promote(
            services.registry,
            services.settings.governance,
            name,
            version,
            actor=_actor(principal),
            alias=req.alias,
            force=req.force,
            reason=req.reason,
            waive=tuple(req.waive),
        )
        services.models.refresh()
        return _version_out(services, name, version)

    return await run_in_threadpool(run)


@router.post("/v1/models/{name}/rollback", response_model=VersionOut, **scoped("admin"))
async def rollback_model(
    name: NamePath,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[ReasonIn | None, Body()] = None,
) -> VersionOut:
    """Return ``production`` to the previous production version; answers that version."""

    def run() -> VersionOut:
        mv = rollback(
            services.registry, name, actor=_actor(principal), reason=body.reason if body else None
        )
        services.models.refresh()
        return _version_out(services, name, mv.version)

    return await run_in_threadpool(run)


@router.post(
    "/v1/models/{name}/versions/{version}/archive", response_model=VersionOut, **scoped("admin")
)
async def archive_version(
    name: NamePath,
    version: VersionPath,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[ReasonIn | None, Body()] = None,
) -> VersionOut:
    """Archive a version (not in production): it can no longer carry an alias."""
    await run_in_threadpool(
        services.registry.archive,
        name,
        version,
        actor=_actor(principal),
        reason=body.reason if body else None,
    )
    return await run_in_threadpool(_version_out, services, name, version)
