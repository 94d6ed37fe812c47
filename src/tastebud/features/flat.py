"""Flat feature columns: nested feature values (lists, structs of counts) as a few numeric and
categorical columns, the same way for training sets and for one user's values at serving time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
from pydantic import JsonValue

__all__ = [
    "flat_features",
    "flatten_frame",
]


def flatten_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested features as a few flat columns; other columns unchanged.

    A list (``content_category_interests``, top categories first) becomes ``<name>_count`` and,
    for strings, ``<name>_top``; a struct of counts (``feature_adoption``) becomes
    ``<name>_total``, ``<name>_distinct`` and ``<name>_top_share``. Anything else nested is
    dropped; an all-null column (its type unknown) becomes Float64.
    """
    exprs: list[pl.Expr] = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.List):
            exprs.append(col.list.len().fill_null(0).cast(pl.Int64).alias(f"{name}_count"))
            if dtype.inner == pl.String:
                exprs.append(col.list.first().alias(f"{name}_top"))
        elif isinstance(dtype, pl.Struct):
            fields = [f.name for f in dtype.fields if f.dtype.is_numeric()]
            values = [col.struct.field(f).fill_null(0) for f in fields]
            if not values:
                continue
            total = pl.sum_horizontal(values).cast(pl.Float64)
            exprs.append(total.alias(f"{name}_total"))
            exprs.append(
                pl.sum_horizontal([v > 0 for v in values]).cast(pl.Int64).alias(f"{name}_distinct")
            )
            top = pl.max_horizontal(values).cast(pl.Float64)
            exprs.append(pl.when(total > 0).then(top / total).alias(f"{name}_top_share"))
        elif dtype == pl.Null:
            exprs.append(col.cast(pl.Float64))
        elif dtype.is_nested():
            continue
        else:
            exprs.append(col)
    return frame.select(exprs)


def flat_features(values: Sequence[Mapping[str, JsonValue]]) -> list[dict[str, JsonValue]]:
    """Feature dicts (a snapshot's user values) flattened exactly like
    ``tastebud.training.event_training_set`` flattens its columns, for predicting with a model
    trained on it."""
    if not values:
        return []
    return flatten_frame(pl.DataFrame(values, infer_schema_length=None)).to_dicts()
