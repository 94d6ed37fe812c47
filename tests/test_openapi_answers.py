"""Every route's real answers match the OpenAPI document (issue 16, point 5).

The operations come from the app's own ``/openapi.json``: each one needs an example request
in :data:`CASES` (a new route without one fails :func:`test_every_operation_has_a_case`), and
each 2xx answer's body is validated against the schema the document declares for that status
and media type, ``$ref``s resolved. Objects are validated closed: a field the schema does not
declare is an error (unless the schema says ``additionalProperties``), so an answer cannot
carry undocumented fields either.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from jsonschema import Draft202012Validator

from tastebud.config import Settings
from tastebud.models.predictor_config import PredictorConfig
from tastebud.registry import promote
from tastebud.services import build_services
from tastebud.simulator import SimConfig, Simulator
from tastebud.training.recommender_jobs import train_recommendations
from tastebud.worker import job_context
from test_jobs import ingest

from conftest import Api, event, register_predictor

METHODS = ("get", "put", "post", "delete", "patch")
FAST = PredictorConfig(leaves=(7,), logistic_c=(1.0,), folds=3)


@dataclass(frozen=True)
class World:
    """The ids of the prepared data that the example requests use."""

    user: str
    """A simulated user with events, attributes, features and predictions."""
    other: str
    """Another simulated user (erased by the erasure case)."""
    item: str
    """A catalogue item the recommender knows."""


@dataclass(frozen=True)
class Case:
    """One example request of an operation: its path parameters, query, body and scope, and
    the status its answer must have."""

    scope: str | None = "admin"
    path: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    """The JSON body (``None``: none)."""
    status: int = 200


def _path(w: World, **extra: str) -> dict[str, str]:
    return {"user_id": w.user, "item_id": w.item, "name": "recommendations", **extra}


# Run in this order: later cases rely on what earlier ones did (version 2 is approved, promoted,
# rolled back from and archived; the erased user is not the one the other cases read).
CASES: dict[str, Callable[[World], Case]] = {
    "healthz_healthz_get": lambda w: Case(None),
    "readyz_readyz_get": lambda w: Case(None),
    "metrics_metrics_get": lambda w: Case(None),
    "post_event_v1_events_post": lambda w: Case(
        "ingest", body=_event(w, "page_view", data={"url": "/a"}), status=202
    ),
    "post_batch_v1_events_batch_post": lambda w: Case(
        "ingest",
        body={"events": [_event(w, "page_view", data={"url": "/b"}), {"event_type": "bogus"}]},
    ),
    "post_seed_event_api_events_post": lambda w: Case(
        "ingest",
        body={
            "eventType": "page_view",
            "userId": w.user,
            "timestamp": _now(),
            "data": {"url": "/c"},
        },
        status=202,
    ),
    "list_items_v1_items_get": lambda w: Case("serve", params={"limit": "2"}),
    "put_item_v1_items__item_id__put": lambda w: Case(
        path={"item_id": "openapi-item"},
        body={"title": "Doc", "categories": ["docs"], "type": "article"},
        status=201,
    ),
    "get_item_v1_items__item_id__get": lambda w: Case("serve", path=_path(w)),
    "post_items_v1_items_batch_post": lambda w: Case(
        body={"items": [{"item_id": "openapi-item-2", "title": "Two"}, {"x": 1}]}
    ),
    "delete_item_v1_items__item_id__delete": lambda w: Case(
        path={"item_id": "openapi-item"}, status=204
    ),
    "list_users_v1_users_get": lambda w: Case(params={"limit": "3"}),
    "put_user_v1_users__user_id__put": lambda w: Case(
        path=_path(w), body={"segment": "pro", "skill_level": "expert"}
    ),
    "get_user_v1_users__user_id__get": lambda w: Case("serve", path=_path(w)),
    "erase_user_v1_users__user_id__delete": lambda w: Case(path={"user_id": w.other}),
    "list_user_events_v1_users__user_id__events_get": lambda w: Case(
        path=_path(w), params={"limit": "3"}
    ),
    "put_consent_v1_users__user_id__consent_put": lambda w: Case(
        "ingest", path=_path(w), body={"analytics": True}
    ),
    "get_consent_v1_users__user_id__consent_get": lambda w: Case("serve", path=_path(w)),
    "post_alias_v1_users__user_id__aliases_post": lambda w: Case(
        path=_path(w), body={"anonymous_id": "openapi-device"}
    ),
    "get_profile_v1_users__user_id__profile_get": lambda w: Case("serve", path=_path(w)),
    "get_predictions_v1_users__user_id__predictions_get": lambda w: Case("serve", path=_path(w)),
    "get_recommendations_v1_users__user_id__recommendations_get": lambda w: Case(
        "serve", path=_path(w), params={"k": "5", "device": "mobile"}
    ),
    "get_similar_v1_items__item_id__similar_get": lambda w: Case(
        "serve", path=_path(w), params={"k": "3"}
    ),
    "rank_v1_users__user_id__rank_post": lambda w: Case(
        "serve",
        path=_path(w),
        body={
            "items": [
                {"id": w.item},
                {"id": "new-1", "category": "docs", "variants": {"beginner": "a", "expert": "b"}},
            ]
        },
    ),
    "feedback_v1_users__user_id__feedback_post": lambda w: Case(
        "serve", path=_path(w), body={"item_id": w.item, "kind": "like"}, status=202
    ),
    "list_models_v1_models_get": lambda w: Case("serve"),
    "get_version_v1_models__name__versions__version__get": lambda w: Case(
        "serve", path=_path(w, version="1")
    ),
    "compare_versions_v1_models__name__compare_get": lambda w: Case(
        "serve", path=_path(w), params={"versions": "1,2"}
    ),
    "approve_version_v1_models__name__versions__version__approve_post": lambda w: Case(
        path=_path(w, version="2"), body={"reason": "reviewed"}
    ),
    "promote_version_v1_models__name__versions__version__promote_post": lambda w: Case(
        path=_path(w, version="2"),
        body={"force": True, "reason": "openapi answers test"},
    ),
    "rollback_model_v1_models__name__rollback_post": lambda w: Case(
        path=_path(w), body={"reason": "back"}
    ),
    "archive_version_v1_models__name__versions__version__archive_post": lambda w: Case(
        path=_path(w, version="2"), body={"reason": "superseded"}
    ),
    "export_v1_users__user_id__export_get": lambda w: Case(path=_path(w)),
    "report_v1_privacy_report_get": lambda w: Case(),
    "create_experiment_v1_experiments_post": lambda w: Case(
        body={
            "name": "openapi-exp",
            "hypothesis": "version 1 with more exploration gets more clicks",
            "variants": [
                {"name": "control"},
                {"name": "explore", "model": {"version": 1}, "params": {"exploration_share": 0.3}},
            ],
            "guardrails": ["latency_ms", "error_rate"],
        },
        status=201,
    ),
    "update_experiment_v1_experiments__name__put": lambda w: Case(
        path={"name": "openapi-exp"},
        body={
            "name": "openapi-exp",
            "hypothesis": "version 1 with more exploration gets more clicks (edited)",
            "variants": [
                {"name": "control"},
                {"name": "explore", "model": {"version": 1}, "params": {"exploration_share": 0.3}},
            ],
            "guardrails": ["latency_ms", "error_rate"],
        },
    ),
    "list_experiments_v1_experiments_get": lambda w: Case("serve", params={"status": "draft"}),
    "start_experiment_v1_experiments__name__start_post": lambda w: Case(
        path={"name": "openapi-exp"}
    ),
    "ramp_experiment_v1_experiments__name__ramp_post": lambda w: Case(
        path={"name": "openapi-exp"}, body={"traffic": 0.5}
    ),
    "get_experiment_v1_experiments__name__get": lambda w: Case(
        "serve", path={"name": "openapi-exp"}
    ),
    "experiment_results_v1_experiments__name__results_get": lambda w: Case(
        "serve", path={"name": "openapi-exp"}
    ),
    "stop_experiment_v1_experiments__name__stop_post": lambda w: Case(
        path={"name": "openapi-exp"}, body={"reason": "done"}
    ),
    "conclude_experiment_v1_experiments__name__conclude_post": lambda w: Case(
        path={"name": "openapi-exp"}, body={"winner": "control"}
    ),
}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _event(w: World, event_type: str, **kw: Any) -> dict[str, Any]:
    return event(event_type, user=w.user, timestamp=_now(), **kw)


# -- the document ------------------------------------------------------------------------------
def operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """``{operationId: (method, path template, operation)}`` of every operation."""
    out = {}
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                out[op["operationId"]] = (method.upper(), path, op)
    return out


def closed(schema: Any) -> Any:
    """``schema`` with every object that lists its properties closed to others (pydantic
    leaves them open; a model with ``extra="allow"`` says ``additionalProperties`` itself)."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of one response schema; its ``#/components/...`` references resolve
    against the document's components (OpenAPI 3.1 schemas are JSON Schema 2020-12)."""
    root = closed({**schema, "components": doc.get("components", {})})
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def problems(doc: dict[str, Any], op: dict[str, Any], answer: httpx.Response) -> list[str]:
    """What is wrong with a 2xx ``answer`` of ``op``: an undeclared status or media type, a
    declared media type without a schema, or a body the schema refuses."""
    declared = op.get("responses", {}).get(str(answer.status_code))
    if declared is None:
        return [f"status {answer.status_code} is not declared"]
    content = declared.get("content") or {}
    if answer.status_code == 204 or not content:
        return [] if not answer.content else ["a body where the document declares none"]
    media = answer.headers.get("content-type", "").split(";")[0].strip()
    if media not in content:
        return [f"media type {media!r} is not declared (declared: {sorted(content)})"]
    schema = content[media].get("schema")
    if not schema:
        return [f"no schema for {media}"]
    body = answer.json() if media == "application/json" else answer.text
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
        for e in validator(doc, schema).iter_errors(body)
    ]


# -- data --------------------------------------------------------------------------------------
def prepare(data_dir: Path, keys: dict[str, str]) -> World:
    """Simulated traffic, a production recommender (version 1, and a candidate version 2) and
    a production churn predictor."""
    settings = Settings(data_dir=data_dir, **keys)
    services = build_services(settings, migrate=True)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=70
    )
    sim = Simulator(SimConfig(users=250, items=80, days=65, seed=5, start=start))
    assert services.catalog.put_items(list(sim.items()), 0).count("rejected") == 0
    assert services.catalog.put_users(list(sim.users()), 0).count("rejected") == 0
    ingest(services, list(sim.events()))
    reg, policy = services.registry, settings.governance
    mv = train_recommendations(job_context(services, "test"), model="tastebud_seq", tuning=False)
    promote(reg, policy, mv.name, mv.version, actor="test", force=True, reason="openapi test")
    # Version 2: the same artifact registered again (a candidate to approve, promote, roll
    # back from and archive).
    staging = reg.staging_dir(mv.name)
    shutil.copytree(reg.artifact_path(mv), staging)
    reg.register(
        mv.name,
        staging,
        kind="recommender",
        algorithm=mv.algorithm,
        metrics=mv.metrics,
        lineage=mv.lineage,
        actor="test",
    )
    register_predictor(services, "churn", FAST, reason="openapi test")
    users = sorted(sim.truth()["users"])
    items = [i["item_id"] for i in sim.items()]
    services.close()
    return World(user=users[0], other=users[1], item=items[0])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], World]:
    data_dir = tmp_path_factory.mktemp("openapi") / "data"
    keys = {"pseudonym_key": secrets.token_hex(32), "fernet_keys": Fernet.generate_key().decode()}
    return data_dir, keys, prepare(data_dir, keys)


# -- tests -------------------------------------------------------------------------------------
def test_every_operation_has_a_case(sqlite_api: Api) -> None:
    ops = operations(sqlite_api.client.get("/openapi.json").json())
    missing = sorted(set(ops) - set(CASES))
    assert not missing, f"operations without an example request in CASES: {missing}"
    stale = sorted(set(CASES) - set(ops))
    assert not stale, f"CASES names operations the document does not have: {stale}"


def test_every_success_answer_has_a_schema(sqlite_api: Api) -> None:
    doc = sqlite_api.client.get("/openapi.json").json()
    untyped = []
    for op_id, (method, path, op) in operations(doc).items():
        for status, response in op["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            content = response.get("content") or {}
            for media, spec in content.items():
                schema = spec.get("schema") or {}
                # A bare object is what a route returning dict[str, Any] declares.
                if not schema or schema.get("additionalProperties") is True:
                    untyped.append(f"{method} {path} {status} {media} ({op_id})")
            if not content:
                untyped.append(f"{method} {path} {status}: no content declared ({op_id})")
    assert not untyped, "2xx answers without a schema:\n" + "\n".join(untyped)


@pytest.mark.slow
def test_real_answers_match_the_document(
    prepared: tuple[Path, dict[str, str], World], make_api: Any, tmp_path: Path
) -> None:
    data_dir, keys, world = prepared
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    api: Api = make_api(Settings(data_dir=copy, **keys))
    doc = api.client.get("/openapi.json").json()
    ops = operations(doc)
    failures = []
    for op_id, make in CASES.items():
        if op_id not in ops:
            continue  # reported by test_every_operation_has_a_case
        method, template, op = ops[op_id]
        case = make(world)
        path = template.format(**case.path)
        headers = {} if case.scope is None else api.headers(case.scope)
        answer = api.client.request(
            method, path, headers=headers, params=case.params, json=case.body
        )
        where = f"{op_id} ({method} {path})"
        if answer.status_code != case.status:
            failures.append(
                f"{where}: HTTP {answer.status_code}, wanted {case.status}: {answer.text[:300]}"
            )
            continue
        failures += [f"{where}: {p}" for p in problems(doc, op, answer)]
    assert not failures, "\n".join(failures)


def test_the_validator_refuses_what_the_document_does_not_say(sqlite_api: Api) -> None:
    """The check itself can fail: an undeclared field, a missing one, a wrong type and an
    undeclared status are each reported."""
    doc = sqlite_api.client.get("/openapi.json").json()
    _, _, op = operations(doc)["erase_user_v1_users__user_id__delete"]
    good = {"request_id": "r", "erased_ms": 1, "stores": {"events": 2}, "total": 2, "seconds": 0.1}

    def check(body: Any, status: int = 200) -> list[str]:
        return problems(doc, op, httpx.Response(status, json=body))

    assert check(good) == []
    assert any("'path'" in p for p in check({**good, "path": "registry/x"}))
    assert any(
        "'total' is a required property" in p
        for p in check({k: v for k, v in good.items() if k != "total"})
    )
    assert any("stores/events" in p for p in check({**good, "stores": {"events": "2"}}))
    assert check(good, 201) == ["status 201 is not declared"]
