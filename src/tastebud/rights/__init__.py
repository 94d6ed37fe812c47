"""Data-subject rights across every store: export, erasure (with tombstones and a receipt) and
the transparency report."""

from __future__ import annotations

from tastebud.rights.erasure import (
    PERSONAL_TABLES,
    STEPS,
    ErasureContext,
    Receipt,
    erase,
    erasure_step,
)
from tastebud.rights.export import ExportContext, UserExport, export_user
from tastebud.rights.transparency import (
    ConsentChanges,
    TransparencyReport,
    month_bounds,
    transparency_report,
)

__all__ = [
    "ConsentChanges",
    "ErasureContext",
    "ExportContext",
    "PERSONAL_TABLES",
    "Receipt",
    "STEPS",
    "TransparencyReport",
    "UserExport",
    "erase",
    "erasure_step",
    "export_user",
    "month_bounds",
    "transparency_report",
]
