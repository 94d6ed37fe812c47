"""Feature tables for the predictors: CSV/TSV files from elsewhere, or frames from the feature
store, turned into a numeric matrix with categorical codes, and a report of what was odd.

Column kinds are detected from the values: a column whose non-blank cells are all
true/false/yes/no is **boolean** (1/0); one where at least 95 % of the non-blank cells parse as
numbers (or at least half, the rest a few distinct stray values such as ``n.a.``) is
**numeric** (the other cells are *malformed*: counted, and treated as missing); any
other column is **categorical** (codes in sorted order of the values), except one with more than
``max_categories`` distinct values, which looks like an identifier or free text and is left out.
Blank cells (empty, ``NA``, ``NaN``, ``null``, ``None``, ``?``) are missing values. The label's
values ``true``, ``yes``, ``1`` (any case, also ``y``/``t``/``1.0``) are positive and
``false``, ``no``, ``0`` negative; a row whose label is blank or anything else is dropped and
counted. Nothing here is fatal but a table with no usable rows or a single class.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tastebud.errors import InvalidInput
from tastebud.registry.predictor import FeatureSchema

__all__ = ["FeatureTable", "TableReport", "TableReportJSON", "read_table", "table_from_frame"]

_BLANK = {"", "na", "nan", "null", "none", "?", "n/a"}
_TRUE = {"true", "yes", "1", "1.0", "y", "t"}
_FALSE = {"false", "no", "0", "0.0", "n", "f"}
NUMERIC_SHARE = 0.95


class TableReportJSON(TypedDict):
    """:meth:`TableReport.to_dict`: stored with a model in ``metrics.json``."""

    rows_read: int
    rows_used: int
    positives: int
    kinds: dict[str, str]
    dropped_rows: dict[str, int]
    malformed_cells: dict[str, int]
    missing_cells: dict[str, int]
    ignored_columns: dict[str, str]


@dataclass
class TableReport:
    """What reading a table found: kinds per column, dropped rows and malformed cells."""

    rows_read: int = 0
    rows_used: int = 0
    positives: int = 0
    kinds: dict[str, str] = field(default_factory=dict)
    dropped_rows: Counter[str] = field(default_factory=Counter)
    malformed_cells: Counter[str] = field(default_factory=Counter)
    missing_cells: Counter[str] = field(default_factory=Counter)
    ignored_columns: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        kinds = Counter(self.kinds.values())
        out = [
            f"{self.rows_used:,} of {self.rows_read:,} rows used ({self.positives:,} positive); "
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            + " columns"
        ]
        for why, n in sorted(self.dropped_rows.items()):
            out.append(f"  dropped {n:,} rows: {why}")
        for col, n in sorted(self.malformed_cells.items()):
            out.append(f"  {n:,} malformed cells in {col!r} (treated as missing)")
        for col, why in sorted(self.ignored_columns.items()):
            out.append(f"  column {col!r} left out: {why}")
        return out

    def to_dict(self) -> TableReportJSON:
        """JSON-able form (stored with the model)."""
        return {
            "rows_read": self.rows_read,
            "rows_used": self.rows_used,
            "positives": self.positives,
            "kinds": self.kinds,
            "dropped_rows": dict(self.dropped_rows),
            "malformed_cells": dict(self.malformed_cells),
            "missing_cells": dict(self.missing_cells),
            "ignored_columns": self.ignored_columns,
        }


@dataclass
class FeatureTable:
    """A numeric feature matrix (``NaN`` = missing; categorical columns hold codes)."""

    x: NDArray[np.float64]
    y: NDArray[np.int64]
    names: list[str]
    categorical: list[int]
    categories: dict[str, list[str]]
    """Per categorical column, its values in code order."""
    kinds: dict[str, str]
    ids: list[str] | None = None
    report: TableReport = field(default_factory=TableReport)

    def schema(self) -> FeatureSchema:
        """What ``encode_rows`` needs to encode new rows the same way (stored with a model)."""
        return {"names": self.names, "kinds": self.kinds, "categories": self.categories}


def _label_values(values: list[str | None], report: TableReport) -> NDArray[np.int64]:
    out = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values):
        s = "" if v is None else str(v).strip().lower()
        if s in _TRUE:
            out[i] = 1
        elif s in _FALSE:
            out[i] = 0
        elif s in _BLANK:
            report.dropped_rows["label is blank"] += 1
        else:
            report.dropped_rows["label is not true/yes/1 or false/no/0"] += 1
    return out


def _detect(values: pl.Series) -> tuple[str, pl.Series]:
    """(kind, cleaned column): numeric Float64, boolean or categorical String."""
    stripped = values.cast(pl.String).str.strip_chars()
    blank = stripped.is_null() | stripped.str.to_lowercase().is_in(list(_BLANK))
    s = (
        pl.DataFrame({"v": stripped, "b": blank})
        .select(pl.when(pl.col("b")).then(None).otherwise(pl.col("v")).alias(values.name))
        .to_series()
    )
    present = s.drop_nulls()
    if present.len() == 0:
        return "numeric", pl.Series(values.name, [None] * len(s), dtype=pl.Float64)
    lower = s.str.to_lowercase()
    if present.str.to_lowercase().is_in(["true", "false", "yes", "no"]).all():
        return "boolean", lower.is_in(["true", "yes"]).zip_with(
            ~blank, pl.Series([None] * len(s), dtype=pl.Boolean)
        )
    numbers = s.cast(pl.Float64, strict=False)
    parsed = numbers.drop_nulls().len()
    odd = s.filter(numbers.is_null() & s.is_not_null()).n_unique()
    # Mostly numbers, or numbers with a few distinct stray values (typos, sentinels such as
    # "n.a." or "-"): numeric, the strays malformed.
    if parsed >= NUMERIC_SHARE * present.len() or (parsed >= 0.5 * present.len() and odd <= 3):
        return "numeric", numbers
    return "categorical", s


def table_from_frame(
    frame: pl.DataFrame,
    label: str,
    id_col: str | None = None,
    *,
    max_categories: int = 200,
    report: TableReport | None = None,
) -> FeatureTable:
    """Encode a typed frame (numeric, boolean and string columns) with its label column.

    Raises:
        InvalidInput: the label or id column is missing, or no usable rows or a single class
            remain.
    """
    rep = report or TableReport(rows_read=frame.height)
    for required in (label, id_col):
        if required is not None and required not in frame.columns:
            raise InvalidInput(f"no column {required!r}; columns: {', '.join(frame.columns)}")
    y = _label_values(frame.get_column(label).cast(pl.String).to_list(), rep)
    keep = y >= 0
    frame, y = frame.filter(pl.Series(keep)), y[keep]
    rep.rows_used = frame.height
    rep.positives = int(y.sum())
    if frame.height == 0:
        raise InvalidInput(
            f"no usable rows: every {label!r} value is blank or not a label "
            "(true/yes/1 or false/no/0)"
        )
    if rep.positives in (0, frame.height):
        only = "positive" if rep.positives else "negative"
        raise InvalidInput(f"every usable row is {only}: a predictor needs both classes")
    ids = None if id_col is None else frame.get_column(id_col).cast(pl.String).to_list()
    names: list[str] = []
    cols: list[NDArray[np.float64]] = []
    categorical: list[int] = []
    categories: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for name in frame.columns:
        if name in (label, id_col):
            continue
        col = frame.get_column(name)
        if col.dtype == pl.Boolean:
            kind, values = "boolean", col.cast(pl.Float64)
        elif col.dtype.is_numeric():
            kind, values = "numeric", col.cast(pl.Float64)
        elif col.dtype in (pl.String, pl.Categorical, pl.Enum):
            kind, values = "categorical", col.cast(pl.String)
        else:
            rep.ignored_columns[name] = f"unsupported type {col.dtype}"
            continue
        if kind == "categorical":
            distinct = sorted(v for v in values.unique().to_list() if v is not None)
            if len(distinct) > max_categories:
                rep.ignored_columns[name] = (
                    f"{len(distinct):,} distinct values: an identifier or free text, not a category"
                )
                continue
            code = {v: float(i) for i, v in enumerate(distinct)}
            arr = np.array(
                [code.get(v, np.nan) if v is not None else np.nan for v in values.to_list()],
                dtype=np.float64,
            )
            categorical.append(len(names))
            categories[name] = distinct
        else:
            arr = values.to_numpy().astype(np.float64)
        rep.missing_cells[name] = int(np.isnan(arr).sum())
        rep.kinds[name] = kind
        kinds[name] = kind
        names.append(name)
        cols.append(arr)
    rep.missing_cells = Counter({k: v for k, v in rep.missing_cells.items() if v})
    if not names:
        raise InvalidInput("no feature columns left besides the label and id")
    x = np.column_stack(cols)
    return FeatureTable(x, y, names, categorical, categories, kinds, ids, rep)


def read_table(
    path: Path, label: str, id_col: str | None = None, *, max_categories: int = 200
) -> FeatureTable:
    """Read a CSV/TSV (delimiter detected from the header) as a feature table.

    Raises:
        InvalidInput: unreadable file, missing label/id column, no usable rows, one class.
    """
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file")
    with path.open(encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    sep = max((",", "\t", ";", "|"), key=header.count)
    try:
        raw = pl.read_csv(
            path,
            separator=sep,
            infer_schema_length=0,
            truncate_ragged_lines=True,
            encoding="utf8-lossy",
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InvalidInput(f"cannot read {path} as CSV: {exc}") from None
    if label not in raw.columns:
        raise InvalidInput(f"no column {label!r} in {path.name}; columns: {', '.join(raw.columns)}")
    report = TableReport(rows_read=raw.height)
    typed: dict[str, pl.Series] = {}
    for name in raw.columns:
        if name in (label, id_col):
            typed[name] = raw.get_column(name)
            continue
        kind, values = _detect(raw.get_column(name))
        if kind == "numeric":
            before = raw.get_column(name).cast(pl.String).str.strip_chars()
            present = before.is_not_null() & ~before.str.to_lowercase().is_in(list(_BLANK))
            bad = int((present & values.is_null()).sum())
            if bad:
                report.malformed_cells[name] = bad
        typed[name] = values
    frame = pl.DataFrame(list(typed.values()))
    return table_from_frame(frame, label, id_col, max_categories=max_categories, report=report)
