"""The model registry: registering and revising versions, reading them, moving aliases and
archiving, with verified artifact paths. The records it returns are in
:mod:`~tastebud.registry.records`, its audit log in :mod:`~tastebud.registry.audit`.

Metadata lives in the database (``model_versions``, ``model_aliases``, ``registry_log``), the
artifacts in ``<artifact_dir>/registry/<name>/v<version>/r<revision>/``. Promotion and rollback
are metadata updates, never file copies (STYLE.md rule 6). Every read of an artifact goes
through :meth:`Registry.artifact_path`, which verifies each file's sha256 against the manifest
and that the manifest is the one registered.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import JsonValue
from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tastebud.errors import ArtifactInvalid, Conflict, InvalidInput, ModelNotFound
from tastebud.files import private_dir
from tastebud.registry import audit
from tastebud.registry.artifacts import artifact_id, verify_artifact
from tastebud.registry.records import (
    ALIASES,
    Approval,
    LogEntry,
    ModelKind,
    ModelLineage,
    ModelMetrics,
    ModelVersion,
    check_name,
)
from tastebud.store import Store
from tastebud.store import tables as t

__all__ = ["Registry"]


def _now_ms() -> int:
    return int(time.time() * 1000)


class Registry:
    """Versioned, verifiable models.

    Args:
        store: Where the metadata lives.
        artifact_dir: The deployment's artifact directory (shared by every process).
    """

    def __init__(self, store: Store, artifact_dir: Path) -> None:
        self.store = store
        self.artifact_dir = artifact_dir
        self.root = artifact_dir / "registry"

    # -- writing -----------------------------------------------------------------------------
    def staging_dir(self, name: str) -> Path:
        """A fresh directory to write a new artifact into before :meth:`register` moves it."""
        check_name(name)
        base = private_dir(self.root / ".staging")
        for n in range(1_000_000):
            path = base / f"{name}-{time.time_ns()}-{n}"
            if not path.exists():
                return path
        raise RuntimeError("no free staging directory")  # pragma: no cover

    def register(
        self,
        name: str,
        artifact: Path,
        *,
        kind: ModelKind,
        algorithm: str,
        metrics: ModelMetrics,
        lineage: ModelLineage,
        actor: str,
        alias: str | None = "candidate",
    ) -> ModelVersion:
        """Register the artifact written in ``artifact`` as the next version of ``name``
        (moved into the registry, verified first) and point ``alias`` at it.

        Raises:
            ArtifactInvalid: the artifact does not verify against its manifest.
        """
        check_name(name)
        verify_artifact(artifact, kind, "tastebud train --full")
        aid = artifact_id(artifact)
        now = _now_ms()
        for _ in range(20):  # two trainers racing for the same version number: retry
            with self.store.engine.begin() as conn:
                version = (
                    int(
                        conn.execute(
                            select(func.coalesce(func.max(t.model_versions.c.version), 0)).where(
                                t.model_versions.c.name == name
                            )
                        ).scalar_one()
                    )
                    + 1
                )
                rel = f"{name}/v{version}/r1"
                target = self.root / rel
                try:
                    conn.execute(
                        insert(t.model_versions).values(
                            name=name,
                            version=version,
                            revision=1,
                            kind=kind,
                            algorithm=algorithm,
                            path=rel,
                            artifact_id=aid,
                            status="active",
                            created_ms=now,
                            metrics=metrics,
                            lineage=lineage,
                            approval=None,
                        )
                    )
                except IntegrityError:
                    continue
                private_dir(target.parent)
                if target.exists():  # left by a crash between move and commit: not registered
                    shutil.rmtree(target)
                artifact.rename(target)
                try:
                    audit.record(
                        conn,
                        name,
                        version,
                        "register",
                        actor=actor,
                        at_ms=now,
                        details={"artifact_id": aid, "algorithm": algorithm},
                    )
                    if alias is not None:
                        self._set_alias(conn, name, alias, version, now)
                except BaseException:
                    target.rename(artifact)
                    raise
            return self.get(name, version)
        raise Conflict(f"could not allocate a version of {name}: too many concurrent trainers")

    def revise(
        self,
        name: str,
        version: int,
        write: Callable[[Path, Path], None],
        *,
        reason: str,
        actor: str,
        details: Mapping[str, JsonValue] | None = None,
    ) -> ModelVersion:
        """Make a new revision of a version by rewriting its artifact (e.g. removing an erased
        user's factors): ``write(old_dir, new_dir)`` writes the new artifact, which gets new
        checksums; the lineage records the revision and the old revision's files are deleted.
        """
        mv = self.get(name, version)
        old = self.artifact_path(mv)
        rel = f"{name}/v{version}/r{mv.revision + 1}"
        new = self.root / rel
        write(old, new)
        verify_artifact(new, mv.kind, "tastebud train --full")
        aid = artifact_id(new)
        now = _now_ms()
        entry: dict[str, JsonValue] = {
            "revision": mv.revision + 1,
            "at_ms": now,
            "reason": reason,
            "artifact_id": aid,
            "previous_artifact_id": mv.artifact_id,
            **(details or {}),
        }
        lineage: ModelLineage = {
            **mv.lineage,
            "revisions": [*mv.lineage.get("revisions", []), entry],
        }
        with self.store.engine.begin() as conn:
            conn.execute(
                update(t.model_versions)
                .where(t.model_versions.c.name == name, t.model_versions.c.version == version)
                .values(revision=mv.revision + 1, path=rel, artifact_id=aid, lineage=lineage)
            )
            audit.record(
                conn,
                name,
                version,
                "revise",
                actor=actor,
                at_ms=now,
                reason=reason,
                details={"artifact_id": aid},
            )
        shutil.rmtree(old, ignore_errors=True)
        return self.get(name, version)

    # -- reading -----------------------------------------------------------------------------
    def _row(self, row: Any, aliases: dict[tuple[str, int], list[str]]) -> ModelVersion:
        return ModelVersion(
            name=row.name,
            version=row.version,
            revision=row.revision,
            kind=row.kind,
            algorithm=row.algorithm,
            path=row.path,
            artifact_id=row.artifact_id,
            status=row.status,
            created_ms=row.created_ms,
            metrics=row.metrics or {},
            lineage=row.lineage or {},
            approval=None if row.approval is None else Approval.model_validate(row.approval),
            aliases=tuple(sorted(aliases.get((row.name, row.version), []), key=ALIASES.index)),
        )

    def _aliases(
        self, conn: Connection, name: str | None = None
    ) -> dict[tuple[str, int], list[str]]:
        q = select(t.model_aliases)
        if name is not None:
            q = q.where(t.model_aliases.c.name == name)
        out: dict[tuple[str, int], list[str]] = {}
        for r in conn.execute(q):
            out.setdefault((r.name, r.version), []).append(r.alias)
        return out

    def get(self, name: str, version: int) -> ModelVersion:
        """One version.

        Raises:
            ModelNotFound: no such model or version.
        """
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(t.model_versions).where(
                    t.model_versions.c.name == name, t.model_versions.c.version == version
                )
            ).first()
            if row is None:
                known = self.names()
                have = ", ".join(str(v.version) for v in self.versions(name))
                hint = (
                    f"known versions: {have}"
                    if name in known
                    else f"known models: {', '.join(known) or 'none'}"
                )
                raise ModelNotFound(f"no version {version} of model {name!r}; {hint}")
            return self._row(row, self._aliases(conn, name))

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of ``name``, or of every model), oldest first."""
        q = select(t.model_versions).order_by(t.model_versions.c.name, t.model_versions.c.version)
        if name is not None:
            q = q.where(t.model_versions.c.name == name)
        with self.store.engine.connect() as conn:
            aliases = self._aliases(conn, name)
            return [self._row(r, aliases) for r in conn.execute(q)]

    def names(self) -> list[str]:
        """Every registered model name."""
        with self.store.engine.connect() as conn:
            return list(
                conn.execute(
                    select(t.model_versions.c.name).distinct().order_by(t.model_versions.c.name)
                ).scalars()
            )

    def aliases(self) -> dict[str, dict[str, int]]:
        """``{name: {alias: version}}`` for every model: the one query a serving process polls."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(t.model_aliases)).all()
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r.name, {})[r.alias] = r.version
        return out

    def alias_state(self, alias: str = "production") -> dict[str, tuple[int, str, str]]:
        """``{name: (version, artifact_id, kind)}`` of every model with ``alias``: one indexed
        join, the query each serving process polls."""
        a, v = t.model_aliases, t.model_versions
        q = (
            select(a.c.name, a.c.version, v.c.artifact_id, v.c.kind)
            .join(v, and_(v.c.name == a.c.name, v.c.version == a.c.version))
            .where(a.c.alias == alias)
        )
        with self.store.engine.connect() as conn:
            return {r.name: (r.version, r.artifact_id, r.kind) for r in conn.execute(q)}

    def resolve(self, name: str, alias: str = "production") -> ModelVersion | None:
        """The version ``alias`` points at, or ``None``."""
        with self.store.engine.connect() as conn:
            version = conn.execute(
                select(t.model_aliases.c.version).where(
                    t.model_aliases.c.name == name, t.model_aliases.c.alias == alias
                )
            ).scalar()
        return None if version is None else self.get(name, int(version))

    def latest(self, name: str) -> ModelVersion | None:
        """The newest active version of ``name``, or ``None``."""
        active = [v for v in self.versions(name) if v.status == "active"]
        return active[-1] if active else None

    def artifact_path(self, mv: ModelVersion) -> Path:
        """The artifact directory of ``mv``, verified file by file.

        Raises:
            ArtifactInvalid: a file changed since it was written (tampering or corruption), or
                the manifest is not the registered one.
        """
        path = self.root / mv.path
        verify_artifact(path, mv.kind, "tastebud train --full")
        actual = artifact_id(path)
        if actual != mv.artifact_id:
            raise ArtifactInvalid(
                f"model {mv.name} v{mv.version}: the artifact's manifest ({actual}) is not the "
                f"registered one ({mv.artifact_id}); refusing to load it"
            )
        return path

    def history(self, name: str) -> list[LogEntry]:
        """The audit log of ``name``, oldest first."""
        return audit.history(self.store.engine, name)

    def production_history(self, name: str) -> list[int]:
        """The stack of production versions: promotions push, rollbacks pop."""
        return audit.production_stack(self.history(name))

    def previous_production(self, name: str) -> int | None:
        """The version a rollback would return to (skipping archived ones), or ``None``."""
        stack = self.production_history(name)
        current = stack[-1] if stack else None
        archived = {v.version for v in self.versions(name) if v.status == "archived"}
        for v in reversed(stack[:-1]):
            if v != current and v not in archived:
                return v
        return None

    # -- aliases and lifecycle ---------------------------------------------------------------
    def _set_alias(self, conn: Connection, name: str, alias: str, version: int, now: int) -> None:
        updated = conn.execute(
            update(t.model_aliases)
            .where(t.model_aliases.c.name == name, t.model_aliases.c.alias == alias)
            .values(version=version, updated_ms=now)
        ).rowcount
        if not updated:
            conn.execute(
                insert(t.model_aliases).values(
                    name=name, alias=alias, version=version, updated_ms=now
                )
            )

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str | None = None,
        action: str = "promote",
        details: Mapping[str, JsonValue] | None = None,
    ) -> ModelVersion:
        """Point ``alias`` at ``version`` (no checks: :func:`promote` applies the policy)."""
        if alias not in ALIASES:
            raise InvalidInput(f"unknown alias {alias!r}; use one of {', '.join(ALIASES)}")
        mv = self.get(name, version)
        if mv.status == "archived":
            raise Conflict(f"model {name} v{version} is archived; it cannot carry an alias")
        now = _now_ms()
        with self.store.engine.begin() as conn:
            self._set_alias(conn, name, alias, version, now)
            audit.record(
                conn,
                name,
                version,
                action,
                actor=actor,
                at_ms=now,
                alias=alias,
                reason=reason,
                details=details,
            )
        return self.get(name, version)

    def approve(
        self, name: str, version: int, *, actor: str, note: str | None = None
    ) -> ModelVersion:
        """Record an approval (who, when) on a version."""
        self.get(name, version)
        now = _now_ms()
        approval = Approval(by=actor, at_ms=now, note=note or None)
        with self.store.engine.begin() as conn:
            conn.execute(
                update(t.model_versions)
                .where(t.model_versions.c.name == name, t.model_versions.c.version == version)
                .values(approval=approval.model_dump())
            )
            audit.record(conn, name, version, "approve", actor=actor, at_ms=now, reason=note)
        return self.get(name, version)

    def archive(
        self, name: str, version: int, *, actor: str, reason: str | None = None
    ) -> ModelVersion:
        """Archive a version: it keeps its artifact (for audits and erasure) but can no longer
        be served or carry an alias.

        Raises:
            Conflict: the version is production (promote or roll back first).
        """
        mv = self.get(name, version)
        if "production" in mv.aliases:
            raise Conflict(
                f"model {name} v{version} is in production; promote another version "
                "or roll back before archiving it"
            )
        now = _now_ms()
        with self.store.engine.begin() as conn:
            conn.execute(
                update(t.model_versions)
                .where(t.model_versions.c.name == name, t.model_versions.c.version == version)
                .values(status="archived")
            )
            conn.execute(
                delete(t.model_aliases).where(
                    and_(t.model_aliases.c.name == name, t.model_aliases.c.version == version)
                )
            )
            audit.record(conn, name, version, "archive", actor=actor, at_ms=now, reason=reason)
        return self.get(name, version)

    def sweep(self, older_than_s: float = 600.0) -> list[Path]:
        """Remove what a crashed writer left: staging directories and version directories
        no registered version points at, untouched for ``older_than_s``. Returns them."""
        if not self.root.is_dir():
            return []
        cutoff = time.time() - older_than_s
        live = {self.root / mv.path for mv in self.versions()}
        removed = []
        staging = self.root / ".staging"
        candidates = list(staging.iterdir()) if staging.is_dir() else []
        for model_dir in self.root.iterdir():
            if model_dir.name.startswith(".") or not model_dir.is_dir():
                continue
            for version_dir in model_dir.iterdir():
                revisions = [r for r in version_dir.iterdir() if r.is_dir()]
                candidates += [r for r in revisions if r not in live]
        for path in candidates:
            try:
                if path.stat().st_mtime <= cutoff:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
                    removed.append(path)
            except FileNotFoundError:
                continue
        return removed

    def iter_artifacts(self) -> Iterator[tuple[ModelVersion, Path]]:
        """Every version (archived included) with its artifact directory (unverified)."""
        for mv in self.versions():
            yield mv, self.root / mv.path
