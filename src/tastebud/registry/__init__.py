"""The model registry: versions with verified, pickle-free artifacts, lineage, aliases
(``candidate``, ``staging``, ``production``), the audit log, the governance checklist,
promotion and rollback, and versions compared side by side.
"""

from __future__ import annotations

from tastebud.registry._registry import Registry
from tastebud.registry.artifacts import artifact_id, sha256_file, verify_artifact, write_artifact
from tastebud.registry.comparison import ComparedVersion, Comparison, compare
from tastebud.registry.governance import (
    CHECKS,
    CheckItem,
    Checklist,
    CheckStatus,
    checklist,
    scan_artifact,
)
from tastebud.registry.promotion import PromotionRecord, promote, rollback
from tastebud.registry.records import (
    ALIASES,
    Alias,
    Approval,
    LogEntry,
    ModelKind,
    ModelLineage,
    ModelMetrics,
    ModelVersion,
    VersionStatus,
    check_name,
)

__all__ = [
    "ALIASES",
    "Alias",
    "Approval",
    "CHECKS",
    "CheckItem",
    "CheckStatus",
    "Checklist",
    "ComparedVersion",
    "Comparison",
    "LogEntry",
    "ModelKind",
    "ModelLineage",
    "ModelMetrics",
    "ModelVersion",
    "PromotionRecord",
    "Registry",
    "VersionStatus",
    "artifact_id",
    "check_name",
    "checklist",
    "compare",
    "promote",
    "rollback",
    "scan_artifact",
    "sha256_file",
    "verify_artifact",
    "write_artifact",
]
