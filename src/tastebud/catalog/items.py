"""The ``items`` table: the catalogue's items, as rows (what an item may be is in
:mod:`tastebud.catalog.entries`, validated batches in :class:`~tastebud.catalog.Catalog`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, String, delete, exists, func, literal, select

from tastebud.catalog.entries import ItemRow
from tastebud.store import Page, Store, page_of
from tastebud.store import tables as t
from tastebud.store.sql import IN_CHUNK, as_json, chunks, existing_keys, placeholder, upsert

__all__ = ["ItemSummary", "Items"]

_CATEGORY_TTL_S = 60.0
_CATEGORY_CACHE_MAX = 500_000


@dataclass(frozen=True, slots=True)
class ItemSummary:
    """What serving knows of an item: its primary category, whether it is hidden, when it was
    published and its title (see :class:`tastebud.serving.CatalogView`)."""

    item_id: str
    category: str | None
    hidden: bool
    created_ms: int | None
    title: str | None


def _item_row(row: Row[Any]) -> ItemRow:
    """An ``items`` row as read (every column, the JSON ones decoded)."""
    return {
        "item_id": row.item_id,
        "title": row.title,
        "category": row.category,
        "categories": as_json(row.categories),
        "item_type": row.item_type,
        "created_ms": row.created_ms,
        "attributes": as_json(row.attributes),
        "hidden": row.hidden,
        "updated_ms": row.updated_ms,
    }


class Items:
    """Reads and writes of the catalogue's items.

    Args:
        store: The database.
        clock: Monotonic seconds, for the category cache (tests pass their own).
    """

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._dialect = store.engine.dialect.name
        self._clock = clock
        self._categories: dict[str, str | None] = {}
        self._categories_at = float("-inf")

    def __repr__(self) -> str:
        return f"Items({self.store!r})"

    def put(self, rows: Sequence[ItemRow]) -> set[str]:
        """Create or replace items (``items`` rows, see :func:`~tastebud.catalog.item_row`) in
        one transaction.

        Returns:
            The ids of the items that did not exist before.
        """
        if not rows:
            return set()
        ids = [r["item_id"] for r in rows]
        with self.store.engine.begin() as conn:
            existing = existing_keys(conn, t.items.c.item_id, ids)
            stmt = upsert(self._dialect, t.items)
            cols = [c.name for c in t.items.columns if c.name != "item_id"]
            stmt = stmt.on_conflict_do_update(
                index_elements=["item_id"], set_={c: stmt.excluded[c] for c in cols}
            )
            conn.execute(stmt, [dict(r) for r in rows])
        return set(ids) - existing

    def get(self, item_id: str) -> ItemRow | None:
        """One item's row, or ``None``."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(t.items).where(t.items.c.item_id == item_id)).first()
        return None if row is None else _item_row(row)

    def delete(self, item_id: str) -> bool:
        """Remove an item from the catalogue (its events stay). Returns whether it existed."""
        with self.store.engine.begin() as conn:
            return bool(conn.execute(delete(t.items).where(t.items.c.item_id == item_id)).rowcount)

    def count(self) -> int:
        """Number of items."""
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.items)).scalar_one())

    def categories(self, item_ids: Iterable[str]) -> dict[str, str | None]:
        """Primary category of items (``None``: no category or not in the catalogue), cached
        for a minute: the ingest path asks for every batch."""
        now = self._clock()
        cache = self._categories
        if now - self._categories_at > _CATEGORY_TTL_S or len(cache) > _CATEGORY_CACHE_MAX:
            cache.clear()
            self._categories_at = now
        wanted = set(item_ids)
        missing = sorted(i for i in wanted if i not in cache)
        if missing:
            mark = placeholder(self._dialect)
            with self.store.engine.connect() as conn:
                for part in chunks(missing, IN_CHUNK):
                    # Plain SQL on the hot path: no statement building and compilation.
                    marks = ", ".join([mark] * len(part))
                    sql = f"SELECT item_id, category FROM items WHERE item_id IN ({marks})"
                    found: dict[str, str | None] = {
                        k: v for k, v in conn.exec_driver_sql(sql, tuple(part))
                    }
                    for i in part:
                        cache[i] = found.get(i)
        return {i: cache[i] for i in wanted}

    def browse(
        self, *, limit: int, after: str | None = None, category: str | None = None
    ) -> Page[ItemRow]:
        """Items in item-id order (the database's collation), hidden ones included.

        Keyset-paginated (``WHERE item_id > after ORDER BY item_id LIMIT limit + 1``): a page
        costs an index range scan whatever its depth.

        Args:
            limit: Page size.
            after: Continue after this item id (the last one of the previous page).
            category: Only items whose ``categories`` contain it (the primary category is
                always among them).
        """
        i = t.items
        q = select(i).order_by(i.c.item_id).limit(limit + 1)
        if after is not None:
            q = q.where(i.c.item_id > after)
        if category is not None:
            q = q.where(self._has_category(category))
        with self.store.engine.connect() as conn:
            rows = [_item_row(r) for r in conn.execute(q)]
        return page_of(rows, limit)

    def _has_category(self, category: str) -> Any:
        # The walk follows the primary key; the category test is a cheap per-row check (JSON
        # containment on PostgreSQL, json_each on SQLite). A rare category scans further for a
        # full page, but never more than the table.
        categories = t.items.c.categories
        if self._dialect == "postgresql":
            wanted = func.jsonb_build_array(literal(category, String))
            return categories.op("@>", is_comparison=True)(wanted)
        each = func.json_each(categories).table_valued("value")
        return exists(select(literal(1)).select_from(each).where(each.c.value == category))

    def summaries(self) -> list[ItemSummary]:
        """Every item, as serving knows it (one read of the table)."""
        i = t.items
        q = select(i.c.item_id, i.c.category, i.c.hidden, i.c.created_ms, i.c.title)
        with self.store.engine.connect() as conn:
            return [
                ItemSummary(r.item_id, r.category, bool(r.hidden), r.created_ms, r.title)
                for r in conn.execute(q)
            ]
