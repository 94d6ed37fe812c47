"""Experiments over HTTP: create, list, show, start, ramp, stop, conclude and results
(docs/experiments.md). Changes need an ``admin`` key; reading needs ``serve``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import PrincipalDep, ServicesDep, scoped
from tastebud.apikeys import Principal
from tastebud.errors import InvalidInput
from tastebud.experiments import Experiment, ExperimentSpec, Status
from tastebud.experiments.analysis import ExperimentResults, results_of
from tastebud.experiments.repository import conclude
from tastebud.services import Services

__all__ = [
    "AuditEntryOut",
    "ConcludeIn",
    "ExperimentOut",
    "ExperimentsOut",
    "RampIn",
    "ReasonIn",
    "conclude_experiment",
    "create_experiment",
    "experiment_results",
    "get_experiment",
    "list_experiments",
    "ramp_experiment",
    "router",
    "start_experiment",
    "stop_experiment",
    "update_experiment",
]

router = APIRouter(tags=["experiments"])
_Name = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Experiment name")]


class AuditEntryOut(BaseModel):
    """One change of an experiment."""

    action: str
    """``create``, ``update``, ``start``, ``ramp``, ``stop``, ``conclude``."""
    actor: str
    at_ms: int
    details: JsonValue


class ExperimentOut(BaseModel):
    """An experiment, its status and (for one experiment) its audit log."""

    name: str
    status: Status
    spec: ExperimentSpec
    layer_range: list[int] | None
    """The buckets ``[lo, hi)`` of its layer it owns (once started)."""
    created_ms: int
    started_ms: int | None
    stopped_ms: int | None
    concluded_ms: int | None
    winner: str | None
    revision: int
    log: list[AuditEntryOut] | None = None
    """Oldest first; only in ``GET /v1/experiments/{name}``."""
    promoted_version: int | None = None
    """``conclude`` with ``promote``: the model version now in production."""


class ExperimentsOut(BaseModel):
    """Every experiment, newest first."""

    experiments: list[ExperimentOut]


class RampIn(BaseModel):
    """A new traffic share."""

    model_config = ConfigDict(extra="forbid")
    traffic: float = Field(ge=0, le=1, description="Share of the allocation exposed")


class ReasonIn(BaseModel):
    """Why (recorded in the audit log)."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=1000)


class ConcludeIn(BaseModel):
    """The decision, and whether to promote the winner's model version."""

    model_config = ConfigDict(extra="forbid")
    winner: str | None = Field(
        default=None, max_length=64, description="The winning variant (none: no winner)"
    )
    promote: bool = Field(
        default=False,
        description="Promote the winner's model version to production (its governance "
        "checklist applies, as in POST /v1/models/{name}/versions/{version}/promote)",
    )
    reason: str | None = Field(default=None, max_length=1000)
    force: bool = False
    waive: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=16)


def _out(exp: Experiment, services: Services | None = None) -> ExperimentOut:
    log = None
    if services is not None:
        log = [AuditEntryOut.model_validate(e) for e in services.experiments.log(exp.name)]
    rng = None if exp.layer_lo is None or exp.layer_hi is None else [exp.layer_lo, exp.layer_hi]
    return ExperimentOut(
        name=exp.name,
        status=exp.status,
        spec=exp.spec,
        layer_range=rng,
        created_ms=exp.created_ms,
        started_ms=exp.started_ms,
        stopped_ms=exp.stopped_ms,
        concluded_ms=exp.concluded_ms,
        winner=exp.winner,
        revision=exp.revision,
        log=log,
    )


def _actor(principal: Principal) -> str:
    return f"key:{principal.key_id}"


@router.post("/v1/experiments", status_code=201, response_model=ExperimentOut, **scoped("admin"))
async def create_experiment(
    body: Annotated[ExperimentSpec, Body()], services: ServicesDep, principal: PrincipalDep
) -> ExperimentOut:
    """Create a draft experiment (``409`` if the name is taken)."""
    exp = await run_in_threadpool(services.experiments.create, body, actor=_actor(principal))
    return _out(exp)


@router.put("/v1/experiments/{name}", response_model=ExperimentOut, **scoped("admin"))
async def update_experiment(
    name: _Name,
    body: Annotated[ExperimentSpec, Body()],
    services: ServicesDep,
    principal: PrincipalDep,
) -> ExperimentOut:
    """Replace a draft's spec (``409`` once it has started; the name in the body must be the
    path's)."""
    if body.name != name:
        raise InvalidInput(f"the spec's name {body.name!r} is not the experiment's {name!r}")
    exp = await run_in_threadpool(services.experiments.update, body, actor=_actor(principal))
    return _out(exp)


@router.get("/v1/experiments", response_model=ExperimentsOut, **scoped("serve"))
async def list_experiments(
    services: ServicesDep,
    status: Annotated[Status | None, Query(description="Only experiments in this status")] = None,
) -> ExperimentsOut:
    """Every experiment, newest first."""
    found = await run_in_threadpool(services.experiments.all, status)
    return ExperimentsOut(experiments=[_out(e) for e in found])


@router.get("/v1/experiments/{name}", response_model=ExperimentOut, **scoped("serve"))
async def get_experiment(name: _Name, services: ServicesDep) -> ExperimentOut:
    """One experiment with its audit log."""

    def run() -> ExperimentOut:
        return _out(services.experiments.get(name), services)

    return await run_in_threadpool(run)


@router.post("/v1/experiments/{name}/start", response_model=ExperimentOut, **scoped("admin"))
async def start_experiment(
    name: _Name,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[ReasonIn | None, Body()] = None,
) -> ExperimentOut:
    """Start a draft: it takes its share of its layer, and every API process serves it within
    ``experiment_poll_seconds``. ``409`` when its layer has no room or an experiment of
    another layer changes the same thing on the same surface; ``404 model_not_found`` when a
    variant's model version does not exist."""
    reason = body.reason if body else None
    exp = await run_in_threadpool(
        services.experiments.start, name, actor=_actor(principal), reason=reason
    )
    return _out(exp)


@router.post("/v1/experiments/{name}/ramp", response_model=ExperimentOut, **scoped("admin"))
async def ramp_experiment(
    name: _Name, body: Annotated[RampIn, Body()], services: ServicesDep, principal: PrincipalDep
) -> ExperimentOut:
    """Change the share of the experiment's allocation that is exposed; raising it only adds
    users (nobody already assigned changes variant)."""
    exp = await run_in_threadpool(
        services.experiments.ramp, name, body.traffic, actor=_actor(principal)
    )
    return _out(exp)


@router.post("/v1/experiments/{name}/stop", response_model=ExperimentOut, **scoped("admin"))
async def stop_experiment(
    name: _Name,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[ReasonIn | None, Body()] = None,
) -> ExperimentOut:
    """Stop serving it (everyone gets the production default); results stay readable."""
    reason = body.reason if body else None
    exp = await run_in_threadpool(
        services.experiments.stop, name, actor=_actor(principal), reason=reason
    )
    return _out(exp)


@router.post("/v1/experiments/{name}/conclude", response_model=ExperimentOut, **scoped("admin"))
async def conclude_experiment(
    name: _Name,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[ConcludeIn | None, Body()] = None,
) -> ExperimentOut:
    """Record the decision (a running experiment stops first). With ``promote``, the winner's
    model version goes to production through the registry, checklist and audit log
    included."""
    req = body or ConcludeIn()

    def run() -> ExperimentOut:
        return _conclude(services, name, req, _actor(principal))

    return await run_in_threadpool(run)


def _conclude(services: Services, name: str, req: ConcludeIn, actor: str) -> ExperimentOut:
    exp, version = conclude(
        services.experiments,
        services.settings.governance,
        name,
        req.winner,
        actor=actor,
        promote=req.promote,
        reason=req.reason,
        force=req.force,
        waive=tuple(req.waive),
    )
    out = _out(exp, services)
    out.promoted_version = version
    return out


@router.get("/v1/experiments/{name}/results", response_model=ExperimentResults, **scoped("serve"))
async def experiment_results(name: _Name, services: ServicesDep) -> ExperimentResults:
    """Per variant the primary metric and guardrails with intervals, the comparison with
    control (fixed-horizon, always-valid sequential, Bayesian; CUPED where it applies),
    sample ratio mismatch, interleaving's preference test and the decision in plain words.
    Computed from the stored impressions and outcomes at the time of the request."""

    def run() -> ExperimentResults:
        return results_of(services.store, services.experiments.get(name))

    return await run_in_threadpool(run)
