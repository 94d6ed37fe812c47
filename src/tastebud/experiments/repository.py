"""Stored experiments: create, start, ramp, stop, conclude, each change in the audit log.

The ``experiments`` tables are owned here (docs/architecture.md). A change is one transaction
that checks the status it expects (compare-and-set), so two processes racing to start or stop
an experiment cannot both win; starts are serialised (a PostgreSQL advisory lock; SQLite
serialises writers) so that two experiments never get overlapping buckets of a layer, nor
change the same thing from two layers at once.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, cast

from pydantic import JsonValue
from sqlalchemy import Connection, Row, func, select, text, update
from sqlalchemy.exc import IntegrityError

from tastebud.config import GovernancePolicy
from tastebud.errors import Conflict, ExperimentNotFound, InvalidInput, ModelNotFound
from tastebud.experiments.definitions import BUCKETS, Experiment, ExperimentSpec, Status
from tastebud.registry import Registry, checklist
from tastebud.registry import promote as promote_version
from tastebud.store import Store
from tastebud.store import tables as t

__all__ = [
    "AuditEntry",
    "Experiments",
    "MODEL_NAME",
    "conclude",
    "free_range",
]

MODEL_NAME = "recommendations"
"""The model whose versions experiments' variants pin (the one serving answers with)."""

AuditEntry = dict[str, JsonValue]
"""One audit log entry as JSON: ``action``, ``actor``, ``at_ms``, ``details``."""


def free_range(taken: list[tuple[int, int]], size: int) -> tuple[int, int] | None:
    """The first gap of ``size`` buckets in ``[0, BUCKETS)`` not covered by ``taken``
    (half-open ranges), or ``None``."""
    start = 0
    for lo, hi in sorted(taken):
        if lo - start >= size:
            return start, start + size
        start = max(start, hi)
    return (start, start + size) if BUCKETS - start >= size else None


class Experiments:
    """The experiments of one database.

    Args:
        store: The database.
        registry: Model versions (a variant's pin must exist before it is served; concluding
            may promote the winner).
        now_ms: The clock (tests pass their own).
    """

    def __init__(
        self, store: Store, registry: Registry, now_ms: Callable[[], int] | None = None
    ) -> None:
        self.store = store
        self.registry = registry
        self._now = now_ms or _now_ms

    # -- reading ------------------------------------------------------------------------------
    def get(self, name: str) -> Experiment:
        """One experiment.

        Raises:
            ExperimentNotFound: no experiment by that name.
        """
        with self.store.engine.connect() as conn:
            row = conn.execute(select(t.experiments).where(t.experiments.c.name == name)).first()
        if row is None:
            raise ExperimentNotFound(f"no experiment named {name!r}")
        return _experiment(row)

    def all(self, status: Status | None = None) -> list[Experiment]:
        """Every experiment (newest first), or those with ``status``."""
        q = select(t.experiments).order_by(t.experiments.c.created_ms.desc())
        if status is not None:
            q = q.where(t.experiments.c.status == status.value)
        with self.store.engine.connect() as conn:
            return [_experiment(r) for r in conn.execute(q)]

    def running(self) -> list[Experiment]:
        """The running experiments (what serving processes poll)."""
        return self.all(Status.RUNNING)

    def state(self) -> dict[str, int]:
        """``{name: revision}`` of the running experiments: one small query, polled by every
        serving process to know whether its copy is current."""
        e = t.experiments
        q = select(e.c.name, e.c.revision).where(e.c.status == Status.RUNNING.value)
        with self.store.engine.connect() as conn:
            return {r.name: int(r.revision) for r in conn.execute(q)}

    def log(self, name: str) -> list[AuditEntry]:
        """The audit log of one experiment, oldest first."""
        self.get(name)
        q = (
            select(t.experiment_log)
            .where(t.experiment_log.c.name == name)
            .order_by(t.experiment_log.c.id)
        )
        with self.store.engine.connect() as conn:
            return [
                {
                    "action": r.action,
                    "actor": r.actor,
                    "at_ms": int(r.at_ms),
                    "details": cast(JsonValue, r.details),
                }
                for r in conn.execute(q)
            ]

    # -- changes ------------------------------------------------------------------------------
    def create(self, spec: ExperimentSpec, *, actor: str) -> Experiment:
        """Store a new draft.

        Raises:
            Conflict: an experiment with this name exists.
        """
        now = self._now()
        taken = Conflict(f"an experiment named {spec.name!r} exists already")
        try:
            self._insert(spec, actor, now, taken)
        except IntegrityError:  # created by another request meanwhile
            raise taken from None
        return self.get(spec.name)

    def _insert(self, spec: ExperimentSpec, actor: str, now: int, taken: Conflict) -> None:
        with self.store.engine.begin() as conn:
            exists = conn.execute(
                select(t.experiments.c.name).where(t.experiments.c.name == spec.name)
            ).first()
            if exists is not None:
                raise taken
            conn.execute(
                t.experiments.insert().values(
                    name=spec.name,
                    spec=spec.model_dump(mode="json"),
                    status=Status.DRAFT.value,
                    salt=spec.salt or secrets.token_hex(16),
                    layer=spec.layer,
                    created_ms=now,
                    revision=1,
                )
            )
            _audit(conn, spec.name, "create", actor, {"spec": spec.model_dump(mode="json")}, now)

    def update(self, spec: ExperimentSpec, *, actor: str) -> Experiment:
        """Replace a draft's spec (same name).

        Raises:
            Conflict: the experiment is not a draft any more.
        """
        now = self._now()
        with self.store.engine.begin() as conn:
            done = conn.execute(
                update(t.experiments)
                .where(
                    t.experiments.c.name == spec.name,
                    t.experiments.c.status == Status.DRAFT.value,
                )
                .values(
                    spec=spec.model_dump(mode="json"),
                    layer=spec.layer,
                    revision=t.experiments.c.revision + 1,
                    **({"salt": spec.salt} if spec.salt else {}),
                )
            ).rowcount
            if not done:
                current = self.get(spec.name)  # raises ExperimentNotFound
                raise Conflict(
                    f"experiment {spec.name!r} is {current.status.value}: only a draft can be "
                    "edited (a running one may change its traffic)"
                )
            _audit(conn, spec.name, "update", actor, {"spec": spec.model_dump(mode="json")}, now)
        return self.get(spec.name)

    def start(self, name: str, *, actor: str, reason: str | None = None) -> Experiment:
        """Start a draft: it takes its share of its layer and serves from the next poll.

        Raises:
            Conflict: not a draft; its layer has no room; a running experiment in another
                layer changes the same thing on the same surface.
            ModelNotFound: a variant's model version does not exist.
        """
        exp = self.get(name)
        if exp.status is not Status.DRAFT:
            raise Conflict(f"experiment {name!r} is {exp.status.value}: only a draft starts")
        self._check_models(exp.spec)
        now = self._now()
        with self.store.engine.begin() as conn:
            _lock_starts(conn)
            running = [
                _experiment(r)
                for r in conn.execute(
                    select(t.experiments).where(t.experiments.c.status == Status.RUNNING.value)
                )
            ]
            _check_overlap(exp.spec, running)
            taken = [
                (r.layer_lo, r.layer_hi)
                for r in running
                if r.spec.layer == exp.spec.layer
                and r.layer_lo is not None
                and r.layer_hi is not None
            ]
            size = max(1, round(exp.spec.allocation * BUCKETS))
            slot = free_range(taken, size)
            if slot is None:
                used = sum(hi - lo for lo, hi in taken)
                raise Conflict(
                    f"layer {exp.spec.layer!r} has {BUCKETS - used} of {BUCKETS} buckets free "
                    f"but not {size} in a row: lower the allocation, stop an experiment of "
                    "the layer, or use another layer"
                )
            done = conn.execute(
                update(t.experiments)
                .where(t.experiments.c.name == name, t.experiments.c.status == Status.DRAFT.value)
                .values(
                    status=Status.RUNNING.value,
                    layer_lo=slot[0],
                    layer_hi=slot[1],
                    started_ms=now,
                    revision=t.experiments.c.revision + 1,
                )
            ).rowcount
            if not done:
                raise Conflict(f"experiment {name!r} is {exp.status.value}: only a draft starts")
            details: dict[str, JsonValue] = {"layer_lo": slot[0], "layer_hi": slot[1]}
            if reason:
                details["reason"] = reason
            _audit(conn, name, "start", actor, details, now)
        return self.get(name)

    def ramp(self, name: str, traffic: float, *, actor: str) -> Experiment:
        """Change the share of the allocation exposed. Raising it adds users; nobody already
        assigned moves (docs/experiments.md, *Assignment*).

        Raises:
            InvalidInput: ``traffic`` outside [0, 1].
            Conflict: the experiment is not running or a draft.
        """
        if not 0 <= traffic <= 1:
            raise InvalidInput("traffic must be within [0, 1]")
        exp = self.get(name)
        if exp.status not in (Status.DRAFT, Status.RUNNING):
            raise Conflict(f"experiment {name!r} is {exp.status.value}: it cannot ramp")
        spec = exp.spec.model_copy(update={"traffic": traffic})
        now = self._now()
        with self.store.engine.begin() as conn:
            done = conn.execute(
                update(t.experiments)
                .where(t.experiments.c.name == name, t.experiments.c.status == exp.status.value)
                .values(spec=spec.model_dump(mode="json"), revision=t.experiments.c.revision + 1)
            ).rowcount
            if not done:
                raise Conflict(f"experiment {name!r} changed meanwhile; try again")
            details: dict[str, JsonValue] = {"from": exp.spec.traffic, "to": traffic}
            _audit(conn, name, "ramp", actor, details, now)
        return self.get(name)

    def stop(self, name: str, *, actor: str, reason: str | None = None) -> Experiment:
        """Stop serving a running experiment (its users get the production default).

        Raises:
            Conflict: the experiment is not running.
        """
        exp = self.get(name)
        now = self._now()
        with self.store.engine.begin() as conn:
            done = conn.execute(
                update(t.experiments)
                .where(t.experiments.c.name == name, t.experiments.c.status == Status.RUNNING.value)
                .values(
                    status=Status.STOPPED.value,
                    stopped_ms=now,
                    revision=t.experiments.c.revision + 1,
                )
            ).rowcount
            if not done:
                raise Conflict(
                    f"experiment {name!r} is {exp.status.value}: only a running one stops"
                )
            _audit(conn, name, "stop", actor, {"reason": reason}, now)
        return self.get(name)

    def conclude(
        self, name: str, winner: str | None, *, actor: str, reason: str | None = None
    ) -> Experiment:
        """Record the decision (a winning variant or none); a running experiment stops first.

        Raises:
            InvalidInput: ``winner`` is not a variant.
            Conflict: the experiment is a draft or already concluded.
        """
        exp = self.get(name)
        if winner is not None:
            names = [v.name for v in exp.spec.variants]
            if winner not in names:
                raise InvalidInput(f"winner {winner!r} is not one of the variants {names}")
        if exp.status not in (Status.RUNNING, Status.STOPPED):
            raise Conflict(
                f"experiment {name!r} is {exp.status.value}: only a running or stopped one "
                "can be concluded"
            )
        now = self._now()
        with self.store.engine.begin() as conn:
            done = conn.execute(
                update(t.experiments)
                .where(
                    t.experiments.c.name == name,
                    t.experiments.c.status == exp.status.value,
                )
                .values(
                    status=Status.CONCLUDED.value,
                    stopped_ms=func.coalesce(t.experiments.c.stopped_ms, now),
                    concluded_ms=now,
                    winner=winner,
                    revision=t.experiments.c.revision + 1,
                )
            ).rowcount
            if not done:
                raise Conflict(f"experiment {name!r} changed meanwhile; try again")
            _audit(conn, name, "conclude", actor, {"winner": winner, "reason": reason}, now)
        return self.get(name)

    def record_results(self, name: str, results: dict[str, JsonValue]) -> None:
        """Keep one analysis (aggregates only, no personal data) for the history of results."""
        with self.store.engine.begin() as conn:
            conn.execute(
                t.experiment_results.insert().values(name=name, at_ms=self._now(), results=results)
            )

    def results_history(self, name: str, limit: int = 1000) -> list[dict[str, JsonValue]]:
        """The stored analyses of one experiment, oldest first (at most ``limit``, newest)."""
        r = t.experiment_results
        q = select(r.c.at_ms, r.c.results).where(r.c.name == name).order_by(r.c.at_ms.desc())
        with self.store.engine.connect() as conn:
            rows = conn.execute(q.limit(limit)).all()
        return [{"at_ms": int(row.at_ms), "results": row.results} for row in reversed(rows)]

    def _check_models(self, spec: ExperimentSpec) -> None:
        for v in spec.variants:
            pin = v.model
            if pin is None:
                continue
            if pin.version is not None:
                self.registry.get(MODEL_NAME, pin.version)  # raises ModelNotFound
            elif self.registry.resolve(MODEL_NAME, pin.alias or "") is None:
                raise ModelNotFound(
                    f"variant {v.name!r}: no recommendations version has the alias {pin.alias!r}"
                )


def conclude(
    experiments: Experiments,
    policy: GovernancePolicy,
    name: str,
    winner: str | None,
    *,
    actor: str,
    promote: bool = False,
    reason: str | None = None,
    force: bool = False,
    waive: tuple[str, ...] = (),
) -> tuple[Experiment, int | None]:
    """Conclude ``name`` and, with ``promote``, put its winner's model version in production
    through the registry (its governance checklist, waivers and audit log as in
    ``tastebud models promote``; checked before anything changes).

    Returns:
        The concluded experiment and the promoted version (``None``: nothing promoted).

    Raises:
        InvalidInput: ``promote`` without a winner, or a winner serving the production model.
        ChecklistFailed: the winner's version does not pass its checklist.
    """
    if not promote:
        return experiments.conclude(name, winner, actor=actor, reason=reason), None
    if winner is None:
        raise InvalidInput("promote needs a winner")
    exp = experiments.get(name)
    if exp.status not in (Status.RUNNING, Status.STOPPED):
        raise Conflict(
            f"experiment {name!r} is {exp.status.value}: only a running or stopped one "
            "can be concluded"
        )
    try:
        pin = exp.spec.variant(winner).model
    except KeyError:
        names = [v.name for v in exp.spec.variants]
        raise InvalidInput(f"winner {winner!r} is not one of the variants {names}") from None
    if pin is None:
        raise InvalidInput(
            f"variant {winner!r} serves the production model: there is no version to "
            "promote (apply its serving settings to the deployment instead)"
        )
    registry = experiments.registry
    mv = (
        registry.get(MODEL_NAME, pin.version)
        if pin.version is not None
        else registry.resolve(MODEL_NAME, pin.alias or "")
    )
    if mv is None:
        raise InvalidInput(f"no {MODEL_NAME} version has the alias {pin.alias!r}")
    # The checklist is checked before anything changes (a refusal leaves the experiment as it
    # was); the experiment is concluded before the promotion, so that a concurrent stop or
    # conclude (409) never leaves a promoted model behind an unconcluded experiment.
    checked = checklist(registry, mv, policy)
    blocking = [i.name for i in checked.blocking() if i.name not in waive]
    if blocking and not force:
        promote_version(  # raises ChecklistFailed with the details, as `models promote` does
            registry, policy, MODEL_NAME, mv.version, actor=actor, reason=reason, waive=waive
        )
    concluded = experiments.conclude(name, winner, actor=actor, reason=reason)
    current = registry.resolve(MODEL_NAME, "production")
    if current is not None and current.version == mv.version:
        return concluded, mv.version  # already in production: nothing to move
    promote_version(
        registry,
        policy,
        MODEL_NAME,
        mv.version,
        actor=actor,
        force=force,
        reason=reason if force or waive else reason or f"won experiment {name}",
        waive=waive,
    )
    return concluded, mv.version


def _check_overlap(spec: ExperimentSpec, running: list[Experiment]) -> None:
    """Experiments in different layers share users: refuse two that change the same thing
    (the model, or one serving setting) on the same surface, whose effects would mix."""
    mine = spec.changes()
    for other in running:
        if other.spec.layer == spec.layer or not set(spec.surfaces) & set(other.spec.surfaces):
            continue
        both = mine & other.spec.changes()
        if both:
            raise Conflict(
                f"experiment {other.name!r} (layer {other.spec.layer!r}) also changes "
                f"{', '.join(sorted(both))} on the same surface: put both in one layer so that "
                "they never share a user"
            )


def _lock_starts(conn: Connection) -> None:
    """One start at a time (starts are rare): the layer's free range and the other layers'
    overlap are checked against a stable set of running experiments. PostgreSQL: an advisory
    lock held to the end of the transaction; SQLite serialises writers."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('tastebud:experiment-start'))"))


def _audit(
    conn: Connection, name: str, action: str, actor: str, details: dict[str, JsonValue], at: int
) -> None:
    conn.execute(
        t.experiment_log.insert().values(
            name=name, action=action, actor=actor, details=details, at_ms=at
        )
    )


def _experiment(r: Row[Any]) -> Experiment:
    return Experiment(
        spec=ExperimentSpec.model_validate(r.spec),
        status=Status(r.status),
        salt=r.salt,
        layer_lo=r.layer_lo,
        layer_hi=r.layer_hi,
        created_ms=int(r.created_ms),
        started_ms=r.started_ms,
        stopped_ms=r.stopped_ms,
        concluded_ms=r.concluded_ms,
        winner=r.winner,
        revision=int(r.revision),
    )


def _now_ms() -> int:
    return int(time.time() * 1000)
