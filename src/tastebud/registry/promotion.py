"""Promotion and rollback: moving the ``production`` alias under the governance policy, with
what was waived or forced recorded in the audit log."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tastebud.config import GovernancePolicy
from tastebud.errors import ChecklistFailed, Conflict, InvalidInput
from tastebud.registry._registry import Registry
from tastebud.registry.governance import CHECKS, checklist
from tastebud.registry.records import ModelVersion

__all__ = ["PromotionRecord", "promote", "rollback"]


class PromotionRecord(BaseModel):
    """What a promotion to production records in the audit log (``details`` of its entry)."""

    model_config = ConfigDict(frozen=True)
    forced: bool
    """Promoted although items that were not waived fail or were not checked."""
    failed: tuple[str, ...]
    """The items that were checked and fail."""
    not_checked: tuple[str, ...]
    """The items that could not be checked."""
    waived: tuple[str, ...]
    """The unchecked items the promoter accepted anyway (with a reason)."""
    previous: int | None
    """The production version before this promotion."""


def promote(
    registry: Registry,
    policy: GovernancePolicy,
    name: str,
    version: int,
    *,
    actor: str,
    alias: str = "production",
    force: bool = False,
    reason: str | None = None,
    waive: tuple[str, ...] = (),
) -> ModelVersion:
    """Point ``alias`` at ``version``. Production needs a passing checklist: items that could
    not be checked may be waived by name (``waive``) with a ``reason``; anything else that
    fails needs ``force`` with a ``reason``. Waivers, forcing and the items concerned are
    recorded in the audit log.

    Raises:
        ChecklistFailed: an item fails or was not checked and is neither waived nor forced
            (409).
        InvalidInput: ``force`` or ``waive`` without a reason, or a waiver for an item that
            was checked.
    """
    mv = registry.get(name, version)
    record: PromotionRecord | None = None
    if alias == "production":
        if (force or waive) and not (reason and reason.strip()):
            what = "--force" if force else "a waiver"
            raise InvalidInput(f"{what} needs --reason TEXT (it is recorded)")
        result = checklist(registry, mv, policy)
        unchecked = {i.name for i in result.not_checked()}
        unknown = sorted(set(waive) - set(CHECKS))
        if unknown:
            raise InvalidInput(
                f"unknown checklist item(s) {', '.join(unknown)}; the items are "
                + ", ".join(CHECKS)
            )
        wrong = sorted(set(waive) - unchecked)
        if wrong:
            raise InvalidInput(
                "only items that were not checked can be waived; "
                + ", ".join(wrong)
                + " "
                + ("was" if len(wrong) == 1 else "were")
                + " checked"
                + (f" (not checked: {', '.join(sorted(unchecked))})" if unchecked else "")
            )
        blocking = [i for i in result.blocking() if i.name not in waive]
        if blocking and not force:
            hint = "; fix them or promote with --force --reason TEXT"
            if all(not i.checked for i in blocking):
                names = " ".join(f"--waive {i.name}" for i in blocking)
                hint = f"; check them, or waive them with {names} --reason TEXT"
            raise ChecklistFailed(
                f"model {name} v{version} does not pass its checklist: "
                + "; ".join(f"{i.name} {i.status.replace('_', ' ')} ({i.detail})" for i in blocking)
                + hint,
                details=[i.model_dump() for i in blocking],
            )
        previous = registry.resolve(name, "production")
        if previous is not None and previous.version == version:
            raise Conflict(f"model {name} v{version} is already in production")
        record = PromotionRecord(
            forced=bool(blocking),
            failed=tuple(i.name for i in result.failing()),
            not_checked=tuple(sorted(unchecked)),
            waived=tuple(sorted(waive)),
            previous=None if previous is None else previous.version,
        )
    details = None if record is None else record.model_dump(mode="json")
    return registry.set_alias(name, alias, version, actor=actor, reason=reason, details=details)


def rollback(
    registry: Registry, name: str, *, actor: str, reason: str | None = None
) -> ModelVersion:
    """Point ``production`` back at the previous production version.

    Raises:
        Conflict: there is no previous production version to return to.
    """
    current = registry.resolve(name, "production")
    target = registry.previous_production(name)
    if current is None or target is None:
        raise Conflict(f"model {name} has no previous production version to roll back to")
    registry.artifact_path(registry.get(name, target))  # refuse a tampered target
    return registry.set_alias(
        name,
        "production",
        target,
        actor=actor,
        reason=reason,
        action="rollback",
        details={"from": current.version},
    )
