"""The model registry: versions, aliases, the governance checklist, promotion and rollback,
tamper detection, revisions, the sweep of crashed writes, job locks and the worker (issue 7)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tastebud.config import GovernancePolicy, Schedule
from tastebud.errors import ArtifactInvalid, ChecklistFailed, Conflict, InvalidInput, ModelNotFound
from tastebud.ids import Vocabulary
from tastebud.models import TrainingData
from tastebud.models.linear import SeqLinear, SeqLinearConfig
from tastebud.registry import (
    Approval,
    Comparison,
    Registry,
    checklist,
    compare,
    promote,
    rollback,
    scan_artifact,
)
from tastebud.registry.recommender import load_model, save_model
from tastebud.services import Services
from tastebud.training.context import JobContext
from tastebud.worker.schedule import JobLock, ReportDetails, Worker, auto_promote

DAY = 86_400_000
KEYS = [f"{i:032x}" for i in range(3)]  # pseudonym-shaped user keys


def passing_metrics(ndcg: float = 0.3) -> dict[str, Any]:
    return {
        "test": {"ndcg@10": ndcg},
        "baseline": {"popularity": {"ndcg@10": 0.1}},
        "slices": {"gender": {"disparity": 1.2, "groups": {}}},
    }


def passing_lineage() -> dict[str, Any]:
    return {
        "data": {
            "window_start_ms": 0,
            "window_end_ms": 30 * DAY,
            "users": 500,
            "items": 50,
            "item_coverage": 0.9,
        },
        "consent": {"purpose": "personalization", "excluded_users": 0},
    }


def register(
    reg: Registry,
    *,
    metrics: dict[str, Any] | None = None,
    lineage: dict[str, Any] | None = None,
    card: bool = True,
    extra: dict[str, str] | None = None,
    users: list[str] | None = None,
) -> Any:
    data = TrainingData.from_arrays(3, 4, [0, 0, 1, 1, 2], [0, 1, 1, 2, 3], ts=[1, 2, 3, 4, 5])
    model = SeqLinear(SeqLinearConfig(l2=1.0)).fit(data)
    staging = reg.staging_dir("recommendations")
    files = {"monitoring.json": '{"reference": {"top10_coverage": 1.0}}', **(extra or {})}
    if card:
        files["model_card.md"] = "# Model card\n" + "details " * 50
    save_model(
        staging,
        model,
        Vocabulary(users or KEYS),
        Vocabulary(list("wxyz")),
        metrics or passing_metrics(),
        seen=data.matrix(),
        extra=files,
    )
    return reg.register(
        "recommendations",
        staging,
        kind="recommender",
        algorithm=model.name,
        metrics=metrics or passing_metrics(),
        lineage=lineage or passing_lineage(),
        actor="test",
    )


POLICY = GovernancePolicy()


def test_versions_aliases_and_the_checklist(any_services: Services) -> None:
    reg = any_services.registry
    v1 = register(reg)
    v2 = register(reg)
    assert (v1.version, v2.version) == (1, 2)
    assert reg.get("recommendations", 1).aliases == ()  # the candidate alias moved to v2
    assert reg.resolve("recommendations", "candidate").version == 2
    with pytest.raises(ModelNotFound, match="known versions: 1, 2"):
        reg.get("recommendations", 9)
    check = checklist(reg, v1, POLICY)
    assert [i.name for i in check.failing()] == ["approval"]
    with pytest.raises(ChecklistFailed, match="approval") as err:
        promote(reg, POLICY, "recommendations", 1, actor="test")
    assert err.value.details and err.value.details[0]["name"] == "approval"
    with pytest.raises(InvalidInput, match="--reason"):
        promote(reg, POLICY, "recommendations", 1, actor="test", force=True)
    reg.approve("recommendations", 1, actor="key:abc")
    assert checklist(reg, reg.get("recommendations", 1), POLICY).passed
    promote(reg, POLICY, "recommendations", 1, actor="test")
    assert reg.resolve("recommendations").version == 1
    # v2 fails only approval; forcing it records the reason and the failing items.
    promote(reg, POLICY, "recommendations", 2, actor="key:abc", force=True, reason="hotfix")
    last = reg.history("recommendations")[-1]
    assert (last.action, last.alias, last.reason) == ("promote", "production", "hotfix")
    assert last.details["forced"] and last.details["failed"] == ["approval"]
    assert last.details["previous"] == 1


def test_records_are_typed_and_their_json_views_hold_no_internals(
    any_services: Services,
) -> None:
    # Issue 16, point 5: the registry's results are typed; the JSON the API and the CLI show is
    # their serialization (the artifact path stays internal, an absent note is absent).
    reg = any_services.registry
    v1 = register(reg)
    view = v1.model_dump(mode="json")
    assert "path" not in view and v1.path == "recommendations/v1/r1"
    assert (view["aliases"], view["approval"], view["kind"]) == (["candidate"], None, "recommender")
    approved = reg.approve("recommendations", 1, actor="key:abc")
    assert isinstance(approved.approval, Approval) and approved.approval.by == "key:abc"
    assert set(approved.model_dump(mode="json")["approval"]) == {"by", "at_ms"}
    noted = reg.approve("recommendations", 1, actor="key:def", note="looks right")
    assert noted.approval == Approval(by="key:def", at_ms=noted.approval.at_ms, note="looks right")  # type: ignore[union-attr]
    metrics = passing_metrics(0.4)
    metrics["test"].update({"label": "not a number", "users": 12, "coverage": None})
    register(reg, metrics=metrics)
    table = compare(reg, "recommendations")
    assert isinstance(table, Comparison) and [v.version for v in table.versions] == [1, 2]
    assert table.metrics == {
        "ndcg@10": {"1": 0.3, "2": 0.4},
        "users": {"2": 12},
        "coverage": {"2": None},
    }
    assert table.model_dump(mode="json")["metrics"]["users"] == {"2": 12}  # an int stays an int
    assert compare(reg, "recommendations", [2]).versions[0].aliases == ("candidate",)
    with pytest.raises(ModelNotFound, match="no versions"):
        compare(reg, "churn")


def test_checklist_items_fail_for_the_right_reasons(any_services: Services) -> None:
    reg = any_services.registry
    lineage = passing_lineage()
    lineage["data"]["window_end_ms"] = DAY // 2  # half a day of data
    del lineage["consent"]
    metrics = passing_metrics(ndcg=0.05)  # below popularity's 0.1
    metrics["slices"] = {
        "gender": {"disparity": 3.5, "groups": {}},
        "activity": {"disparity": 9.0, "groups": {}},
    }
    mv = register(
        reg,
        metrics=metrics,
        lineage=lineage,
        card=False,
        extra={"notes.md": "contact jane.doe@example.com"},
        users=["user-42", *KEYS[1:]],
    )
    items = {i.name: i for i in checklist(reg, mv, POLICY).items}
    assert (
        not items["representative_data"].passed
        and "0.50 days" in items["representative_data"].detail
    )
    assert not items["validated"].passed and "popularity" in items["validated"].detail
    assert not items["bias_analysis"].passed and "3.50 (gender)" in items["bias_analysis"].detail
    privacy = items["privacy"].detail
    assert not items["privacy"].passed
    assert "e-mail" in privacy and "not pseudonyms" in privacy and "consent" in privacy
    assert not items["model_card"].passed
    assert items["monitoring"].passed and items["rollback_plan"].passed


def test_what_could_not_be_checked_is_not_a_pass(any_services: Services) -> None:
    # Issue 15, point 8: no user attribute with two groups to compare (activity terciles are
    # informative, not protected) used to pass bias_analysis.
    reg = any_services.registry
    metrics = passing_metrics()
    metrics["slices"] = {"activity": {"disparity": 1.1, "groups": {}}}
    mv = register(reg, metrics=metrics)
    reg.approve("recommendations", mv.version, actor="key:abc")
    mv = reg.get("recommendations", mv.version)
    check = checklist(reg, mv, POLICY)
    bias = {i.name: i for i in check.items}["bias_analysis"]
    assert (bias.status, bias.passed) == ("not_checked", False)
    view = bias.model_dump(mode="json")  # the JSON view: no internal ``checked`` flag
    assert view == {
        "name": "bias_analysis",
        "passed": False,
        "detail": bias.detail,
        "status": "not_checked",
    }
    assert "not checked" in bias.detail
    assert not check.passed and check.failing() == [] and check.not_checked() == [bias]
    with pytest.raises(ChecklistFailed, match="bias_analysis not checked") as err:
        promote(reg, POLICY, "recommendations", mv.version, actor="test")
    assert "--waive bias_analysis --reason" in err.value.message
    assert err.value.details == [view]
    with pytest.raises(InvalidInput, match="reason"):
        promote(reg, POLICY, "recommendations", mv.version, actor="test", waive=("bias_analysis",))
    with pytest.raises(InvalidInput, match="validated was checked"):
        promote(
            reg,
            POLICY,
            "recommendations",
            mv.version,
            actor="test",
            waive=("validated",),
            reason="r",
        )
    with pytest.raises(InvalidInput, match="unknown checklist item"):
        promote(
            reg, POLICY, "recommendations", mv.version, actor="test", waive=("vibes",), reason="r"
        )
    # The auto-promotion policy never waives: the version stays a candidate.
    ctx = JobContext(any_services.store, reg, POLICY, "opt-out", "worker")
    assert "bias_analysis not checked" in auto_promote(ctx, reg.get("recommendations", mv.version))
    assert reg.resolve("recommendations") is None
    promote(
        reg,
        POLICY,
        "recommendations",
        mv.version,
        actor="key:abc",
        waive=("bias_analysis",),
        reason="no attributes collected yet",
    )
    last = reg.history("recommendations")[-1]
    assert last.reason == "no attributes collected yet"
    assert last.details["waived"] == ["bias_analysis"] and not last.details["forced"]
    # No slices at all, or no held-out metrics: not checked either.
    bare = register(reg, metrics={"baseline": {}})
    items = {i.name: i.status for i in checklist(reg, bare, POLICY).items}
    assert items["bias_analysis"] == items["validated"] == "not_checked"


@pytest.mark.parametrize(
    ("judged", "status", "words"),
    [
        ({"ratio": 2.8, "shrunk": 1.3, "lower": 0.9}, "pass", "1.30 after noise"),
        ({"ratio": 3.1, "shrunk": 2.6, "lower": 1.2}, "not_checked", "within sampling noise"),
        ({"ratio": 4.0, "shrunk": 3.7, "lower": 2.4}, "fail", "beyond sampling noise"),
        ({"ratio": None, "shrunk": None, "lower": None}, "fail", "unbounded"),
    ],
)
def test_bias_is_judged_with_its_sampling_noise(
    any_services: Services, judged: dict[str, Any], status: str, words: str
) -> None:
    # A disparity of a few dozen users per group is mostly noise: it fails only beyond the
    # noise, passes when the noise-corrected estimate is within the bound, and is "not
    # checked" in between (the raw point estimate alone failed fair models on small data).
    metrics = passing_metrics()
    metrics["slices"] = {
        "age_bucket": {
            "disparity": judged["ratio"],
            "judged": {**judged, "best": "18-24", "worst": "65+", "groups": 6},
        },
        "locale": {
            "disparity": 9.0,
            "judged": {
                "ratio": 9.0,
                "shrunk": None,
                "lower": None,
                "best": None,
                "worst": None,
                "groups": 1,
            },
        },
    }
    mv = register(any_services.registry, metrics=metrics)
    item = {i.name: i for i in checklist(any_services.registry, mv, POLICY).items}
    bias = item["bias_analysis"]
    assert bias.status == status and words in bias.detail, bias.detail
    assert "locale" not in bias.detail  # one group large enough: not judged


def test_rollback_walks_back_the_production_history(any_services: Services) -> None:
    reg = any_services.registry
    for _ in range(4):
        mv = register(reg)
        reg.approve("recommendations", mv.version, actor="test")
    with pytest.raises(Conflict, match="no previous production"):
        rollback(reg, "recommendations", actor="test")
    for v in (1, 2, 3):
        promote(reg, POLICY, "recommendations", v, actor="test")
    assert rollback(reg, "recommendations", actor="test").version == 2
    reg.archive("recommendations", 1, actor="test", reason="superseded")
    with pytest.raises(Conflict, match="no previous production"):
        rollback(reg, "recommendations", actor="test")  # v1 is archived
    with pytest.raises(Conflict, match="in production"):
        reg.archive("recommendations", 2, actor="test")
    with pytest.raises(Conflict, match="archived"):
        promote(reg, POLICY, "recommendations", 1, actor="test")
    promote(reg, POLICY, "recommendations", 4, actor="test")
    item = {i.name: i for i in checklist(reg, reg.get("recommendations", 4), POLICY).items}
    assert "returns to v2" in item["rollback_plan"].detail
    assert [e.action for e in reg.history("recommendations")].count("rollback") == 1


def test_a_tampered_artifact_is_refused_everywhere(any_services: Services) -> None:
    reg = any_services.registry
    mv = register(reg)
    reg.approve("recommendations", 1, actor="test")
    promote(reg, POLICY, "recommendations", 1, actor="test")
    served = any_services.models.get("recommendations")
    assert served is not None and served.version == 1
    mv2 = register(reg, metrics=passing_metrics(0.31))
    reg.approve("recommendations", 2, actor="test")
    params = reg.root / mv2.path / "params.npz"
    blob = bytearray(params.read_bytes())
    blob[len(blob) // 2] ^= 0x01  # one bit
    params.write_bytes(bytes(blob))
    with pytest.raises(ArtifactInvalid, match="params.npz does not match"):
        reg.artifact_path(mv2)
    assert not checklist(reg, reg.get("recommendations", 2), POLICY).passed
    with pytest.raises(ChecklistFailed, match="privacy"):
        promote(reg, POLICY, "recommendations", 2, actor="test")
    # Forced anyway: serving refuses to load it and keeps the verified version.
    promote(reg, POLICY, "recommendations", 2, actor="test", force=True, reason="test")
    any_services.models.refresh()
    assert any_services.models.get("recommendations").version == 1  # type: ignore[union-attr]
    # A swapped artifact (files consistent with their manifest, but not the registered ones:
    # v1's files copied over v2's) is refused too.
    for path in (reg.root / mv.path).iterdir():
        (reg.root / mv2.path / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ArtifactInvalid, match="not the registered one"):
        reg.artifact_path(mv2)


def test_a_revision_rewrites_with_new_checksums_and_lineage(any_services: Services) -> None:
    reg = any_services.registry
    mv = register(reg)
    old_dir = reg.root / mv.path

    def drop_user(old: Path, new: Path) -> None:
        loaded = load_model(old)
        keep = [k for k in loaded.users.ids if k != KEYS[0]]
        save_model(new, loaded.model, Vocabulary(keep), loaded.items, loaded.metrics)

    rev = reg.revise(
        "recommendations",
        1,
        drop_user,
        reason="erasure",
        actor="test",
        details={"removed_users": 1},
    )
    assert (rev.revision, rev.path) == (2, "recommendations/v1/r2")
    assert rev.artifact_id != mv.artifact_id and not old_dir.exists()
    entry = rev.lineage["revisions"][-1]
    assert entry["reason"] == "erasure" and entry["previous_artifact_id"] == mv.artifact_id
    assert KEYS[0] not in load_model(reg.artifact_path(rev)).users


def test_sweep_removes_what_a_crashed_writer_left(any_services: Services) -> None:
    reg = any_services.registry
    mv = register(reg)
    orphan = reg.root / "recommendations" / "v7" / "r1"
    orphan.mkdir(parents=True)
    (orphan / "params.npz").write_bytes(b"partial")
    staging = reg.staging_dir("recommendations")
    staging.mkdir()
    assert reg.sweep(older_than_s=3600) == []  # too recent: might be a live writer
    removed = reg.sweep(older_than_s=0)
    assert set(removed) == {orphan, staging}
    assert reg.artifact_path(mv).is_dir()


def test_scan_finds_pii_but_not_timestamps(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"at": 1795682187480, "n": 123456789, "ip": "10.1.2.3"}')
    (tmp_path / "b.md").write_text("call +44 20 7946 0958")
    (tmp_path / "users.json").write_text(f'["{KEYS[0]}", "alice"]')
    problems = scan_artifact(tmp_path)
    assert any("a.json" in p and "IP" in p for p in problems)
    assert any("b.md" in p and "phone" in p for p in problems)
    assert any("1 ids that are not pseudonyms" in p for p in problems)
    assert not any("a.json" in p and "phone" in p for p in problems)


# -- locks and the worker --------------------------------------------------------------------
def ctx_of(services: Services, **policy: Any) -> JobContext:
    return JobContext(services.store, services.registry, GovernancePolicy(**policy))


def test_job_lock_excludes_a_second_worker_until_it_expires(any_services: Services) -> None:
    ctx = ctx_of(any_services)
    a = JobLock(ctx, "full", "worker-a", lease_ms=60_000)
    b = JobLock(ctx, "full", "worker-b", lease_ms=60_000)
    assert a.acquire() and not b.acquire()
    assert a.renew() and not b.renew()
    a.release()
    assert b.acquire() and not a.acquire()
    short = JobLock(ctx, "bakeoff", "worker-a", lease_ms=1)
    assert short.acquire()
    time.sleep(0.01)
    assert JobLock(ctx, "bakeoff", "worker-b", lease_ms=60_000).acquire()  # expired: taken


def test_worker_retries_failures_and_recovers_crashes(
    any_services: Services, tmp_path: Path
) -> None:
    ctx = ctx_of(any_services)
    calls: list[str] = []

    def flaky(_: JobContext) -> ReportDetails:
        calls.append("x")
        if len(calls) < 3:
            raise RuntimeError("database hiccup")
        return {"report": "ok"}

    schedule = Schedule(max_attempts=3, retry_seconds=0, lease_seconds=60)
    worker = Worker(ctx, schedule, tmp_path, owner="w1", jobs={"feature_review": flaky})
    runs = [worker.run_due("feature_review")[0] for _ in range(3)]
    assert [(r.status, r.attempt) for r in runs] == [("failed", 1), ("failed", 2), ("succeeded", 3)]
    assert "database hiccup" in (runs[0].error or "")
    assert worker.due("feature_review") is None  # done for this month
    later = runs[-1].started_ms + worker.interval_ms("feature_review")
    assert worker.due("feature_review", now_ms=runs[0].started_ms + 1) is None
    assert worker.due("feature_review", now_ms=later + 1) == 1
    # Another worker holds the lock: the job is not run twice.
    other = JobLock(ctx, "bakeoff", "w2", lease_ms=60_000)
    assert other.acquire()
    assert worker.run_job("bakeoff") is None
    other.release()
    # A crash: a run left "running" whose lease expired is marked crashed and retried, and
    # its partial artifacts are swept.
    from sqlalchemy import insert

    from tastebud.store import tables as t

    with ctx.store.engine.begin() as conn:
        conn.execute(
            insert(t.job_runs).values(
                job="incremental",
                owner="dead",
                attempt=1,
                status="running",
                started_ms=1,
                details={},
            )
        )
    leftover = ctx.registry.staging_dir("recommendations")
    leftover.mkdir(parents=True)
    import os

    os.utime(leftover, (1, 1))
    assert worker.due("incremental") == 2
    assert worker.runs("incremental")[0].status == "crashed"
    assert not leftover.exists()


def test_auto_promotion_policy(any_services: Services) -> None:
    ctx = ctx_of(any_services, tolerance=0.01)
    first = register(ctx.registry)
    assert "promoted" in auto_promote(ctx, first)
    assert ctx.registry.get("recommendations", 1).approval.by == "policy:auto-promote"  # type: ignore[union-attr]
    worse = register(ctx.registry, metrics=passing_metrics(ndcg=0.25))
    outcome = auto_promote(ctx, worse)
    assert "stays a candidate" in outcome and "below production v1" in outcome
    assert ctx.registry.resolve("recommendations").version == 1
    hold = ctx.registry.history("recommendations")[-1]
    assert hold.action == "hold" and "tolerance" in (hold.reason or "")
    close = register(ctx.registry, metrics=passing_metrics(ndcg=0.295))
    assert "promoted" in auto_promote(ctx, close)
    off = ctx_of(any_services, auto_promote=False)
    assert auto_promote(off, register(ctx.registry)) == "auto-promotion disabled"
    assert np.isfinite(ctx.registry.resolve("recommendations").metrics["test"]["ndcg@10"])  # type: ignore[union-attr]
