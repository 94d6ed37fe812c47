"""The monthly transparency report: how often people exercised their rights and how much data
the retention policy removed. Counts only."""

from __future__ import annotations

import calendar
import re
import time

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from tastebud.errors import InvalidInput
from tastebud.store import Store
from tastebud.store import tables as t

__all__ = ["ConsentChanges", "TransparencyReport", "month_bounds", "transparency_report"]

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_bounds(month: str | None) -> tuple[str, int, int]:
    """``YYYY-MM`` (default: the current month, UTC) and its [start, end) in ms.

    Raises:
        InvalidInput: not a ``YYYY-MM`` month.
    """
    if month is None:
        month = time.strftime("%Y-%m", time.gmtime())
    m = _MONTH.match(month)
    if m is None:
        raise InvalidInput(f"month must look like 2026-11, not {month[:20]!r}")
    year, mon = int(m.group(1)), int(m.group(2))
    start = calendar.timegm((year, mon, 1, 0, 0, 0))
    end = calendar.timegm((year + (mon == 12), mon % 12 + 1, 1, 0, 0, 0))
    return month, start * 1000, end * 1000


class ConsentChanges(BaseModel):
    """Consent decisions recorded for one purpose in the month."""

    model_config = ConfigDict(frozen=True)
    granted: int = 0
    withdrawn: int = 0


class TransparencyReport(BaseModel):
    """One month's counts (``GET /v1/privacy/report``, ``tastebud privacy report``)."""

    model_config = ConfigDict(frozen=True)
    month: str
    """``YYYY-MM`` (UTC)."""
    consent_changes: int
    """Every consent decision recorded, for any purpose."""
    consent_changes_by_purpose: dict[str, ConsentChanges]
    """Per purpose (``analytics``, ``personalization``) that changed in the month."""
    personalization_opt_outs: int
    """Personalization consents withdrawn."""
    exports: int
    erasures: int
    erased_rows: int
    """Rows and entries removed by the month's erasures, every store together."""
    retention_runs: int
    retention_deleted_events: int
    key_rotations: int
    """Rotations of the keys that encrypt stored fields."""


def transparency_report(store: Store, month: str | None = None) -> TransparencyReport:
    """Counts for one month: consent changes (by purpose, granted or withdrawn), personalization
    opt-outs, exports, erasures, retention deletions (events) and key rotations."""
    label, lo, hi = month_bounds(month)
    c, p = t.consent_log, t.privacy_log
    with store.engine.connect() as conn:
        consent = conn.execute(
            select(c.c.purpose, c.c.granted, func.count())
            .where(c.c.at_ms >= lo, c.c.at_ms < hi)
            .group_by(c.c.purpose, c.c.granted)
        ).all()
        logged = conn.execute(
            select(p.c.kind, func.count(), func.coalesce(func.sum(p.c.count), 0))
            .where(p.c.at_ms >= lo, p.c.at_ms < hi)
            .group_by(p.c.kind)
        ).all()
    counts: dict[str, dict[bool, int]] = {}
    for purpose, granted, n in consent:
        by_decision = counts.setdefault(purpose, {True: 0, False: 0})
        by_decision[bool(granted)] += int(n)
    changes = {
        purpose: ConsentChanges(granted=n[True], withdrawn=n[False])
        for purpose, n in counts.items()
    }
    runs = {kind: (int(n), int(total)) for kind, n, total in logged}
    opted_out = changes.get("personalization", ConsentChanges())
    return TransparencyReport(
        month=label,
        consent_changes=sum(c.granted + c.withdrawn for c in changes.values()),
        consent_changes_by_purpose=changes,
        personalization_opt_outs=opted_out.withdrawn,
        exports=runs.get("export", (0, 0))[0],
        erasures=runs.get("erasure", (0, 0))[0],
        erased_rows=runs.get("erasure", (0, 0))[1],
        retention_runs=runs.get("retention", (0, 0))[0],
        retention_deleted_events=runs.get("retention", (0, 0))[1],
        key_rotations=runs.get("rotation", (0, 0))[0],
    )
