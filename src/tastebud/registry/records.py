"""What the registry holds, as typed records: a version, its approval, and one entry of the
audit log. Frozen pydantic models: the registry returns them, the CLI prints them and the API
answers with them (``model_dump(mode="json")`` is the JSON view; ``path`` stays internal).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    JsonValue,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from tastebud.errors import InvalidInput

__all__ = [
    "ALIASES",
    "Alias",
    "Approval",
    "ConsentLineage",
    "DataLineage",
    "FeatureLineage",
    "GroupMetrics",
    "LogEntry",
    "ModelKind",
    "ModelLineage",
    "ModelMetrics",
    "ModelVersion",
    "ParentVersion",
    "SliceMetrics",
    "VersionStatus",
    "check_name",
]

Alias = Literal["candidate", "staging", "production"]
"""An alias a version can carry."""

ALIASES: tuple[Alias, ...] = ("candidate", "staging", "production")
"""Aliases a version can carry (any number of versions may exist; each alias names one)."""

ModelKind = Literal["recommender", "predictor"]
"""What a version's artifact holds (and so how it is loaded and checked)."""

VersionStatus = Literal["active", "archived"]
"""``archived``: kept for audits and erasure, never served again and never an alias."""

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def check_name(name: str) -> str:
    """Validate a model name (lower-case letters, digits, ``_`` and ``-``).

    Raises:
        InvalidInput: the name does not follow the rule.
    """
    if not _NAME.match(name):
        raise InvalidInput(
            f"invalid model name {name!r}: use 1-64 lower-case letters, digits, '_' or '-', "
            "starting with a letter"
        )
    return name


GroupMetrics = TypedDict(
    "GroupMetrics",
    {
        "users": int,
        "ndcg@10": float,
        "rows": int,
        "positive_rate": float,
        "roc_auc": float,
    },
    total=False,
)
"""One user group in a model's fairness slices: a recommender's test ``users`` and their mean
``ndcg@10``; a predictor's ``rows``, ``positive_rate`` and out-of-fold ``roc_auc``."""


class SliceMetrics(TypedDict, total=False):
    """One user attribute in a model's fairness slices (``metrics.json``'s ``slices``)."""

    disparity: float | None
    """Best group over worst (recommenders: NDCG@10, ``None`` when a group scores 0;
    predictors: ROC-AUC)."""
    judged: dict[str, object]
    """Recommenders: :meth:`tastebud.monitoring.fairness.Disparity.to_json` of NDCG@10."""
    groups: dict[str, GroupMetrics]


class ModelMetrics(TypedDict, total=False):
    """A version's ``metrics.json``, as the training jobs write it: which keys are present
    depends on the kind (recommenders: ``test_users``, ``ci95``, ``validation``, ``baseline``;
    predictors: ``peers``, ``ece_floor``, ``chosen``, ``calibration_levels``, ``importance``).
    The registry stores any JSON object as given and returns it as stored."""

    protocol: str
    test_users: int
    test: dict[str, float | None]
    """Held-out mean per metric (``ndcg@10``, ``roc_auc``, ``ece``...)."""
    ci95: dict[str, list[float]]
    """95% bootstrap interval ``[low, high]`` of the metrics that have one."""
    validation: dict[str, float | int | None]
    """How the model was tuned (:meth:`tastebud.evaluation.TuningSummary.to_json`)."""
    baseline: dict[str, dict[str, float | None]]
    """Per baseline model (``popularity``), its metrics on the same split."""
    peers: dict[str, dict[str, float]]
    """Per peer library's model, its held-out metrics on the same splits."""
    ece_floor: float
    chosen: str
    calibration_levels: int
    importance: dict[str, float]
    slices: dict[str, SliceMetrics]
    """Per user attribute."""
    inherited_from: int
    """An incremental version: the version whose held-out metrics these are."""


class DataLineage(TypedDict, total=False):
    """What a model was trained on (``lineage.json``'s ``data``)."""

    window_start_ms: int | None
    """The oldest interaction's time (``None``: no interactions)."""
    window_end_ms: int | None
    events: int
    """Events stored when training ran."""
    interactions: int
    """Recommenders: (user, item) pairs trained on."""
    users: int
    items: int
    """Recommenders: items trained on."""
    item_coverage: float | None
    """Recommenders: share of the catalogue with interactions (``None``: empty catalogue)."""
    rows: int
    """Predictors: labelled rows trained on."""
    positives: int


class ConsentLineage(TypedDict):
    """The consent filter applied to the training data (``lineage.json``'s ``consent``)."""

    purpose: str
    excluded_users: int


class FeatureLineage(TypedDict, total=False):
    """The feature snapshot a model was trained with (``lineage.json``'s ``features``; empty
    when there was none)."""

    snapshot_id: int
    as_of_ms: int
    versions: dict[str, int]
    """The version of each feature in the snapshot."""


class ParentVersion(TypedDict):
    """The version an incremental run updated."""

    version: int
    artifact_id: str


class ModelLineage(TypedDict, total=False):
    """A version's ``lineage.json``, as the training jobs write it (docs/registry.md); the
    registry stores any JSON object as given and returns it as stored."""

    job: str
    """``full`` or ``incremental``."""
    seed: int | None
    target: str
    """Predictors: ``churn`` or ``conversion``."""
    data: DataLineage
    consent: ConsentLineage
    features: FeatureLineage
    code_version: str
    params: dict[str, JsonValue]
    """The model's config, as JSON."""
    fingerprint: str
    """Hash of the data and configuration (an unchanged one skips training)."""
    parent: ParentVersion
    update: dict[str, int]
    """An incremental run's counts (changed, new and forgotten users...)."""
    revisions: list[dict[str, JsonValue]]
    """One entry per rewrite of the artifact (revision, time, reason, artifact ids and what
    the rewrite recorded)."""


class _StoredJson:
    """Pydantic marker of a JSON document kept exactly as stored: validated as a JSON object
    (``dict[str, JsonValue]``: keys and values unchanged, unknown keys kept) and serialized as
    is, whatever ``TypedDict`` describes it to the type checker."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: object, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return handler.generate_schema(dict[str, JsonValue])

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "object", "additionalProperties": True}


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class Approval(_Record):
    """Who approved a version, and when (the checklist's last item)."""

    by: str
    """``key:<key id>`` (the API), ``cli:<os user>`` (the CLI) or ``policy:auto-promote``."""
    at_ms: int
    """When, in ms since the epoch."""
    note: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """Recorded with the approval (absent when none was given)."""


class ModelVersion(_Record):
    """One registered version of a model (its current revision)."""

    name: str
    version: int
    revision: int
    """Starts at 1; each rewrite of the artifact (e.g. an erasure) adds one."""
    kind: ModelKind
    algorithm: str
    path: str = Field(exclude=True)
    """The artifact directory, relative to the registry root (internal: never in the JSON)."""
    artifact_id: str
    """First 16 hex digits of the artifact manifest's sha256."""
    status: VersionStatus
    created_ms: int
    aliases: tuple[Alias, ...] = ()
    """In the order of :data:`ALIASES`."""
    metrics: Annotated[ModelMetrics, _StoredJson]
    """The training job's ``metrics.json``: held-out ``test`` metrics, the ``baseline`` on the
    same split, fairness ``slices``; a document whose keys vary by kind and algorithm."""
    lineage: Annotated[ModelLineage, _StoredJson]
    """The training job's ``lineage.json``: data window and counts, consent filter, features,
    code version, parameters, seed, parent and revisions (docs/registry.md)."""
    approval: Approval | None


class LogEntry(_Record):
    """One audited registry action."""

    name: str
    version: int | None
    action: str
    """``register``, ``revise``, ``promote``, ``rollback``, ``hold``, ``approve``, ``archive``."""
    alias: Alias | None
    actor: str
    reason: str | None
    details: Annotated[dict[str, JsonValue], _StoredJson]
    """What the action recorded beside its reason (e.g. a promotion's waivers), as stored."""
    at_ms: int
