"""The temporal per-user split of DESIGN.md, as a reusable function."""

from __future__ import annotations

import numpy as np
import polars as pl

__all__ = ["temporal_user_split"]


def temporal_user_split(
    interactions: pl.DataFrame,
    *,
    test_fraction: float = 0.2,
    min_interactions: int = 5,
    seed: int = 0,
    user_col: str = "user_key",
    time_col: str = "ts_ms",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split interactions into (train, test) per user, by time.

    Per user, rows are sorted by (time, random tie-break drawn with ``seed`` in input order);
    users with at least ``min_interactions`` put their last ``test_fraction`` (rounded, at
    least one) into test; everything else is train.

    >>> df = pl.DataFrame({"user_key": ["a"] * 5 + ["b"] * 2, "ts_ms": [5, 1, 4, 2, 3, 1, 2]})
    >>> train, test = temporal_user_split(df)
    >>> test.get_column("ts_ms").to_list(), train.height
    ([5], 6)
    """
    rng = np.random.default_rng(seed)
    ranked = (
        interactions.with_columns(pl.Series("_tie", rng.random(interactions.height)))
        .sort(user_col, time_col, "_tie")
        .with_columns(
            pl.len().over(user_col).alias("_n"),
            pl.int_range(pl.len()).over(user_col).alias("_rank"),
        )
    )
    n_test = (
        pl.when(pl.col("_n") >= min_interactions)
        .then((pl.col("_n") * test_fraction).round().cast(pl.Int64).clip(lower_bound=1))
        .otherwise(0)
    )
    is_test = pl.col("_rank") >= pl.col("_n") - n_test
    helper = ["_tie", "_n", "_rank"]
    return (
        ranked.filter(~is_test).drop(helper),
        ranked.filter(is_test).drop(helper),
    )
