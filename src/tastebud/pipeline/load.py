"""Reading stored events into Polars frames, in user partitions when the data is large."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl
from sqlalchemy import text

from tastebud.store import Store

__all__ = ["EVENT_SCHEMA", "UserRange", "count_events", "load_events", "user_ranges"]

EVENT_SCHEMA: dict[str, type[pl.DataType]] = {
    "id": pl.Int64,
    "event_id": pl.String,
    "event_type": pl.String,
    "user_key": pl.String,
    "session_id": pl.String,
    "item_id": pl.String,
    "ts_ms": pl.Int64,
    "received_ms": pl.Int64,
    "source": pl.String,
    "schema_version": pl.Int64,
    "data": pl.String,
    "context": pl.String,
}
"""Columns of a raw event frame (``data`` and ``context`` as JSON text)."""

_HEX = "0123456789abcdef"


@dataclass(frozen=True)
class UserRange:
    """Users whose pseudonym starts with a prefix in ``[low, high)`` (pseudonyms are uniform hex,
    so ranges split users evenly and use the ``(user_key, ts_ms)`` index)."""

    low: str
    high: str | None

    def sql(self) -> tuple[str, dict[str, str]]:
        """A WHERE fragment and its parameters."""
        if self.high is None:
            return "user_key >= :low", {"low": self.low}
        return "user_key >= :low AND user_key < :high", {"low": self.low, "high": self.high}


def user_ranges(parts: int) -> list[UserRange]:
    """Split the pseudonym space into ``parts`` ranges (1, 16 or 256).

    >>> [(r.low, r.high) for r in user_ranges(16)][:2]
    [('0', '1'), ('1', '2')]
    """
    if parts <= 1:
        return [UserRange("", None)]
    prefixes = list(_HEX) if parts <= 16 else [a + b for a in _HEX for b in _HEX]
    bounds = [*prefixes[1:], None]
    return [UserRange(lo, hi) for lo, hi in zip(prefixes, bounds, strict=True)]


def count_events(store: Store, *, until_ms: int | None = None) -> int:
    """Events with ``ts_ms < until_ms`` (all when ``None``)."""
    sql = "SELECT count(*) FROM events" + (" WHERE ts_ms < :until" if until_ms is not None else "")
    with store.engine.connect() as conn:
        return int(conn.execute(text(sql), {"until": until_ms}).scalar_one())


# Arrow straight from the database (ADBC drivers): about three times faster than Python rows.
# Ids are never empty strings, so '' stands in for NULL and lets the SQLite driver infer text
# columns from any batch.
_ADBC_COLUMNS = (
    "id, COALESCE(event_id, '') AS event_id, event_type, user_key, "
    "COALESCE(session_id, '') AS session_id, COALESCE(item_id, '') AS item_id, ts_ms, "
    "received_ms, source, schema_version, COALESCE(CAST(data AS TEXT), '') AS data, "
    "COALESCE(CAST(context AS TEXT), '') AS context"
)


def _adbc_uri(store: Store) -> tuple[str, str] | None:
    url = store.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return "sqlite", url.database
    if url.get_backend_name() == "postgresql":
        rendered = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return "postgresql", rendered
    return None


# For feature builds: the device type extracted by the database, and payloads only of the
# event types whose payload a feature reads (about half the bytes of a full load).
_PAYLOAD_TYPES = (
    "'page_view', 'content_engagement', 'rating', 'interaction', 'feedback', 'feature_usage', "
    "'impression', 'search', 'form_submit'"
)
_DEVICE_SQL = {
    "sqlite": "json_extract(context, '$.device_type')",
    "postgresql": "(context->>'device_type')",
}


def _slim_columns(kind: str) -> str:
    return _ADBC_COLUMNS.replace(
        "COALESCE(CAST(data AS TEXT), '') AS data",
        f"CASE WHEN event_type IN ({_PAYLOAD_TYPES}) OR event_type LIKE 'custom.%' "
        "THEN COALESCE(CAST(data AS TEXT), '') ELSE '' END AS data",
    ).replace(
        "COALESCE(CAST(context AS TEXT), '') AS context",
        f"'' AS context, COALESCE({_DEVICE_SQL[kind]}, '') AS device_type",
    )


def _load_adbc(
    kind: str, uri: str, clauses: list[tuple[str, int | str]], slim: bool = False
) -> pl.DataFrame:
    """``clauses``: (column and operator, value) pairs, ANDed."""
    marks = ["?" if kind == "sqlite" else f"${n}" for n in range(1, len(clauses) + 1)]
    where = " AND ".join(f"{c} {m}" for (c, _), m in zip(clauses, marks, strict=True))
    params = [v for _, v in clauses]
    columns = _slim_columns(kind) if slim else _ADBC_COLUMNS
    sql = f"SELECT {columns} FROM events" + (f" WHERE {where}" if where else "")
    if kind == "sqlite":
        import adbc_driver_sqlite.dbapi as driver
    else:
        import adbc_driver_postgresql.dbapi as driver  # type: ignore[no-redef]
    with driver.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        frame = pl.from_arrow(cur.fetch_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    empty_is_null = ["event_id", "session_id", "item_id", "data", "context"]
    if slim:
        empty_is_null.append("device_type")
    return frame.with_columns(
        pl.col(empty_is_null).cast(pl.String).replace("", None),
        pl.col("id", "ts_ms", "received_ms", "schema_version").cast(pl.Int64),
        pl.col("event_type", "user_key", "source").cast(pl.String),
    ).select([*EVENT_SCHEMA, *(["device_type"] if slim else [])])


def _batches(
    store: Store, sql: str, params: dict[str, int | str], size: int
) -> Iterator[list[Any]]:
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=size).execute(
            text(sql), params
        )
        for part in result.partitions(size):
            yield [tuple(r) for r in part]


def load_events(
    store: Store,
    *,
    until_ms: int | None = None,
    since_ms: int | None = None,
    users: UserRange | None = None,
    batch_size: int = 200_000,
    slim: bool = False,
) -> pl.DataFrame:
    """Stored events as a frame (``EVENT_SCHEMA``), optionally in a time window and a user range.

    Point-in-time: ``until_ms`` keeps only events that happened strictly before it. ``slim``
    (feature builds): ``context`` is replaced by a ``device_type`` column extracted in the
    database, and ``data`` is loaded only for the event types features read.
    """
    adbc = _adbc_uri(store)
    if adbc is not None:
        clauses: list[tuple[str, int | str]] = []
        if until_ms is not None:
            clauses.append(("ts_ms <", until_ms))
        if since_ms is not None:
            clauses.append(("ts_ms >=", since_ms))
        if users is not None and users.low:
            clauses.append(("user_key >=", users.low))
            if users.high is not None:
                clauses.append(("user_key <", users.high))
        if adbc[0] == "sqlite":
            # ADBC links its own copy of SQLite. POSIX file locks belong to the process, so
            # when one library closes the database file it silently drops the locks the other
            # holds: the other then reads stale pages, and the WAL can be deleted under it
            # (writes lost). Close this process's pooled SQLAlchemy connections first; they
            # reopen on next use. Loading must not overlap writes from the same process.
            store.engine.dispose()
        frame = _load_adbc(adbc[0], adbc[1], clauses, slim)
        return frame if frame.height else pl.DataFrame(schema=EVENT_SCHEMA)
    where: list[str] = []
    params: dict[str, int | str] = {}
    if until_ms is not None:
        where.append("ts_ms < :until")
        params["until"] = until_ms
    if since_ms is not None:
        where.append("ts_ms >= :since")
        params["since"] = since_ms
    if users is not None and users.low:
        fragment, extra = users.sql()
        where.append(fragment)
        params.update(extra)
    sql = (
        "SELECT id, event_id, event_type, user_key, session_id, item_id, ts_ms, received_ms, "
        "source, schema_version, CAST(data AS TEXT), CAST(context AS TEXT) FROM events"
        + (" WHERE " + " AND ".join(where) if where else "")
    )
    frames = [
        pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")
        for rows in _batches(store, sql, params, batch_size)
    ]
    if not frames:
        return pl.DataFrame(schema=EVENT_SCHEMA)
    return pl.concat(frames, rechunk=True)
