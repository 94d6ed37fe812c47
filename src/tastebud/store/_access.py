"""The store's consent, erasure, privacy-log and API-key tables: who may do what with whose
data. A base class of :class:`tastebud.store.Store`, which sets the attributes declared here."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tastebud.store import tables as t
from tastebud.store._sql import IN_CHUNK, chunks


class AccessStore:
    """Consent decisions, erasure tombstones, registered batch outputs, the privacy log and
    API keys (see :class:`tastebud.store.Store`)."""

    engine: Engine
    _dialect: str
    _mark: str
    _consent_cache: dict[str, dict[str, bool | None]]
    _consent_version: object
    _tomb_cache: dict[str, int | None]
    _tomb_version: object

    def _insert(self, table: Table) -> Any:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # -- consent --------------------------------------------------------------------------------
    def set_consents(self, user_key: str, changes: Mapping[str, bool], now_ms: int) -> None:
        """Record consent decisions (one per purpose) and append them to the consent log."""
        if not changes:
            return
        with self.engine.begin() as conn:
            for purpose, granted in changes.items():
                stmt = self._insert(t.consents).values(
                    user_key=user_key, purpose=purpose, granted=granted, updated_ms=now_ms
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["user_key", "purpose"],
                        set_={"granted": granted, "updated_ms": now_ms},
                    )
                )
                conn.execute(
                    t.consent_log.insert().values(
                        user_key=user_key, purpose=purpose, granted=granted, at_ms=now_ms
                    )
                )

    def get_consents(self, user_key: str) -> dict[str, tuple[bool, int]]:
        """Stored decisions of one user: purpose -> (granted, updated_ms)."""
        q = select(t.consents.c.purpose, t.consents.c.granted, t.consents.c.updated_ms).where(
            t.consents.c.user_key == user_key
        )
        with self.engine.connect() as conn:
            return {p: (bool(g), int(u)) for p, g, u in conn.execute(q)}

    def consent_states(self, user_keys: Iterable[str], purpose: str) -> dict[str, bool]:
        """Stored decisions for one purpose over many users (absent: never decided).

        Every consent change appends to ``consent_log`` in the same transaction, so the log's
        newest id is a version of all consent state, in every process. Answers are cached per
        version: a batch costs one indexed ``max(id)`` lookup, plus a query for users not seen
        since the last change.
        """
        keys = set(user_keys)
        out: dict[str, bool] = {}
        if not keys:
            return out
        with self.engine.connect() as conn:
            # Hot path (every ingest batch): plain SQL, no statement compilation.
            version = conn.exec_driver_sql("SELECT max(id) FROM consent_log").scalar_one()
            if (
                version != self._consent_version
                or sum(map(len, self._consent_cache.values())) > 500_000
            ):
                self._consent_cache = {}
                self._consent_version = version
            cache = self._consent_cache.setdefault(purpose, {})
            missing = sorted(keys.difference(cache))
            m = self._mark
            for part in chunks(missing, IN_CHUNK):
                sql = (
                    f"SELECT user_key, granted FROM consents WHERE purpose = {m} "
                    f"AND user_key IN ({', '.join([m] * len(part))})"
                )
                found = {k: bool(g) for k, g in conn.exec_driver_sql(sql, (purpose, *part))}
                for k in part:
                    cache[k] = found.get(k)
        for k in keys:
            state = cache[k]
            if state is not None:
                out[k] = state
        return out

    def consent_version(self) -> object:
        """A version of all consent state: the consent log's newest id (every change appends)."""
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("SELECT max(id) FROM consent_log").scalar_one()

    def consent_decisions(self, purpose: str) -> dict[str, bool]:
        """Every stored decision for one purpose (user key -> granted)."""
        c = t.consents
        with self.engine.connect() as conn:
            rows = conn.execute(select(c.c.user_key, c.c.granted).where(c.c.purpose == purpose))
            return {k: bool(g) for k, g in rows}

    # -- erasure tombstones ---------------------------------------------------------------------
    def erased_at(
        self, user_keys: Iterable[str], tombstone: Callable[[str], str]
    ) -> dict[str, int]:
        """When each of ``user_keys`` was erased (looked up by its tombstone HMAC,
        ``tombstone(key)``); absent: never. Cached per version of the table (one ``count(*)``
        per call): this runs on every ingest batch, and while no user was ever erased it
        computes no HMAC at all."""
        users = set(user_keys)
        if not users:
            return {}
        with self.engine.connect() as conn:
            version = conn.exec_driver_sql("SELECT count(*) FROM tombstones").scalar_one()
            if version == 0:
                return {}
            by_tomb = {tombstone(u): u for u in users}
            keys = set(by_tomb)
            if version != self._tomb_version:
                self._tomb_cache = {}
                self._tomb_version = version
            missing = sorted(keys.difference(self._tomb_cache))
            m = self._mark
            for part in chunks(missing, IN_CHUNK):
                sql = (
                    f"SELECT tomb_key, erased_ms FROM tombstones "
                    f"WHERE tomb_key IN ({', '.join([m] * len(part))})"
                )
                found: dict[str, int] = {
                    str(k): int(v) for k, v in conn.exec_driver_sql(sql, tuple(part)).all()
                }
                for k in part:
                    self._tomb_cache[k] = found.get(k)
        return {by_tomb[k]: int(v) for k in keys if (v := self._tomb_cache.get(k)) is not None}

    def add_tombstone(self, tomb_key: str, erased_ms: int, request_id: str) -> None:
        """Record an erasure (idempotent: a repeated erasure moves the time forward)."""
        with self.engine.begin() as conn:
            q = update(t.tombstones).where(t.tombstones.c.tomb_key == tomb_key)
            done = conn.execute(q.values(erased_ms=erased_ms, request_id=request_id)).rowcount
            if not done:
                conn.execute(
                    t.tombstones.insert().values(
                        tomb_key=tomb_key, erased_ms=erased_ms, request_id=request_id
                    )
                )

    def register_batch_output(
        self, path: str, fmt: str, model: str, version: int, now_ms: int
    ) -> None:
        """Remember a precomputed list file (erasure rewrites it without the erased user)."""
        row = {"format": fmt, "model": model, "version": version, "created_ms": now_ms}
        with self.engine.begin() as conn:
            q = update(t.batch_outputs).where(t.batch_outputs.c.path == path)
            if not conn.execute(q.values(**row)).rowcount:
                conn.execute(t.batch_outputs.insert().values(path=path, **row))

    def log_privacy(self, kind: str, count: int, details: Mapping[str, Any], at_ms: int) -> None:
        """Append to the privacy log (the transparency report's source; no personal data)."""
        with self.engine.begin() as conn:
            row = {"kind": kind, "count": count, "details": dict(details), "at_ms": at_ms}
            conn.execute(t.privacy_log.insert().values(**row))

    # -- API keys -------------------------------------------------------------------------------
    def create_key(self, key_id: str, name: str, scope: str, secret_hash: str, now_ms: int) -> None:
        """Store a new API key (only the hash of its secret)."""
        with self.engine.begin() as conn:
            conn.execute(
                t.api_keys.insert().values(
                    key_id=key_id,
                    name=name,
                    scope=scope,
                    secret_hash=secret_hash,
                    created_ms=now_ms,
                )
            )

    def get_key(self, key_id: str) -> dict[str, Any] | None:
        """One API key row by id, or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.key_id == key_id)).first()
            return None if row is None else dict(row._mapping)

    def list_keys(self) -> list[dict[str, Any]]:
        """Every API key row (hashes included; callers must not print them)."""
        with self.engine.connect() as conn:
            q = select(t.api_keys).order_by(t.api_keys.c.created_ms, t.api_keys.c.key_id)
            return [dict(r._mapping) for r in conn.execute(q)]

    def revoke_key(self, key_id: str, now_ms: int) -> bool:
        """Mark a key revoked. Returns whether an active key with that id existed."""
        with self.engine.begin() as conn:
            n = conn.execute(
                update(t.api_keys)
                .where(t.api_keys.c.key_id == key_id, t.api_keys.c.revoked_ms.is_(None))
                .values(revoked_ms=now_ms)
            ).rowcount
            return bool(n)
