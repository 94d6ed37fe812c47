"""The model registry: versions with verified, pickle-free artifacts, lineage, aliases
(``candidate``, ``staging``, ``production``), the governance checklist, promotion and rollback.
"""

from __future__ import annotations

from tastebud.registry._registry import ALIASES, LogEntry, ModelVersion, Registry, check_name
from tastebud.registry.artifacts import artifact_id, sha256_file, verify_artifact, write_artifact
from tastebud.registry.governance import (
    CHECKS,
    CheckItem,
    Checklist,
    checklist,
    promote,
    rollback,
    scan_artifact,
)

__all__ = [
    "ALIASES",
    "CHECKS",
    "CheckItem",
    "Checklist",
    "LogEntry",
    "ModelVersion",
    "Registry",
    "artifact_id",
    "check_name",
    "checklist",
    "promote",
    "rollback",
    "scan_artifact",
    "sha256_file",
    "verify_artifact",
    "write_artifact",
]
