"""Erasure: one user removed from every store at once, with a receipt.

Every store registers its erasure step here, in :data:`STEPS`, and nowhere else; a test checks
that every table holding user keys has a step, so a store added later cannot be forgotten.
A tombstone (an HMAC of the pseudonym under its own derivation, with the time and the request
id, no personal data) keeps a replayed old event of the user from being ingested again.
Idempotent: erasing again removes nothing more and moves the tombstone forward.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
from pydantic import BaseModel, ConfigDict, computed_field, field_serializer
from sqlalchemy import delete, func, or_, select, update

from tastebud.files import open_private, write_private
from tastebud.ids import Vocabulary
from tastebud.models import zero_rows
from tastebud.monitoring import get_logger
from tastebud.privacy import PrivacyLog, Tombstones
from tastebud.realtime import RealtimeState
from tastebud.registry import Registry
from tastebud.registry.recommender import REMOVED, load_model, save_model
from tastebud.store import Store
from tastebud.store import tables as t

__all__ = [
    "ErasureContext",
    "PERSONAL_TABLES",
    "Receipt",
    "STEPS",
    "erase",
    "erasure_step",
]

_log = get_logger(__name__)


@dataclass
class ErasureContext:
    """What the erasure steps work with."""

    store: Store
    realtime: RealtimeState
    registry: Registry
    tombstone: Callable[[str], str]
    """The tombstone HMAC of a pseudonym."""
    forget_cached: Callable[[str], int] = field(default=lambda _k: 0)
    """Drops a user's cached lists in this process; returns how many."""
    reload_models: Callable[[], Any] = field(default=lambda: None)
    """Makes this process serve the new model revisions now (others poll within seconds)."""


class Receipt(BaseModel):
    """What an erasure removed, per store (counts only): the answer of
    ``DELETE /v1/users/{user_id}`` and of ``tastebud privacy erase``."""

    model_config = ConfigDict(frozen=True)
    request_id: str
    """Identifies the erasure in the privacy log and its tombstone."""
    erased_ms: int
    """When (ms since the epoch); the user's events from before it are refused from now on."""
    stores: dict[str, int]
    """Rows or entries removed per store, in the order of :data:`STEPS`."""
    seconds: float
    """How long the erasure took (rounded to the millisecond in the JSON view)."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> int:
        """Rows or entries removed in all."""
        return sum(self.stores.values())

    @field_serializer("seconds")
    def _rounded(self, seconds: float) -> float:
        return round(seconds, 3)


Step = Callable[[ErasureContext, str, list[str]], int]
STEPS: dict[str, Step] = {}
"""Erasure steps by store name, in the order they run: ``(ctx, user_key, anon_keys) -> rows``."""

PERSONAL_TABLES: dict[str, str] = {}
"""Each table holding user keys -> the step that erases from it (checked by a test)."""


def erasure_step(name: str, *tables: str) -> Callable[[Step], Step]:
    """Register an erasure step for the store ``name`` (covering ``tables``)."""

    def register(fn: Step) -> Step:
        STEPS[name] = fn
        for table in tables:
            PERSONAL_TABLES[table] = name
        return fn

    return register


def _keys(user_key: str, anon: list[str]) -> list[str]:
    return [user_key, *anon]


def _count_delete(ctx: ErasureContext, q_count: Any, q_delete: Any) -> int:
    with ctx.store.engine.begin() as conn:
        n = int(conn.execute(q_count).scalar_one())
        if n:
            conn.execute(q_delete)
    return n


def _events_where(
    user_key: str, anon: list[str], types: tuple[str, ...] | None, exclude: bool = False
) -> Any:
    e = t.events
    # Only the user's own events (see export): another user's event sent from a device this
    # user once identified on carries the anonymous id as well; it is detached, not deleted.
    who = e.c.user_key.in_(_keys(user_key, anon))
    if types is None:
        return who
    kind = e.c.event_type.not_in(types) if exclude else e.c.event_type.in_(types)
    return who & kind


def _events_step(types: tuple[str, ...] | None, exclude: bool = False) -> Step:
    def step(ctx: ErasureContext, user_key: str, anon: list[str]) -> int:
        where = _events_where(user_key, anon, types, exclude)
        n = _count_delete(
            ctx,
            select(func.count()).select_from(t.events).where(where),
            delete(t.events).where(where),
        )
        if anon and (types is None or exclude):
            # Other users' events from the erased user's devices keep no link to them.
            e = t.events
            with ctx.store.engine.begin() as conn:
                conn.execute(update(e).where(e.c.anon_key.in_(anon)).values(anon_key=None))
        return n

    return step


erasure_step("impressions")(_events_step(("impression",)))
erasure_step("feedback")(_events_step(("feedback",)))
erasure_step("events", "events")(_events_step(("impression", "feedback"), exclude=True))


@erasure_step("attributes", "users")
def _users(ctx: ErasureContext, user_key: str, anon: list[str]) -> int:
    w = t.users.c.user_key.in_(_keys(user_key, anon))
    return _count_delete(
        ctx, select(func.count()).select_from(t.users).where(w), delete(t.users).where(w)
    )


@erasure_step("consents", "consents", "consent_log")
def _consents(ctx: ErasureContext, user_key: str, anon: list[str]) -> int:
    n = 0
    for table in (t.consents, t.consent_log):
        w = table.c.user_key.in_(_keys(user_key, anon))
        n += _count_delete(
            ctx, select(func.count()).select_from(table).where(w), delete(table).where(w)
        )
    return n


@erasure_step("aliases", "aliases")
def _aliases(ctx: ErasureContext, user_key: str, anon: list[str]) -> int:
    a = t.aliases
    w = or_(a.c.user_key == user_key, a.c.anon_key.in_(anon))
    return _count_delete(ctx, select(func.count()).select_from(a).where(w), delete(a).where(w))


@erasure_step("features", "feature_values")
def _features(ctx: ErasureContext, user_key: str, anon: list[str]) -> int:
    v = t.feature_values
    w = (v.c.entity == "user") & v.c.entity_key.in_(_keys(user_key, anon))
    return _count_delete(ctx, select(func.count()).select_from(v).where(w), delete(v).where(w))


@erasure_step("realtime")
def _realtime(ctx: ErasureContext, user_key: str, anon: list[str]) -> int:
    n = 0
    for key in _keys(user_key, anon):
        if not ctx.realtime.get(key).empty:
            n += 1
        ctx.realtime.forget(key)
    return n


@erasure_step("result_cache")
def _cache(ctx: ErasureContext, user_key: str, anon: list[str]) -> int:
    return sum(ctx.forget_cached(k) for k in _keys(user_key, anon))


@erasure_step("models")
def _models(ctx: ErasureContext, user_key: str, anon: list[str]) -> int:
    """Every registered recommender version, archived ones included: the user's slot becomes a
    placeholder, their factors and history are emptied (a new revision, new checksums)."""
    n = 0
    for mv, path in list(ctx.registry.iter_artifacts()):
        users_file = path / "users.json"
        if mv.kind != "recommender" or not users_file.is_file():
            continue
        ids = orjson.loads(users_file.read_bytes())
        hits = [i for i, k in enumerate(ids) if k in _keys(user_key, anon)]
        if not hits:
            continue

        def rewrite(old: Path, new: Path, hits: list[int] = hits) -> None:
            loaded = load_model(old)
            idx = np.array(hits, dtype=np.int64)
            loaded.model.forget_users(idx)
            drop = set(hits)
            users = Vocabulary(
                [f"{REMOVED}{i}" if i in drop else k for i, k in enumerate(loaded.users.ids)]
            )
            seen = None if loaded.seen is None else zero_rows(loaded.seen, idx)
            core = {
                "config.json",
                "users.json",
                "items.json",
                "metrics.json",
                "manifest.json",
                "params.npz",
            }
            extra = {p.name: p.read_text() for p in old.iterdir() if p.name not in core}
            save_model(
                new, loaded.model, users, loaded.items, loaded.metrics, seen=seen, extra=extra
            )

        ctx.registry.revise(
            mv.name,
            mv.version,
            rewrite,
            reason="erasure",
            actor="privacy",
            details={"removed_users": len(hits)},
        )
        n += 1
    return n


@erasure_step("batch_lists", "batch_outputs")
def _batch(ctx: ErasureContext, user_key: str, anon: list[str]) -> int:
    """Precomputed lists (``tastebud recommend --all``): the user's rows are removed from every
    registered file (``batch_outputs`` holds file paths, not user data)."""
    with ctx.store.engine.connect() as conn:
        files = conn.execute(select(t.batch_outputs.c.path, t.batch_outputs.c.format)).all()
    n = 0
    keys = set(_keys(user_key, anon))
    for raw_path, fmt in files:
        path = Path(raw_path)
        if not path.is_file():
            continue
        tmp = path.with_name(f".{path.name}.erase")
        if fmt == "parquet":
            frame = pl.read_parquet(path)
            kept = frame.filter(~pl.col("user_key").is_in(list(keys)))
            removed = frame.height - kept.height
            if removed:
                with open_private(tmp) as fh:
                    kept.write_parquet(fh)
                tmp.replace(path)
        else:
            lines = path.read_bytes().splitlines(keepends=True)
            kept_lines = [
                ln for ln in lines if not ln.strip() or orjson.loads(ln).get("user_key") not in keys
            ]
            removed = len(lines) - len(kept_lines)
            if removed:
                write_private(tmp, b"".join(kept_lines))
                tmp.replace(path)
        n += removed
    return n


def _anon_keys(store: Store, user_key: str) -> list[str]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                select(t.aliases.c.anon_key).where(t.aliases.c.user_key == user_key)
            ).scalars()
        )


def erase(ctx: ErasureContext, user_key: str, *, request_id: str | None = None) -> Receipt:
    """Erase ``user_key`` (and the anonymous ids merged into it) from every store; record the
    tombstone and the privacy log entry. Returns the receipt."""
    t0 = time.perf_counter()
    rid = request_id or uuid.uuid4().hex
    anon = _anon_keys(ctx.store, user_key)
    stores = {name: step(ctx, user_key, anon) for name, step in STEPS.items()}
    if stores.get("models"):
        ctx.reload_models()
    now = int(time.time() * 1000)
    Tombstones(ctx.store).add(ctx.tombstone(user_key), now, rid)
    receipt = Receipt(
        request_id=rid, erased_ms=now, stores=stores, seconds=time.perf_counter() - t0
    )
    PrivacyLog(ctx.store).record("erasure", receipt.total, {"request_id": rid}, now)
    _log.info("user erased", request_id=rid, rows=receipt.total, seconds=round(receipt.seconds, 3))
    return receipt
