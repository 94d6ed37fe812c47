"""What an experiment is: its variants, population, metrics and lifecycle (docs/experiments.md).

An :class:`ExperimentSpec` is what a person writes (``tastebud experiments create FILE.toml`` or
``POST /v1/experiments``); an :class:`Experiment` is the stored record: the spec, its status,
its salt and, once started, the share of its layer it owns. Every value is validated here, so
a bad spec is refused with the field that is wrong before anything is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tastebud.config import ServingConfig

__all__ = [
    "BUCKETS",
    "Experiment",
    "ExperimentSpec",
    "Guardrail",
    "Metric",
    "ModelPin",
    "Population",
    "ServingParams",
    "Status",
    "Surface",
    "Variant",
]

BUCKETS = 10_000
"""Every hash lands in one of this many buckets: traffic, weights and layer shares are counted
in them (a share of 0.1 is 1,000 buckets)."""

_Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
"""A name: lower-case letters, digits, ``_`` and ``-``, at most 64 characters."""


class Status(StrEnum):
    """Where an experiment is in its life: draft → running → stopped → concluded."""

    DRAFT = "draft"
    """Written, not serving: everything may still change."""
    RUNNING = "running"
    """Serving its variants; only ``traffic`` may change (a ramp never moves a user)."""
    STOPPED = "stopped"
    """No longer serving (everyone gets the production default); results stay readable."""
    CONCLUDED = "concluded"
    """Decided: a winner (or none) is recorded, and the winner's model may have been promoted."""


class Surface(StrEnum):
    """Where an experiment applies."""

    RECOMMENDATIONS = "recommendations"
    RANK = "rank"
    SIMILAR = "similar"


class Metric(StrEnum):
    """Outcomes an experiment can be decided on (per user, the unit of randomisation)."""

    CTR = "ctr"
    """Clicks on recommended items over items shown (a ratio: delta method)."""
    CLICKS = "clicks"
    """Clicks on recommended items per exposed user."""
    CONVERSION_RATE = "conversion_rate"
    """Share of exposed users with a ``conversion`` in the window."""
    REVENUE = "revenue"
    """Conversion ``value`` per exposed user."""
    ENGAGEMENT_TIME = "engagement_time"
    """Seconds of ``content_engagement`` per exposed user."""
    RETURN_RATE = "return_rate"
    """Share of exposed users with an event a day or more after their first exposure."""


class Guardrail(StrEnum):
    """Metrics a variant must not harm (each has a bad direction: up)."""

    LATENCY = "latency_ms"
    """Mean time to compute an answer (over answers)."""
    ERRORS = "error_rate"
    """Answers where the variant could not be served (its model missing or failing) over
    answers; those users got the production default."""
    NOT_INTERESTED = "not_interested_rate"
    """``not_interested`` feedback over items shown."""
    DISLIKE = "dislike_rate"
    """``dislike`` feedback over items shown."""
    COLD_START = "cold_start_share"
    """Answers from the cold-start lists over answers."""


class ModelPin(BaseModel):
    """The recommendations model version a variant serves: a version number or an alias
    (resolved by every serving process as the alias moves)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    version: int | None = Field(default=None, ge=1)
    alias: Literal["production", "staging", "candidate"] | None = None

    @model_validator(mode="after")
    def _one(self) -> ModelPin:
        if (self.version is None) == (self.alias is None):
            raise ValueError("give exactly one of version, alias")
        return self

    def label(self) -> str:
        """``v3`` or ``@candidate``."""
        return f"v{self.version}" if self.version is not None else f"@{self.alias}"


class ServingParams(BaseModel):
    """Serving settings a variant changes (``docs/serving.md``); unset ones keep the
    deployment's value."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    session_item_weight: float | None = Field(default=None, ge=0, le=100)
    """Blend weight of the live session's items."""
    session_category_weight: float | None = Field(default=None, ge=0, le=100)
    """Blend weight of the live session's categories."""
    session_decay: float | None = Field(default=None, gt=0, le=1)
    exploration_share: float | None = Field(default=None, ge=0, le=0.5)
    new_item_days: float | None = Field(default=None, gt=0, le=3650)
    cold_start_policy: Literal["segment", "popular"] | None = None
    """Cold-start policy: ``segment`` (the segment's, else the context's list: the default) or
    ``popular`` (the overall list for everyone)."""

    def set_fields(self) -> frozenset[str]:
        """The settings this variant changes."""
        return frozenset(k for k, v in self.model_dump().items() if v is not None)

    def apply(self, config: ServingConfig) -> ServingConfig:
        """``config`` with these settings (each is the ``ServingConfig`` field of its name)."""
        update = {k: v for k, v in self.model_dump().items() if v is not None}
        return config.model_copy(update=update) if update else config


class Variant(BaseModel):
    """One arm: what it serves and its share of the experiment's users."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: _Slug
    weight: float = Field(default=1.0, gt=0, le=1000)
    """Relative share of the experiment's users (weights 1 and 1: half each)."""
    model: ModelPin | None = None
    """The model version served (``None``: the production version)."""
    params: ServingParams = ServingParams()
    """Serving settings changed for this arm."""


class Population(BaseModel):
    """Who may enter (an empty list: anyone). A request outside it gets the production default
    and is not counted."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    segments: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50
    )
    devices: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        default_factory=list, max_length=50
    )
    locales: list[Annotated[str, Field(min_length=1, max_length=35)]] = Field(
        default_factory=list, max_length=50
    )
    visitors: Literal["all", "new", "returning"] = "all"
    """``new``: the production model does not know the user yet; ``returning``: it does."""


class ExperimentSpec(BaseModel):
    """An experiment as written by a person (the TOML file or the POST body)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: _Slug
    hypothesis: str = Field(min_length=1, max_length=2000)
    kind: Literal["ab", "interleaving"] = "ab"
    """``ab``: each user sees one variant; ``interleaving``: each list mixes two variants'
    rankings (team draft) and clicks are credited to the variant that placed the item."""
    surfaces: list[Surface] = Field(default_factory=lambda: [Surface.RECOMMENDATIONS], min_length=1)
    """Where it applies: ``recommendations``, ``rank`` (scored by the variant), ``similar``
    (when the request names its ``user_id``)."""
    layer: _Slug = "default"
    """Experiments in one layer never share a user (each owns a share of the layer)."""
    allocation: float = Field(default=1.0, gt=0, le=1)
    """Share of the layer's users this experiment owns once started."""
    traffic: float = Field(default=1.0, ge=0, le=1)
    """Share of its allocation exposed; raising it while running adds users and moves none."""
    variants: list[Variant] = Field(min_length=2, max_length=10)
    control: _Slug | None = None
    """The variant others are compared with (default: the first)."""
    population: Population = Population()
    primary_metric: Metric = Metric.CTR
    guardrails: list[Guardrail] = Field(default_factory=lambda: list(Guardrail))
    min_duration_days: float = Field(default=7.0, ge=0, le=365)
    min_users_per_variant: int = Field(default=0, ge=0, le=1_000_000_000)
    """Users each variant needs before a decision (``tastebud experiments sample-size``)."""
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    attribution_window_hours: float = Field(default=24.0, gt=0, le=24 * 90)
    """An outcome counts for the exposure when it happens within this long after it."""
    pre_period_days: float = Field(default=14.0, ge=0, le=365)
    """Each user's behaviour this long before their first exposure is CUPED's covariate."""
    salt: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{8,32}$")
    """The assignment hash's key (default: 16 random bytes drawn at creation). Give a
    previous experiment's salt to assign users exactly as it did (a rerun, a holdback);
    two experiments running at once should never share one."""

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not one of the variants {names}")
        if self.kind == "interleaving":
            if len(self.variants) != 2:
                raise ValueError("an interleaving experiment has exactly two variants")
            if self.surfaces != [Surface.RECOMMENDATIONS]:
                raise ValueError("interleaving applies to the recommendations surface only")
        if len(set(self.surfaces)) != len(self.surfaces):
            raise ValueError("surfaces must be unique")
        return self

    @property
    def control_name(self) -> str:
        """The control variant's name."""
        return self.control or self.variants[0].name

    def variant(self, name: str) -> Variant:
        """The variant called ``name`` (``KeyError`` if none)."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def changes(self) -> frozenset[str]:
        """What its variants change (``model`` and serving setting names): two experiments in
        different layers may overlap on users only if they change different things."""
        out: set[str] = set()
        for v in self.variants:
            if v.model is not None or self.kind == "interleaving":
                out.add("model")
            out |= v.params.set_fields()
        return frozenset(out)


@dataclass(frozen=True)
class Experiment:
    """A stored experiment."""

    spec: ExperimentSpec
    status: Status
    salt: str
    """Random, fixed at creation: the assignment hash's key (so two experiments never assign
    the same users alike)."""
    layer_lo: int | None
    """First bucket of its layer it owns (set when started)."""
    layer_hi: int | None
    """One past its last bucket."""
    created_ms: int
    started_ms: int | None
    stopped_ms: int | None
    concluded_ms: int | None
    winner: str | None
    revision: int
    """Bumped by every change (processes compare it to know their copy is current)."""

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.spec.name
