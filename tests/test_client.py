"""The Python client (issue 15, points 1 and 12): reads with typed answers, the same retry rules
for every call, the async client answering as the sync one, path segments percent-encoded,
events sent as given (the server derives the id of an event without one), and the examples of
docs/client.md run against a live server.

One real ``tastebud serve`` process for the module, on a data dir with simulated traffic, a
feature snapshot, a production recommender and a production conversion predictor; retries and
their absence are counted on a tiny scripted HTTP server (a real socket, no mock library).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tastebud.client import (
    AsyncClient,
    Client,
    ClientError,
    ErasureReceipt,
    FeedbackReceipt,
    Predictions,
    Profile,
    Ranking,
    Recommendations,
    SimilarItems,
)
from tastebud.client._core import MAX_BACKOFF_S, Attempts, parse_retry_after
from tastebud.config import Settings
from tastebud.features import build_snapshot
from tastebud.models.predictor_config import PredictorConfig
from tastebud.services import build_services
from tastebud.training.labels import default_as_of_times
from test_serving import prepare

from conftest import Server, free_port, register_predictor

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[1] / "docs" / "client.md"
USER = "nb-user-0000007"
"""A simulated user the production model knows (test_serving's data)."""


# -- the live server ------------------------------------------------------------------------
@dataclass
class Live:
    """A running server on prepared data, with one key per scope."""

    url: str
    keys: dict[str, str]


def _train_conversion(settings: Settings) -> None:
    """A small conversion predictor in production, on a feature snapshot (the server reads a
    user's features from the snapshot: its real-time store starts empty)."""
    services = build_services(settings, migrate=False)
    try:
        build_snapshot(services.store)
        times = default_as_of_times(services.store, "conversion", count=3, step_days=3)
        config = PredictorConfig(leaves=(7,), logistic_c=(1.0,), folds=3)
        register_predictor(services, "conversion", config, as_of=times, reason="client tests")
    finally:
        services.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, log_audit: Any) -> Iterator[Live]:
    secret = {"pseudonym_key": secrets.token_hex(32), "fernet_keys": Fernet.generate_key().decode()}
    log_audit.note_secrets(secret.values())
    data_dir = tmp_path_factory.mktemp("client") / "data"
    settings = prepare(data_dir, secret)
    _train_conversion(settings)
    services = build_services(settings, migrate=False)
    keys = {s: services.keys.create(f"client-{s}", s)[1] for s in ("ingest", "serve", "admin")}
    services.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTEBUD_")}
    env.update(
        {
            "TASTEBUD_DATA_DIR": str(data_dir),
            "TASTEBUD_LOG_LEVEL": "INFO",
            "TASTEBUD_PSEUDONYM_KEY": secret["pseudonym_key"],
            "TASTEBUD_FERNET_KEYS": secret["fernet_keys"],
        }
    )
    server = Server(env, free_port())
    server.start()
    try:
        yield Live(server.url, keys)
    finally:
        server.stop()


def client(live: Live, scope: str = "serve", **kw: Any) -> Client:
    return Client(live.url, live.keys[scope], **kw)


def aclient(live: Live, scope: str = "serve", **kw: Any) -> AsyncClient:
    return AsyncClient(live.url, live.keys[scope], **kw)


def category_of(live: Live, item_id: str) -> str | None:
    r = httpx.get(
        f"{live.url}/v1/items/{item_id}", headers={"Authorization": f"Bearer {live.keys['serve']}"}
    )
    assert r.status_code == 200, r.text
    category: str | None = r.json()["category"]
    return category


# -- a scripted HTTP server -----------------------------------------------------------------
@dataclass
class Recorded:
    method: str
    path: str
    """The raw request target, as sent (percent-encoding kept)."""
    body: bytes


@dataclass
class Scripted:
    """A real HTTP server on 127.0.0.1 answering from a script, recording every request."""

    url: str = ""
    answers: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    """``(status, headers, JSON body)`` per request, in order; the last one repeats."""
    requests: list[Recorded] = field(default_factory=list)

    def answer(self, status: int, body: Any, **headers: str) -> Scripted:
        self.answers.append((status, headers, body))
        return self

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


def error(code: str, message: str = "nope") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": []}}


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    script = Scripted()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with lock:
                script.requests.append(Recorded(self.command, self.path, body))
                n = len(script.requests)
                status, headers, answer = script.answers[min(n, len(script.answers)) - 1]
            payload = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield script
    httpd.shutdown()
    httpd.server_close()
    thread.join()


PROFILE = {
    "user_id": "u1",
    "features": {},
    "feature_source": "none",
    "top_interests": [],
    "segment": None,
    "lifecycle_cohort": None,
    "session": {"active": False},
}


# -- reads against the live server ----------------------------------------------------------
def test_every_read_answers_its_typed_result(live: Live) -> None:
    with client(live) as tb:
        recs = tb.recommendations(USER, k=5)
        assert isinstance(recs, Recommendations) and recs.user_id == USER
        assert recs.mode == "personalized" and len(recs.items) == 5 and recs.list_id
        assert (recs.model.name, recs.model.version) == ("recommendations", 1)
        scores = [i.score for i in recs.items]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
        assert all(i.reason.type and i.reason.text for i in recs.items)
        top = recs.items[0].item_id
        # Every filter reaches the server: the excluded item leaves, the category holds.
        other = tb.recommendations(
            USER, k=5, exclude=[top], device="mobile", hour=20, locale="de-DE", network="wifi"
        )
        assert top not in [i.item_id for i in other.items] and len(other.items) == 5
        category = category_of(live, top)
        assert category is not None
        in_category = tb.recommendations(USER, k=3, category=category)
        assert in_category.items
        assert {category_of(live, i.item_id) for i in in_category.items} == {category}

        similar = tb.similar(top, k=3)
        assert isinstance(similar, SimilarItems) and similar.item_id == top
        assert 1 <= len(similar.items) <= 3 and top not in [i.item_id for i in similar.items]
        assert {(i.reason.type, i.reason.item_id) for i in similar.items} == {("similar_to", top)}
        assert similar.model.artifact_id == recs.model.artifact_id

        fresh = {
            "id": "post-1",
            "category": category,
            "created_at": datetime.now(UTC),
            "variants": {"beginner": "Plug it in.", "expert": "Bridge mode, VLANs."},
        }
        ranking = tb.rank(USER, [recs.items[4].item_id, fresh, top], skill_level="expert")
        assert isinstance(ranking, Ranking) and ranking.skill_level == "expert"
        assert sorted(i.id for i in ranking.items) == sorted([recs.items[4].item_id, top, "post-1"])
        ranked = [i.score for i in ranking.items]
        assert ranked == sorted(ranked, reverse=True)
        post = next(i for i in ranking.items if i.id == "post-1")
        assert (post.skill_level, post.text) == ("expert", "Bridge mode, VLANs.")
        assert next(i for i in ranking.items if i.id == top).reason.type == "model"

        profile = tb.profile(USER)
        assert isinstance(profile, Profile) and profile.user_id == USER
        assert profile.feature_source == "snapshot" and profile.top_interests
        assert profile.features["total_sessions"] >= 1 and "active" in profile.session

        predictions = tb.predictions(USER)
        assert isinstance(predictions, Predictions) and predictions.churn_probability is None
        assert predictions.conversion_probability is not None
        assert 0.0 <= predictions.conversion_probability <= 1.0
        assert predictions.models["conversion"].artifact_id
        reasons = predictions.reasons["conversion"]
        assert 1 <= len(reasons) <= 3
        assert all(r.feature and r.direction in {"increases", "decreases"} for r in reasons)


def test_feedback_is_recorded_and_acts_on_the_next_list(live: Live) -> None:
    user = "nb-user-0000011"
    with client(live) as tb:
        before = tb.recommendations(user, k=5)
        item = before.items[0].item_id
        receipt = tb.feedback(user, item, "not_interested", list_id=before.list_id)
        assert receipt == FeedbackReceipt(status="recorded", item_id=item, kind="not_interested")
        assert item not in [i.item_id for i in tb.recommendations(user, k=5).items]


def test_export_and_erase_with_an_admin_key(live: Live) -> None:
    user = "client-erased-1"
    now = datetime.now(UTC)
    with client(live, "ingest") as tb:
        events = [
            {
                "event_id": f"erase-{i}",
                "event_type": "page_view",
                "user_id": user,
                "timestamp": now - timedelta(minutes=i),
                "data": {"url": f"/p/{i}"},
            }
            for i in range(3)
        ]
        assert tb.send(events).accepted == 3
    with client(live, "admin") as tb:
        document = tb.export(user)
        assert document["user_id"] == user
        assert sorted(e["event_id"] for e in document["events"]) == [
            "erase-0",
            "erase-1",
            "erase-2",
        ]
        receipt = tb.erase(user)
        assert isinstance(receipt, ErasureReceipt) and receipt.request_id
        assert receipt.stores["events"] == 3 and receipt.total >= 3
        assert tb.export(user)["events"] == []
        assert tb.erase(user).stores["events"] == 0  # idempotent


def test_errors_carry_status_and_code(live: Live) -> None:
    with client(live) as tb:
        with pytest.raises(ClientError) as info:
            tb.export(USER)  # a serve key
        assert (info.value.status, info.value.code) == (403, "forbidden")
        assert info.value.body["error"]["code"] == "forbidden"
        with pytest.raises(ClientError) as info:
            tb.recommendations(USER, k=0)
        assert (info.value.status, info.value.code) == (422, "invalid_request")
        assert "k" in str(info.value)
        with pytest.raises(ClientError) as info:
            tb.similar("no-such-item")
        assert (info.value.status, info.value.code) == (404, "unknown_item")
        # Refused before sending: these could only be sent wrong.
        with pytest.raises(ValueError, match="commas"):
            tb.recommendations(USER, exclude=["a,b"])
        with pytest.raises(TypeError, match="not one string"):
            tb.recommendations(USER, exclude="nb-item-000001")
        with pytest.raises(ValueError, match="user_id"):
            tb.profile("")


def test_the_async_client_answers_as_the_sync_one(live: Live) -> None:
    user = "nb-user-0000023"
    content: list[dict[str, Any] | str] = ["nb-item-000010", {"id": "post-9", "category": "vpn"}]

    def same(model: Any) -> Any:
        return model.model_dump(exclude={"list_id", "cached"})

    with client(live) as tb:
        recs = tb.recommendations(user, k=7, device="mobile")
        item = recs.items[0].item_id
        sync = [
            same(recs),
            tb.similar(item, k=4),
            tb.rank(user, content),
            tb.profile(user),
            tb.predictions(user),
        ]

    async def run() -> list[Any]:
        async with aclient(live) as tb:
            recs, *rest = await asyncio.gather(
                tb.recommendations(user, k=7, device="mobile"),
                tb.similar(item, k=4),
                tb.rank(user, content),
                tb.profile(user),
                tb.predictions(user),
            )
            return [same(recs), *rest]

    answers = asyncio.run(run())
    assert answers[0] == sync[0]
    assert answers[1:4] == sync[1:4]
    assert answers[4] == sync[4]

    async def errors() -> ClientError:
        async with aclient(live) as tb:
            assert await tb.health()
            try:
                await tb.erase(user)
            except ClientError as exc:
                return exc
        raise AssertionError("a serve key erased a user")

    refused = asyncio.run(errors())
    assert (refused.status, refused.code) == (403, "forbidden")


# -- retries, counted on a real socket ------------------------------------------------------
def test_5xx_and_429_are_retried_until_an_answer(scripted: Scripted) -> None:
    scripted.answer(503, error("service_unavailable")).answer(
        429, error("rate_limited"), Retry_After="0"
    ).answer(200, PROFILE)
    with Client(scripted.url, "k", backoff=0.001) as tb:
        assert tb.profile("u1") == Profile.model_validate(PROFILE)
    assert scripted.paths() == ["/v1/users/u1/profile"] * 3

    async def run() -> Profile:
        async with AsyncClient(scripted.url, "k", backoff=0.001) as tb:
            return await tb.profile("u1")

    scripted.requests.clear()
    scripted.answers.insert(0, (502, {}, "bad gateway"))  # not even an error body
    assert asyncio.run(run()) == Profile.model_validate(PROFILE)
    assert len(scripted.requests) == 4


def test_4xx_is_raised_at_once_with_its_code(scripted: Scripted) -> None:
    body = error("invalid_request", "k: Input should be greater than or equal to 1")
    scripted.answer(422, body).answer(200, PROFILE)
    with Client(scripted.url, "k", backoff=0.001) as tb:
        with pytest.raises(ClientError) as info:
            tb.recommendations("u1", k=0)
    assert (info.value.status, info.value.code, info.value.body) == (422, "invalid_request", body)
    assert "greater than or equal to 1" in str(info.value)
    assert len(scripted.requests) == 1

    async def run() -> None:
        async with AsyncClient(scripted.url, "k", backoff=0.001) as tb:
            await tb.recommendations("u1", k=0)

    scripted.requests.clear()
    with pytest.raises(ClientError) as info:
        asyncio.run(run())
    assert info.value.code == "invalid_request" and len(scripted.requests) == 1


def test_a_5xx_no_wait_can_change_is_not_retried(scripted: Scripted) -> None:
    scripted.answer(503, error("model_not_ready", "no production recommendations model yet"))
    with Client(scripted.url, "k", backoff=0.001) as tb:
        with pytest.raises(ClientError) as info:
            tb.recommendations("u1")
    assert (info.value.status, info.value.code) == (503, "model_not_ready")
    assert len(scripted.requests) == 1


def test_giving_up_reports_the_last_answer(scripted: Scripted) -> None:
    scripted.answer(503, error("service_unavailable", "the database does not answer"))
    with Client(scripted.url, "k", max_retries=2, backoff=0.001) as tb:
        with pytest.raises(ClientError, match="gave up after 3 attempts") as info:
            tb.similar("i1")
    assert (info.value.status, info.value.code) == (503, "service_unavailable")
    assert len(scripted.requests) == 3


def test_retry_after_sets_the_least_wait() -> None:
    throttled = httpx.Response(429, headers={"Retry-After": "3"}, json=error("rate_limited"))
    attempts = Attempts(max_retries=5, backoff=0.5)
    assert attempts.answered(throttled) == 3.0  # the server's wait, not the 0.5 s backoff
    assert attempts.failed(httpx.ConnectError("refused")) == 6.0  # then doubling...
    assert attempts.failed(httpx.ReadTimeout("slow")) == MAX_BACKOFF_S  # ...up to the cap
    assert attempts.answered(httpx.Response(200, json={})) is None
    later = datetime(2026, 11, 26, 10, 0, 30, tzinfo=UTC)
    now = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(later, usegmt=True), now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("inf") is None and parse_retry_after("nan") is None


# -- paths and events as sent ---------------------------------------------------------------
def test_path_segments_are_percent_encoded(scripted: Scripted, live: Live) -> None:
    odd = "a/b?c#d %é"
    scripted.answer(200, {**PROFILE, "user_id": odd})
    with Client(scripted.url, "k") as tb:
        assert tb.profile(odd).user_id == odd
        tb.predictions("../admin")
        with pytest.raises(ClientError):  # the scripted body is no similar-items answer
            tb.similar("x/y")
    assert scripted.paths() == [
        "/v1/users/a%2Fb%3Fc%23d%20%25%C3%A9/profile",
        "/v1/users/..%2Fadmin/predictions",
        "/v1/items/x%2Fy/similar?k=10",
    ]
    # On the real server, an id with ?, # and % reaches its own user, not a query or fragment.
    with client(live) as tb:
        odd_user = "who?am#i 100%"
        recs = tb.recommendations(odd_user, k=3)
        assert recs.user_id == odd_user and len(recs.items) == 3
        # An id with "/" never reads another resource: answered for itself, or not found.
        try:
            assert tb.profile(f"{USER}/x").user_id == f"{USER}/x"
        except ClientError as exc:
            assert exc.status == 404


def test_events_are_sent_as_given(scripted: Scripted) -> None:
    scripted.answer(200, {"accepted": 2, "duplicates": 0, "rejected": 0, "results": []})
    events = [
        {"event_type": "page_view", "user_id": "u1", "timestamp": "2026-11-26T10:00:00Z"},
        {
            "event_id": "mine",
            "event_type": "page_view",
            "user_id": "u1",
            "timestamp": datetime(2026, 11, 26, 10, 0, 1, tzinfo=UTC),
        },
    ]
    originals = [dict(e) for e in events]
    with Client(scripted.url, "k") as tb:
        summary = tb.send(events)
    assert (summary.accepted, summary.duplicates) == (2, 0)
    sent = json.loads(scripted.requests[0].body)["events"]
    assert "event_id" not in sent[0]  # no random id: the server derives one from the content
    assert sent[1]["event_id"] == "mine"
    assert sent[1]["timestamp"] == "2026-11-26T10:00:01+00:00"
    assert events == originals  # the caller's dicts are untouched
    scripted.answers[:] = [(202, {}, {"event_id": "server-hash", "status": "accepted"})]
    with Client(scripted.url, "k") as tb:
        assert tb.track(events[0]) == {"event_id": "server-hash", "status": "accepted"}
    assert "event_id" not in json.loads(scripted.requests[-1].body)


def test_sending_the_same_id_less_events_twice_stores_them_once(live: Live) -> None:
    # Fails until the server derives the id of an event without one from its content
    # (issue 15, point 1; the server part is a separate change).
    now = datetime.now(UTC).replace(microsecond=0)
    events = [
        {
            "event_type": "page_view",
            "user_id": f"client-twice-{i % 3}",
            "timestamp": now - timedelta(seconds=i),
            "data": {"url": f"/docs/{i}"},
        }
        for i in range(12)
    ]
    with client(live, "ingest", batch_size=5) as tb:
        first = tb.send(events)
        assert (first.accepted, first.duplicates, first.rejected) == (12, 0, 0)
        again = tb.send(events)
        assert (again.accepted, again.duplicates, again.rejected) == (0, 12, 0)
        single = {
            "event_type": "search",
            "user_id": "client-twice-9",
            "timestamp": now,
            "data": {"query": "port forwarding"},
        }
        receipt = tb.track(single)
        assert receipt["status"] == "accepted"
        assert tb.track(single) == {"event_id": receipt["event_id"], "status": "duplicate"}


# -- docs/client.md -------------------------------------------------------------------------
def doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)


def test_the_docs_have_examples_of_both_clients() -> None:
    blocks = doc_blocks()
    assert len(blocks) >= 4
    assert any("AsyncClient" in b for b in blocks) and any("Client(" in b for b in blocks)


@pytest.mark.parametrize("index", range(len(doc_blocks())))
def test_a_docs_example_runs(live: Live, index: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = doc_blocks()[index].replace("http://127.0.0.1:8000", live.url)
    names = {f"{scope.upper()}_KEY": key for scope, key in live.keys.items()}
    exec(compile(code, f"docs/client.md[{index}]", "exec"), {"__name__": "docs", **names})
