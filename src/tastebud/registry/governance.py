"""The governance checklist: the seed's list, made checkable.

Each item is computed from what the registry holds (metrics, lineage, the artifact's files and
the registry's state), so a checklist is re-evaluated whenever it is asked for: approving a
version or promoting another one changes the answer.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from tastebud.config import GovernancePolicy
from tastebud.errors import ArtifactInvalid
from tastebud.monitoring.fairness import Disparity
from tastebud.registry._registry import Registry
from tastebud.registry.records import ModelVersion

__all__ = ["CHECKS", "CheckItem", "CheckStatus", "Checklist", "checklist", "scan_artifact"]

CHECKS = (
    "representative_data",
    "validated",
    "bias_analysis",
    "privacy",
    "model_card",
    "monitoring",
    "rollback_plan",
    "approval",
)
"""The checklist's items, in order."""

_PSEUDONYM = re.compile(r"^[0-9a-f]{32}$")
# Personal data that must never be inside an artifact: e-mail addresses, phone numbers, IPs.
_PII = {
    "an e-mail address": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z0-9.-]+"),
    # International (+...) or grouped (555-123-4567, (555) 123 4567) numbers; a bare digit run
    # is a timestamp or a count, not a phone number.
    "a phone number": re.compile(
        r"(?<![\w.])(?:\+\d[\d ()-]{7,}\d|\(?\d{3}\)?[ -]\d{3}[ -]\d{4})(?![\w.])"
    ),
    "an IP address": re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"),
}
_TEXT_SUFFIXES = {".json", ".md", ".txt"}


CheckStatus = Literal["pass", "fail", "not_checked"]
"""A checklist item's outcome."""


class CheckItem(BaseModel):
    """One checklist item: passed, failed or not checked, and why.

    An item that could not be checked (no fairness slices with two groups to compare, no
    held-out metrics) is ``not_checked``, never a pass: promoting such a version to production
    needs an explicit, recorded waiver. Its JSON view is ``name``, ``passed``, ``detail`` and
    ``status``.
    """

    model_config = ConfigDict(frozen=True)
    name: str
    """One of :data:`CHECKS`."""
    passed: bool
    detail: str
    """Why, in words."""
    checked: bool = Field(default=True, exclude=True)
    """``False``: the item could not be checked (then ``passed`` is ``False`` too)."""

    def __init__(self, name: str, passed: bool, detail: str, checked: bool = True) -> None:
        super().__init__(name=name, passed=passed, detail=detail, checked=checked)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> CheckStatus:
        """``pass``, ``fail`` or ``not_checked``."""
        return "pass" if self.passed else ("fail" if self.checked else "not_checked")


def _not_checked(name: str, detail: str) -> CheckItem:
    return CheckItem(name, False, detail, checked=False)


class Checklist(BaseModel):
    """A version's checklist: its JSON view is ``passed`` and the ``items``, in the order of
    :data:`CHECKS`."""

    model_config = ConfigDict(frozen=True)
    items: tuple[CheckItem, ...]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        """Whether every item passes."""
        return all(i.passed for i in self.items)

    def failing(self) -> list[CheckItem]:
        """The items that were checked and fail."""
        return [i for i in self.items if i.checked and not i.passed]

    def not_checked(self) -> list[CheckItem]:
        """The items that could not be checked."""
        return [i for i in self.items if not i.checked]

    def blocking(self, *, skip: frozenset[str] = frozenset()) -> list[CheckItem]:
        """Every item that does not pass (failing or not checked), but those in ``skip``."""
        return [i for i in self.items if not i.passed and i.name not in skip]


def _representative(mv: ModelVersion, policy: GovernancePolicy) -> CheckItem:
    data = mv.lineage.get("data") or {}
    start, end = data.get("window_start_ms"), data.get("window_end_ms")
    if start is None or end is None:
        return _not_checked("representative_data", "no data window in the lineage")
    days = (end - start) / 86_400_000
    users = int(data.get("users") or 0)
    problems = []
    if days < policy.min_window_days:
        problems.append(f"window {days:.2f} days < {policy.min_window_days}")
    if users < policy.min_users:
        problems.append(f"{users} users < {policy.min_users}")
    if mv.kind == "recommender":
        items = int(data.get("items") or 0)
        if items < policy.min_items:
            problems.append(f"{items} items < {policy.min_items}")
        coverage = data.get("item_coverage")
        if coverage is not None and coverage < policy.min_item_coverage:
            problems.append(f"item coverage {coverage:.2f} < {policy.min_item_coverage}")
    summary = f"{days:.1f} days, {users:,} users"
    if mv.kind == "recommender":
        cov = data.get("item_coverage")
        summary += f", {int(data.get('items') or 0):,} items" + (
            "" if cov is None else f" ({cov:.0%} of the catalogue)"
        )
    return CheckItem("representative_data", not problems, "; ".join(problems) or summary)


def _validated(mv: ModelVersion, policy: GovernancePolicy) -> CheckItem:
    test = mv.metrics.get("test") or {}
    origin = mv.metrics.get("inherited_from")
    tag = "" if origin is None else f" (held-out metrics of v{origin}, incrementally updated)"
    if mv.kind == "recommender":
        ndcg = test.get("ndcg@10")
        if ndcg is None:
            return _not_checked("validated", "no held-out ndcg@10 in the metrics")
        base = (mv.metrics.get("baseline") or {}).get("popularity", {}).get("ndcg@10")
        problems = []
        if ndcg < policy.min_ndcg10:
            problems.append(f"ndcg@10 {ndcg:.4f} < floor {policy.min_ndcg10}")
        if base is not None and ndcg < base * policy.min_ndcg10_over_popularity:
            problems.append(
                f"ndcg@10 {ndcg:.4f} < {policy.min_ndcg10_over_popularity} x "
                f"popularity's {base:.4f}"
            )
        detail = (
            f"held-out ndcg@10 {ndcg:.4f}"
            + ("" if base is None else f" vs popularity {base:.4f}")
            + tag
        )
        return CheckItem("validated", not problems, "; ".join(problems) or detail)
    auc, ece = test.get("roc_auc"), test.get("ece")
    if auc is None or ece is None:
        return _not_checked("validated", "no held-out roc_auc and ece in the metrics")
    problems = []
    if auc < policy.min_roc_auc:
        problems.append(f"roc_auc {auc:.4f} < floor {policy.min_roc_auc}")
    if ece > policy.max_ece:
        problems.append(f"ece {ece:.4f} > ceiling {policy.max_ece}")
    return CheckItem(
        "validated",
        not problems,
        "; ".join(problems) or f"held-out roc_auc {auc:.4f}, ece {ece:.4f}{tag}",
    )


def _bias(mv: ModelVersion, policy: GovernancePolicy) -> CheckItem:
    slices = mv.metrics.get("slices")
    if slices is None:
        return _not_checked("bias_analysis", "no fairness slices in the metrics")
    bound = policy.max_disparity
    judged: list[tuple[str, Disparity]] = []
    worst: tuple[float, str] | None = None  # versions without a judgement: point estimates
    for attr, entry in slices.items():
        if attr == "activity":  # activity terciles are informative, not protected
            continue
        if entry.get("judged") is not None:
            d = Disparity.from_json(entry["judged"])
            if d.groups >= 2:
                judged.append((attr, d))
            continue
        ratio = entry.get("disparity")
        if ratio is not None and (worst is None or ratio > worst[0]):
            worst = (float(ratio), attr)
    if judged:
        return _judged_bias(judged, bound)
    if worst is None:
        return _not_checked(
            "bias_analysis",
            "not checked: no user attribute has two groups large enough to compare (send user "
            "attributes such as segment, age_bucket or locale with PUT /v1/users/{id})",
        )
    ok = worst[0] <= bound
    return CheckItem(
        "bias_analysis", ok, f"largest disparity {worst[0]:.2f} ({worst[1]}); bound {bound}"
    )


def _judged_bias(judged: list[tuple[str, Disparity]], bound: float) -> CheckItem:
    """Per attribute: fail when a disparity exceeds the bound beyond its sampling noise, pass
    when the noise-corrected disparity is within it; inconclusive otherwise (not checked)."""

    def text(attr: str, d: Disparity) -> str:
        low = "unbounded" if d.lower is None else f"{d.lower:.2f}"
        shrunk = "n/a" if d.shrunk is None else f"{d.shrunk:.2f}"
        return (
            f"{attr} {d.best} vs {d.worst}: {shrunk} after noise (raw "
            f"{'n/a' if d.ratio is None else f'{d.ratio:.2f}'}, at least {low})"
        )

    verdicts = [(attr, d, d.verdict(bound)) for attr, d in judged]
    failing = [(a, d) for a, d, v in verdicts if v == "fail"]
    if failing:
        return CheckItem(
            "bias_analysis",
            False,
            "disparity above the bound "
            f"{bound} beyond sampling noise: " + "; ".join(text(a, d) for a, d in failing),
        )
    unsure = [(a, d) for a, d, v in verdicts if v == "inconclusive"]
    if unsure:
        return _not_checked(
            "bias_analysis",
            "not checked: disparity above the bound "
            f"{bound} but within sampling noise (more users per group needed): "
            + "; ".join(text(a, d) for a, d in unsure),
        )
    a, d = max(((a, d) for a, d, _ in verdicts), key=lambda ad: ad[1].shrunk or 0.0)
    return CheckItem(
        "bias_analysis",
        True,
        f"{len(judged)} attribute(s) judged; largest disparity {text(a, d)}; bound {bound}",
    )


def scan_artifact(path: Path) -> list[str]:
    """Personal data found in an artifact's text files, and user vocabulary entries that are not
    pseudonyms (the registry's privacy check)."""
    problems: list[str] = []
    for file in sorted(path.iterdir()):
        if file.suffix not in _TEXT_SUFFIXES:
            continue
        text = file.read_text(errors="replace")
        for what, pattern in _PII.items():
            # LightGBM's text models are long runs of space-separated numbers: any three
            # integers in a row look like a phone number there. Their strings (feature names,
            # categories) are still checked for e-mail and IP addresses.
            if what == "a phone number" and file.name.startswith("booster_"):
                continue
            if pattern.search(text):
                problems.append(f"{file.name} contains what looks like {what}")
        if file.name == "users.json":
            # "~..." marks the slot of a removed user (consent withdrawn or erased).
            raw = [
                u
                for u in json.loads(text)
                if not _PSEUDONYM.match(str(u)) and not str(u).startswith("~")
            ]
            if raw:
                problems.append(f"users.json holds {len(raw)} ids that are not pseudonyms")
    return problems


def _privacy(mv: ModelVersion, path: Path | None) -> CheckItem:
    if path is None:
        return CheckItem("privacy", False, "artifact missing or invalid")
    problems = scan_artifact(path)
    consent = mv.lineage.get("consent")
    if consent is None or "excluded_users" not in consent:
        problems.append("the lineage does not record the personalization-consent filter")
    excluded = 0 if consent is None else consent.get("excluded_users", 0)
    return CheckItem(
        "privacy",
        not problems,
        "; ".join(problems)
        or f"no raw ids or PII in the artifact; {excluded} users without "
        "personalization consent excluded",
    )


def _card(path: Path | None) -> CheckItem:
    card = None if path is None else path / "model_card.md"
    ok = card is not None and card.is_file() and card.stat().st_size > 200
    return CheckItem("model_card", ok, "model_card.md present" if ok else "no model card")


def _monitoring(path: Path | None) -> CheckItem:
    ref = None if path is None else path / "monitoring.json"
    if ref is None or not ref.is_file():
        return CheckItem("monitoring", False, "no monitoring reference (monitoring.json)")
    data = json.loads(ref.read_text())
    ok = bool(data.get("reference"))
    return CheckItem(
        "monitoring",
        ok,
        "reference distributions recorded for drift and quality "
        "monitoring: " + ", ".join(sorted(data.get("reference", {}))),
    )


def _rollback(registry: Registry, mv: ModelVersion) -> CheckItem:
    prod = registry.resolve(mv.name, "production")
    if prod is None:
        return CheckItem(
            "rollback_plan", True, "first production version (nothing to roll back to)"
        )
    if prod.version == mv.version:
        prev = registry.previous_production(mv.name)
        return CheckItem(
            "rollback_plan",
            True,
            "in production; rollback returns to " + ("nothing" if prev is None else f"v{prev}"),
        )
    try:
        registry.artifact_path(prod)
    except ArtifactInvalid as exc:
        return CheckItem(
            "rollback_plan", False, f"production v{prod.version} does not verify: {exc}"
        )
    return CheckItem("rollback_plan", True, f"rollback returns to v{prod.version} (verified)")


def _approval(mv: ModelVersion) -> CheckItem:
    if not mv.approval:
        how = f"`tastebud models approve {mv.name} {mv.version}` or POST .../approve"
        return CheckItem("approval", False, f"not approved: {how} with an admin key")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(mv.approval.at_ms / 1000))
    return CheckItem("approval", True, f"approved by {mv.approval.by} at {when}")


def checklist(registry: Registry, mv: ModelVersion, policy: GovernancePolicy) -> Checklist:
    """Evaluate every item of ``mv``'s checklist now."""
    try:
        path: Path | None = registry.artifact_path(mv)
    except ArtifactInvalid:
        path = None
    return Checklist(
        items=(
            _representative(mv, policy),
            _validated(mv, policy),
            _bias(mv, policy),
            _privacy(mv, path),
            _card(path),
            _monitoring(path),
            _rollback(registry, mv),
            _approval(mv),
        )
    )
